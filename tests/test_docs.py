"""The documentation states what the code does: the rule table is the pack's own listing."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("source", "marker"), [("builtin", "rules-table"), ("sigma", "sigma-rules-table")])
def test_rule_tables_in_docs_match_the_pack(source: str, marker: str) -> None:
    """docs/rules.md holds the built-in rules in one table and the bundled Sigma rules in another."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["rules", "list", "--source", source, "--format", "markdown"]) == 0
    doc = (ROOT / "docs" / "rules.md").read_text()
    table = re.search(rf"<!-- {marker}:start -->\n(.*?)<!-- {marker}:end -->", doc, re.S)
    assert table is not None
    assert table.group(1) == out.getvalue(), "docs/rules.md is stale: regenerate it (see the script at its top)"
    assert table.group(1).count("\n| `") >= (133 if source == "builtin" else 57)


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block and "make test" in first_block
