"""The documentation states what the code does: the rule table is the pack's own listing."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import subprocess
import sys
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


VARIABLE = re.compile(r"TRAILWARDEN_[A-Z0-9]+(?:_[A-Z0-9]+)*(?![A-Z0-9_])")  # not a prefix: TRAILWARDEN_REPLAY_*
PRODUCT = ("pipeline", "consumers", "infra")
TEXT_SUFFIXES = {".py", ".xml", ".yaml", ".toml", ".sh"}


def _names_in(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Every TRAILWARDEN_* name written in the files below `folders`: name -> files."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "fixtures" not in path.parts:
                for name in VARIABLE.findall(path.read_text(errors="replace")):
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def _documented(doc: str) -> set[str]:
    """The variables of a document's tables (rows that start with the variable's name)."""
    return set(re.findall(r"^\| `(TRAILWARDEN_[A-Z0-9_]+)` \|", (ROOT / "docs" / doc).read_text(), re.M))


def test_configuration_lists_exactly_the_variables_trailwarden_reads() -> None:
    from pipeline.settings import Var

    product = set(_names_in(PRODUCT))
    assert product == {v.value for v in Var}, "a TRAILWARDEN_* name outside pipeline/settings.py's Var"
    documented = _documented("configuration.md")
    assert documented == product, (
        f"docs/configuration.md misses {sorted(product - documented)} and lists "
        f"{sorted(documented - product)}, which nothing reads"
    )


def test_only_settings_spells_a_variable_as_code() -> None:
    """A name as a whole string (an environment lookup or an environment entry) appears in pipeline/settings.py
    only: everything else asks `Settings` or writes through `environment()`."""
    offenders = []
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "pipeline" / "settings.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert not offenders, offenders


def test_the_test_suites_knobs_are_documented_apart_from_trailwarden_s() -> None:
    product = set(_names_in(PRODUCT))
    knobs = set(_names_in(("tests", "bench"))) - product
    assert knobs, "the suites' knobs were not found"
    documented = _documented("reliability.md")
    assert knobs == documented, (
        f"docs/reliability.md misses {sorted(knobs - documented)} and lists "
        f"{sorted(documented - knobs)}, which no test reads"
    )
    assert not knobs & _documented("configuration.md")


def test_contributing_s_rule_template_passes_its_own_cases(tmp_path: Path) -> None:
    """The template in CONTRIBUTING.md is a working rule: loaded with --load, its cases and forms pass."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    [template] = re.findall(r"```python\n(.*?)```", text, re.S)
    rule_id = re.search(r'id="([a-z0-9-]+)"', template)
    assert rule_id is not None
    (tmp_path / "my_rules.py").write_text(template)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "rules",
            "--load",
            str(tmp_path / "my_rules.py"),
            "test",
            rule_id.group(1),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"1 rules, (\d+) cases: \1 passed, 0 failed", done.stdout + done.stderr)
    assert "[console form]" in done.stdout and "[cloudformation form]" in done.stdout
