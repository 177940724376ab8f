"""Finding ids are a contract (a retry, a failover, a replay and the dedupe table rely on them): the ids
the pack raises on a fixed scenario are those recorded in tests/fixtures/finding-ids/. A change that
moves them on purpose regenerates the file (`python tests/unit/pipeline/test_finding_ids_stable.py`) and says why in
its commit; a refactoring never does."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.scenario import build

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "finding-ids" / "scenario-3000-seed-20261127.json"


def ids_by_rule() -> dict[str, list[str]]:
    """Every finding id raised by scanning the fixed scenario with the built-in pack, by rule."""
    scenario = build(3000, seed=20261127)
    detector = Detector(overrides=scenario.overrides)
    found = [f for record in scenario.events for f in detector.process(Event.from_record(record))]
    found += detector.finish()
    by_rule: dict[str, set[str]] = defaultdict(set)
    for finding in found:
        by_rule[finding.rule_id].add(finding.id)
    return {rule: sorted(ids) for rule, ids in sorted(by_rule.items())}


def test_the_fixed_scenario_raises_the_recorded_finding_ids() -> None:
    recorded = json.loads(RECORDED.read_text())
    now = ids_by_rule()
    changed = {
        rule: {"gone": sorted(set(ids) - set(now.get(rule, []))), "new": sorted(set(now.get(rule, [])) - set(ids))}
        for rule, ids in recorded.items()
        if set(ids) != set(now.get(rule, []))
    }
    appeared = {rule: ids for rule, ids in now.items() if rule not in recorded}
    assert not changed and not appeared, f"finding ids changed: {changed}; rules with new findings: {appeared}"
    assert sum(len(ids) for ids in recorded.values()) > 50


if __name__ == "__main__":
    RECORDED.write_text(json.dumps(ids_by_rule(), indent=1) + "\n")
    print(f"wrote {RECORDED}", file=sys.stderr)
