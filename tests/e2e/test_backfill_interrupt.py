"""Ctrl-C during a backfill on worker processes: the command exits 130 and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.encode import cloudtrail_files
from pipeline.scenario import build

ACCOUNTS = 12


def _group(pgid: int) -> list[str]:
    """The command lines of the live processes in process group `pgid`."""
    out = subprocess.run(["ps", "-eo", "pgid=,stat=,args="], capture_output=True, text=True, check=True).stdout  # noqa: S607 (ps from PATH)
    return [line for line in out.splitlines() if line.split()[0] == str(pgid) and not line.split()[1].startswith("Z")]


@pytest.mark.slow
def test_ctrl_c_stops_the_workers(tmp_path: Path) -> None:
    scenario = build(2500, seed=5)
    for key, data in cloudtrail_files(scenario.events, seed=5):
        for n in range(ACCOUNTS):  # the same day in a dozen accounts: long enough to interrupt
            account = f"{n + 100000000000:012d}"
            path = tmp_path / key.replace(key.split("/")[1], account, 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    day = datetime.fromtimestamp(scenario.start, UTC).strftime("%Y-%m-%d")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "backfill", str(tmp_path), "--from", day, "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        while len(_group(proc.pid)) < 4 and proc.poll() is None:  # the command, the fork server, two workers
            assert time.monotonic() < deadline, _group(proc.pid)
            time.sleep(0.2)
        assert proc.poll() is None, "finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the foreground group
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err.decode()
        assert "interrupted" in err.decode() and "Traceback" not in err.decode(), err.decode()
        deadline = time.monotonic() + 30
        while _group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _group(proc.pid) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
