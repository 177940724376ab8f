"""`trailwarden replay` run as a user runs it, in a child process, with its daemons always stopped after.

The command stops what it started on its own `--timeout` and on SIGTERM. A test's own deadline must not
SIGKILL it (`subprocess.run(timeout=...)` does): its KCL daemons run in sessions of their own and would
outlive it, reading and holding leases beside the next test. Here a command past the test's deadline gets
a SIGTERM (its clean stop), a SIGKILL only if it does not finish that in `grace` seconds, and then, whatever
happened, every daemon still recorded under the state folder's replay runs is stopped by its pid.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from consumers import launcher


def run_replay(
    command: Sequence[str], env: Mapping[str, str], cwd: Path, state: Path, timeout: float, grace: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `command` (a `trailwarden replay` whose TRAILWARDEN_STATE_DIR is `state`) to its end; AssertionError
    with its stderr if it is still running after `timeout` seconds (it is stopped first, its daemons too)."""
    process = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env), cwd=cwd
    )
    try:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                out, err = process.communicate(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            raise AssertionError(f"replay still running after {timeout:g} s; stopped it\n{err[-4000:]}") from None
    finally:
        if process.poll() is None:  # an exception of our own (KeyboardInterrupt) while it ran
            process.kill()
            process.wait()
        stop_left_daemons(state)
    return subprocess.CompletedProcess(list(command), process.returncode, out, err)


def left_daemons(state: Path) -> list[launcher.Daemon]:
    """The replay daemons whose pid files are still under `state` (a replay removes each as it stops it)."""
    found = []
    for pid_file in sorted((state / "replay").glob("*/kcl/*.pid")):
        try:
            recorded = json.loads(pid_file.read_text())
            pid, application = int(recorded["pid"]), str(recorded["application"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(launcher.Daemon(pid, application, pid_file.with_suffix(".properties"), None, pid_file))
    return found


def stop_left_daemons(state: Path) -> list[int]:
    """SIGKILL (then their processors) each replay daemon still running under `state`; returns their pids."""
    running = [d for d in left_daemons(state) if d.alive() and _is_daemon(d)]
    launcher.stop_all(running, graceful=False)
    return [d.pid for d in running]


def _is_daemon(daemon: launcher.Daemon) -> bool:
    """The pid still belongs to that daemon (a recycled pid is someone else's): its command line names its
    properties file."""
    try:
        argv = Path(f"/proc/{daemon.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(str(daemon.properties_file).encode() in arg for arg in argv)
