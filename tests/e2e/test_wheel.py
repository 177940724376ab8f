"""The built wheel works outside the checkout (slow): installed into a fresh virtualenv with its runtime
dependencies only (no `local` extra), run from another folder, it tests its rules, scans CloudTrail and
runs the live pipeline's KCL daemons against an emulator; what needs the extra says how to get it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import emulator
from pipeline.detector import Detector
from pipeline.event import Event
from tests.support.corpus import STRATUS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TECHNIQUE = "aws.defense-evasion.cloudtrail-stop.json"


class Installed:
    def __init__(self, venv: Path, work: Path) -> None:
        self.venv, self.work = venv, work
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "VIRTUAL_ENV", "AWS_ENDPOINT_URL", "LOCALSTACK_HOST",
                                 "TRAILWARDEN_TARGET", "TRAILWARDEN_CONFIG")}
        self.env["TRAILWARDEN_STATE_DIR"] = str(work / "state")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / args[0]), *args[1:]], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (base / "dist").glob("trailwarden-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True, timeout=120)
    subprocess.run([str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    work = base / "elsewhere"
    work.mkdir()
    return Installed(base / "venv", work)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    handle = emulator.start(emulator.free_port(), log_file=tmp_path / "emulator.log")
    try:
        yield handle.endpoint
    finally:
        handle.stop()


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    probe = installed.run("python", "-c", "import pipeline, consumers, infra, json; "
                                          "print(json.dumps([m.__file__ for m in (pipeline, consumers, infra)]))")
    assert probe.returncode == 0, probe.stderr
    for path in json.loads(probe.stdout):
        assert str(installed.venv) in path and str(ROOT) not in path
    extra = installed.run("python", "-c", "import moto")
    assert extra.returncode != 0, "the emulator is an optional extra, not a runtime dependency"


def test_rules_test_and_scan_run_from_another_folder(installed: Installed) -> None:
    tested = installed.run("trailwarden", "rules", "test", "-q")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " 0 failed" in tested.stdout + tested.stderr

    shutil.copy(STRATUS / TECHNIQUE, installed.work / TECHNIQUE)
    scanned = installed.run("trailwarden", "scan", TECHNIQUE, "--format", "json", "-q")
    assert scanned.returncode == 0, scanned.stderr
    ids = {json.loads(line)["id"] for line in scanned.stdout.splitlines()}
    detector = Detector()
    events = [Event.from_record(r) for r in json.loads((STRATUS / TECHNIQUE).read_text())]
    expected = {f.id for e in sorted(events, key=lambda e: e.time) for f in detector.process(e)}
    expected |= {f.id for f in detector.finish()}
    assert ids and ids == expected


def test_run_starts_both_kcl_daemons_from_the_wheel(installed: Installed, endpoint: str) -> None:
    ran = installed.run("trailwarden", "run", "--endpoint-url", endpoint, "--events", "300", "--seed", "3",
                        "--scenario", "security-group-open", "--wait", "90")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "result: OK" in ran.stderr
    assert "ec2-security-group-open-to-internet" in ran.stdout


def test_the_embedded_emulator_without_the_local_extra_says_what_to_install(installed: Installed) -> None:
    up = installed.run("trailwarden", "stack", "up")
    assert up.returncode != 0
    assert "pip install 'trailwarden[local]'" in up.stderr
