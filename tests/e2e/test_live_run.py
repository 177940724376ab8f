"""`trailwarden run` end to end against an emulator of the test's own (slow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    from infra import emulator

    monkeypatch.setenv("TRAILWARDEN_STATE_DIR", str(tmp_path / "state"))
    for name in ("AWS_ENDPOINT_URL", "TRAILWARDEN_TARGET", "LOCALSTACK_HOST", "TRAILWARDEN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    handle = emulator.start(emulator.free_port(), log_file=tmp_path / "emulator.log")
    try:
        yield handle.endpoint
    finally:
        handle.stop()


def test_run_prints_findings_as_they_arrive_and_finds_what_the_scenario_expects(endpoint, capsys):
    code = main(["run", "--endpoint-url", endpoint, "--events", "400", "--seed", "5",
                 "--scenario", "security-group-open,root-usage", "--wait", "90"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "result: OK" in err
    assert re.search(r"medium\s+ec2-security-group-open-to-internet", out)
    # the CIS change monitor's finding is info: looked for, and found, in the archive rather than on the topic
    assert "alert policy: medium and above" in err
    assert re.search(r"expected findings archived only, in the Firehose archive: ([1-9]\d*)/\1 found", err), err
    assert not re.search(r"^\d\d:\d\d:\d\d  info ", out, re.M)
    assert "root" in out
    pids = [int(p) for p in re.findall(r"(?:router|stateful) pid (\d+)", err)]
    assert len(pids) == 2
    for pid in pids:  # both daemons stopped by the command itself
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(") ", 1)[1].startswith("Z")
