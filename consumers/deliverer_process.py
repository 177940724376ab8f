"""`trailwarden deliver` as a child process of `trailwarden run`, watched by a `Supervisor` like the KCL daemons:
a deliverer that exits (killed, out of memory, a crash) is started again, and what it had not delivered is
still in its destinations' queues. On AWS the deliverer is an ECS service of its own (infra/template.yaml).

    deliverer = start(target, config_file, directory, env)   # output in <directory>/deliver.log
    deliverer.pid; deliverer.alive(); deliverer.stop()       # SIGTERM (it finishes its sends), then SIGKILL
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra import aws
from infra.processes import stop_pid

log = logging.getLogger(__name__)

NAME = "deliverer"  # its name in the supervisor's messages and the run's summary


@dataclass
class DelivererProcess:
    pid: int
    process: subprocess.Popen
    log_file: Path
    started: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        stop_pid(self.pid, timeout, is_alive=self.alive)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def command(config: Path, python: str = sys.executable) -> list[str]:
    return [python, "-m", "pipeline.cli", "deliver", "--config", str(config)]


def start(target: aws.Target, config: Path, directory: Path, env: Mapping[str, str] | None = None) -> DelivererProcess:
    """`trailwarden deliver --config <config>` against `target`, in its own session, its output appended to
    `<directory>/deliver.log`."""
    directory.mkdir(parents=True, exist_ok=True)
    log_file = directory / "deliver.log"
    child_env = target.env()
    child_env.update(env or {})
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_file, "ab") as out:
        process = subprocess.Popen(  # noqa: S603 (argv built here: our interpreter, our module, a path)
            command(config),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=child_env,
            start_new_session=True,
        )
    log.info("deliverer started, pid %d, log %s", process.pid, log_file)
    return DelivererProcess(process.pid, process, log_file)
