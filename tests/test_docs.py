"""The documentation states what the code does: the rule table is the pack's own listing."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_rule_table_in_docs_matches_the_pack() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["rules", "list", "--format", "markdown"]) == 0
    doc = (ROOT / "docs" / "rules.md").read_text()
    table = re.search(r"<!-- rules-table:start -->\n(.*?)<!-- rules-table:end -->", doc, re.S)
    assert table is not None
    assert table.group(1) == out.getvalue(), "docs/rules.md is stale: regenerate it (see the script at its top)"


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block and "make test" in first_block
