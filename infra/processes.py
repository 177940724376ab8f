"""Processes we started, by pid: whether one still runs, and stopping it (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie counts as gone (and is reaped if it is our child)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def stop_pid(
    pid: int, timeout: float = 10.0, first: int = signal.SIGTERM, is_alive: Callable[[], bool] | None = None
) -> bool:
    """Send `first`, then SIGKILL if the process still runs after `timeout` seconds. True once it is gone."""
    running = is_alive or (lambda: alive(pid))
    for sig, wait in ((first, timeout), (signal.SIGKILL, 5.0)):
        if not running():
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
    return not running()
