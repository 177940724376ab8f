"""The coverage table of docs/rules.md (Panther's public CloudTrail rules mapped to the pack) is true: every
trailwarden rule it names exists, every uncovered behaviour says why, and at least 110 are covered."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.rules import builtin_rules

ROOT = Path(__file__).resolve().parents[3]
MIN_COVERED = 110


def coverage_rows() -> list[tuple[str, str, str]]:
    """(Panther rule id, behaviour, trailwarden cell) for each row between the coverage markers."""
    doc = (ROOT / "docs" / "rules.md").read_text()
    found = re.search(r"<!-- panther-coverage:start -->\n(.*?)<!-- panther-coverage:end -->", doc, re.S)
    assert found is not None, "docs/rules.md has no coverage section"
    rows = []
    for line in found.group(1).splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, line
        panther = cells[0].strip("`")
        rows.append((panther, cells[1], cells[2]))
    return rows


def named_rules(cell: str) -> list[str]:
    """The trailwarden rule ids a cell names (in backticks, before any note in parentheses)."""
    return re.findall(r"`([a-z0-9-]+)`", cell.split(" (", 1)[0])


def test_every_named_rule_exists_and_uncovered_rows_say_why() -> None:
    pack = {r.id for r in builtin_rules()}
    rows = coverage_rows()
    assert len({panther for panther, _, _ in rows}) == len(rows), "a Panther rule is listed twice"
    for panther, behaviour, cell in rows:
        assert re.fullmatch(r"[A-Za-z0-9.-]+", panther) and behaviour, (panther, behaviour)
        if cell.startswith("not covered: "):
            assert len(cell) > len("not covered: ") + 20, f"{panther}: say why it is not covered"
            continue
        ids = named_rules(cell)
        assert ids, f"{panther}: names no rule and does not say it is not covered"
        missing = [i for i in ids if i not in pack]
        assert not missing, f"{panther}: {missing} not in the pack"


def test_at_least_110_of_the_behaviours_are_covered() -> None:
    rows = coverage_rows()
    covered = [p for p, _, cell in rows if not cell.startswith("not covered")]
    assert len(rows) >= 135
    assert len(covered) >= MIN_COVERED, len(covered)
    doc = (ROOT / "docs" / "rules.md").read_text()
    assert f"Covered: **{len(covered)} of {len(rows)}**" in doc, "the count stated above the table is stale"
