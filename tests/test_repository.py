"""The project stands alone: nothing it runs reads, or points at, a folder above the repository root,
and the data its tests need is in the repository, with its licence."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("tests", "bench", "pipeline", "consumers", "infra")
TOP_FILES = ("Makefile", "pyproject.toml", ".ci/run")
SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".xml", ".json", ".sh", ".txt", ".cfg", ".ini", ""}
DATA = ROOT / "tests" / "fixtures"  # third-party data, read as data: its text is not ours to check

# A sibling folder by name, an absolute path into the machine's work area, or `..` as a path step.
OUTSIDE_TEXT = re.compile(
    r"""\.\./(?:shared|corpora)\b|/work/(?:shared|main)\b|["']shared["']\s*/|/\s*["']shared["']|/\s*["']\.\.["']"""
    r"""|(?:REPO|ROOT|REPO_ROOT)\.parent\b"""
)


def _levels_up(node: ast.AST) -> int | None:
    """How many folders above the file's own folder `Path(__file__)...parents[k].parent...` climbs."""
    extra = 0
    while isinstance(node, ast.Attribute) and node.attr == "parent":
        extra += 1
        node = node.value
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
        index = node.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, int) and _is_this_file(node.value.value):
            return index.value + extra
        return None
    if extra and _is_this_file(node):
        return extra - 1
    return None


def _is_this_file(node: ast.AST) -> bool:
    """`Path(__file__)`, `Path(__file__).resolve()` or `Path(__file__).absolute()`."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("resolve", "absolute")
    ):
        node = node.func.value
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "Path"
        and len(node.args) == 1
        and getattr(node.args[0], "id", "") == "__file__"
    )


def outside_references(path: Path, text: str) -> list[str]:
    """The places in `text` (the file at `path` in the repository) that reach above the repository root."""
    found = [f"{m.group(0)!r}" for m in OUTSIDE_TEXT.finditer(text)]
    if path.suffix == ".py":
        depth = len(path.relative_to(ROOT).parts) - 1  # folders between the root and the file
        for node in ast.walk(ast.parse(text)):
            up = _levels_up(node)
            if up is not None and up > depth:
                found.append(f"line {node.lineno}: {ast.unparse(node)} is {up - depth} folder(s) above the root")
    return found


def project_files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES]
    for folder in CHECKED:
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in SUFFIXES and DATA not in p.parents and "__pycache__" not in p.parts
        ]
    return [p for p in files if p != Path(__file__).resolve()]


def test_no_file_refers_to_a_folder_above_the_repository_root() -> None:
    offenders = {}
    for path in project_files():
        if found := outside_references(path, path.read_text(errors="replace")):
            offenders[str(path.relative_to(ROOT))] = found
    assert not offenders, f"these read outside the repository (copy what they need into tests/fixtures/): {offenders}"


@pytest.mark.parametrize(
    "where,line",
    [
        ("tests/test_x.py", 'CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"'),
        ("tests/test_x.py", "DATA = Path(__file__).parents[2]"),
        ("tests/reliability/x.py", "UP = Path(__file__).resolve().parent.parent.parent.parent"),
        ("tests/reliability/x.py", 'CORPUS = REPO.parent / "shared"'),
        ("bench/x.py", 'SIBLING = "../shared/corpora/stratus-red-team"'),
        ("Makefile", "\tcp ../shared/corpora/x tests/"),
    ],
)
def test_the_check_finds_what_reaches_outside(where: str, line: str) -> None:
    assert outside_references(ROOT / where, line + "\n")


@pytest.mark.parametrize(
    "where,line",
    [
        ("tests/test_x.py", 'FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"'),
        ("tests/reliability/x.py", "REPO = Path(__file__).resolve().parents[2]"),
        ("pipeline/x.py", "HERE = Path(__file__).resolve().parent"),
        ("tests/test_x.py", 'BAD_ZONE = {"time_zone": "../../etc/passwd"}  # hostile input, not a path we read'),
    ],
)
def test_the_check_lets_the_repository_s_own_paths_be(where: str, line: str) -> None:
    assert outside_references(ROOT / where, line + "\n") == []


def test_the_vendored_corpus_is_complete_and_licensed() -> None:
    corpus = ROOT / "tests" / "fixtures" / "stratus-red-team"
    assert len(list((corpus / "detonation-logs").glob("aws.*.json"))) == 35
    assert "Apache License" in (corpus / "LICENSE").read_text()
    notice = (ROOT / "NOTICE").read_text()
    assert "tests/fixtures/stratus-red-team" in notice and "DataDog/stratus-red-team" in notice


def test_the_licence_file_matches_the_package_metadata() -> None:
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    assert "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
