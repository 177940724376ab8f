"""Keep the live pipeline's processes running (the KCL daemons, the deliverer): restart one that exits, as a
service manager would.

A MultiLangDaemon exits when one of its record processors dies (a crash, an out-of-memory kill) or when it
is killed itself. Its leases are its own again under the same worker id, and what it had not checkpointed
is read again (docs/architecture.md, "Delivery"), so a restart loses nothing. Restarts back off
exponentially while a daemon keeps exiting soon after its start, and stop at a limit: a daemon that cannot
stay up says so instead of restarting forever. On AWS the container service does this job.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from consumers.launcher import exit_code

log = logging.getLogger(__name__)


class Supervised(Protocol):
    """A process the supervisor watches: a KCL daemon (`consumers.launcher.Daemon`) or the deliverer."""

    @property
    def pid(self) -> int: ...

    @property
    def started(self) -> float: ...  # time.monotonic() at its start

    @property
    def log_file(self) -> Path | None: ...

    @property
    def process(self) -> subprocess.Popen | None: ...

    def alive(self) -> bool: ...


K = TypeVar("K", bound=str)  # what names a supervised process: a `Stage`, or "deliverer"


@dataclass(frozen=True)
class RestartPolicy:
    """Delays of base, 2 base, 4 base... (at most `cap`) between restarts of a daemon that exits again within
    `stable` seconds of its start; after `limit` such restarts in a row, no more."""

    base: float = 1.0
    cap: float = 30.0
    limit: int = 8
    stable: float = 60.0

    def delay(self, in_a_row: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, in_a_row - 1))


def _say(message: str) -> None:
    print(f"trailwarden: {message}", file=sys.stderr, flush=True)


class Supervisor(Generic[K]):
    """A thread that watches `daemons` (name -> process, shared with its owner under `lock`) and calls
    `restart(name)` for one that exited; each restart is told through `say` and counted in `restarts`."""

    def __init__(
        self,
        daemons: Mapping[K, Supervised],
        restart: Callable[[K], Supervised],
        lock: threading.RLock,
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] | None = None,
        poll: float = 0.25,
    ) -> None:
        self.daemons = daemons
        self.restart = restart
        self.lock = lock
        self.policy = policy or RestartPolicy()
        self.say = say or _say
        self.poll = poll
        self.restarts: Counter[K] = Counter()
        self.gave_up: dict[K, str] = {}
        self._in_a_row: Counter[K] = Counter()
        self._due: dict[K, float] = {}  # stage -> when its restart is due
        self._held: dict[str, float] = {}  # name -> no restart before this (monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="trailwarden-supervisor", daemon=True)

    def start(self) -> Supervisor[K]:
        self._thread.start()
        return self

    def stop(self) -> None:
        """No restart after this returns (call before stopping the daemons)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            with self.lock:  # a restart under way finishes first
                pass
            self._thread.join(timeout=30)

    def hold(self, stage: str, seconds: float, now: float | None = None) -> None:
        """Restart nothing of `stage` for the next `seconds` (a planned stop; the crashes row keeps a router
        down for longer than a rule's grace period this way)."""
        with self.lock:
            self._held[str(stage)] = (time.monotonic() if now is None else now) + seconds

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.check()
            except Exception as exc:  # a restart that failed (Java gone, lease table unreachable): try again later
                log.exception("supervisor: %s", exc)

    def check(self, now: float | None = None) -> None:
        """One look at the daemons: note the ones that exited, restart those whose delay is over."""
        with self.lock:
            if self._stop.is_set():
                return
            now = time.monotonic() if now is None else now
            for stage, daemon in list(self.daemons.items()):
                if stage in self.gave_up or daemon.alive():
                    continue
                if stage not in self._due:
                    self._exited(stage, daemon, now)
                elif now >= max(self._due[stage], self._held.get(stage, 0.0)):
                    del self._due[stage]
                    new = self.restart(stage)
                    self.restarts[stage] += 1
                    self.say(f"{stage} daemon restarted, pid {new.pid} (restart {self.restarts[stage]})")

    def _exited(self, stage: K, daemon: Supervised, now: float) -> None:
        code = daemon.process.poll() if daemon.process is not None else None
        how = f"exit status {exit_code(code)}" if code is not None else "gone"
        if now - daemon.started >= self.policy.stable:
            self._in_a_row[stage] = 0
        self._in_a_row[stage] += 1
        if self._in_a_row[stage] > self.policy.limit:
            self.gave_up[stage] = f"{stage} daemon exited ({how}) {self.policy.limit + 1} times in a row"
            self.say(
                f"{self.gave_up[stage]}, each within {self.policy.stable:g} s of its start: not restarting it "
                f"again; see its log {daemon.log_file or ''}".rstrip()
            )
            return
        delay = self.policy.delay(self._in_a_row[stage])
        self._due[stage] = now + delay
        self.say(
            f"{stage} daemon (pid {daemon.pid}) exited ({how}) after {now - daemon.started:.0f} s; "
            f"restarting it in {delay:g} s"
        )

    def report(self) -> str:
        """For a final summary: the restarts per stage, and the daemons given up on."""
        counts = ", ".join(f"{stage} {self.restarts[stage]}" for stage in self.daemons)
        text = f"daemon restarts: {sum(self.restarts.values())} ({counts})"
        return text + "".join(f"; {reason}, given up" for reason in self.gave_up.values())
