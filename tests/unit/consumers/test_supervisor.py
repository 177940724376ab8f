"""The supervisor of the live pipeline's daemons (fast): a daemon that exits is restarted after a growing delay,
each restart said and counted, and given up after a limit of quick exits in a row."""

from __future__ import annotations

import threading
from pathlib import Path

from consumers.launcher import Daemon
from consumers.supervisor import RestartPolicy, Supervisor
from pipeline.stages import Stage


class Process:
    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class Pipeline:
    """Daemons that exit when told, and a restart that starts a new one at the fake clock's time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pids = iter(range(100, 1000))
        self.daemons = {stage: self.new(stage) for stage in Stage}
        self.said: list[str] = []

    def new(self, stage: Stage) -> Daemon:
        process = Process()
        return Daemon(next(self.pids), f"app-{stage}", Path("p"), Path(f"{stage}.log"), None, process, started=self.now)  # type: ignore[arg-type]

    def restart(self, stage: Stage) -> Daemon:
        self.daemons[stage] = self.new(stage)
        return self.daemons[stage]

    def exit(self, stage: Stage, code: int) -> None:
        self.daemons[stage].process.returncode = code  # type: ignore[union-attr]


def supervisor(pipeline: Pipeline, policy: RestartPolicy) -> Supervisor:
    return Supervisor(pipeline.daemons, pipeline.restart, threading.RLock(), policy, say=pipeline.said.append)


def test_a_daemon_that_exits_is_restarted_after_a_growing_delay_and_counted():
    pipeline = Pipeline()
    watch = supervisor(pipeline, RestartPolicy(base=1, cap=4, limit=10, stable=60))
    first, other = pipeline.daemons[Stage.ROUTER].pid, pipeline.daemons[Stage.STATEFUL].pid
    pipeline.now += 100  # it ran long enough: a first quick restart
    pipeline.exit(Stage.ROUTER, -9)
    watch.check(pipeline.now)
    assert pipeline.daemons[Stage.ROUTER].pid == first and "exit status 137" in pipeline.said[-1]
    watch.check(pipeline.now + 0.5)
    assert pipeline.daemons[Stage.ROUTER].pid == first  # the delay (1 s) is not over
    pipeline.now += 1
    watch.check(pipeline.now)
    assert pipeline.daemons[Stage.ROUTER].pid != first and watch.restarts[Stage.ROUTER] == 1
    assert "router daemon restarted" in pipeline.said[-1]

    delays = []
    for _ in range(3):  # it keeps exiting at once: 2, 4, then 4 (the cap) seconds
        pipeline.exit(Stage.ROUTER, 1)
        watch.check(pipeline.now)
        delays.append(float(pipeline.said[-1].rsplit("in ", 1)[1].split()[0]))
        pipeline.now += delays[-1]
        watch.check(pipeline.now)
    assert delays == [2, 4, 4]
    assert watch.restarts == {Stage.ROUTER: 4}
    assert pipeline.daemons[Stage.STATEFUL].pid == other  # untouched
    assert watch.report() == "daemon restarts: 4 (router 4, stateful 0)"


def test_after_the_limit_of_quick_exits_in_a_row_it_gives_up_and_says_so():
    pipeline = Pipeline()
    watch = supervisor(pipeline, RestartPolicy(base=1, cap=1, limit=2, stable=60))
    for _ in range(3):
        pipeline.exit(Stage.STATEFUL, 1)
        watch.check(pipeline.now)
        pipeline.now += 1
        watch.check(pipeline.now)
    assert watch.restarts[Stage.STATEFUL] == 2
    assert Stage.STATEFUL in watch.gave_up and "not restarting it again" in pipeline.said[-1]
    assert "stateful.log" in pipeline.said[-1]
    pipeline.now += 100
    watch.check(pipeline.now)
    assert watch.restarts[Stage.STATEFUL] == 2
    assert "given up" in watch.report()


def test_a_daemon_that_stayed_up_starts_the_count_again():
    pipeline = Pipeline()
    watch = supervisor(pipeline, RestartPolicy(base=1, cap=30, limit=2, stable=60))
    for _ in range(5):  # five exits, each after more than `stable` seconds: never given up, always 1 s
        pipeline.now += 61
        pipeline.exit(Stage.ROUTER, 1)
        watch.check(pipeline.now)
        assert pipeline.said[-1].endswith("restarting it in 1 s")
        pipeline.now += 1
        watch.check(pipeline.now)
    assert watch.restarts[Stage.ROUTER] == 5 and not watch.gave_up


def test_after_stop_nothing_is_restarted():
    pipeline = Pipeline()
    watch = supervisor(pipeline, RestartPolicy(base=0, cap=0))
    watch.stop()
    pipeline.exit(Stage.ROUTER, 143)
    watch.check(pipeline.now)
    watch.check(pipeline.now + 1)
    assert not watch.restarts and pipeline.said == []


def test_a_held_stage_is_restarted_only_when_the_hold_is_over():
    pipeline = Pipeline()
    watch = supervisor(pipeline, RestartPolicy(base=1, cap=1, limit=5, stable=60))
    first = pipeline.daemons[Stage.ROUTER].pid
    watch.hold("router", 16, now=pipeline.now)
    pipeline.exit(Stage.ROUTER, -9)
    watch.check(pipeline.now)
    for step in (1, 5, 15.5):  # its restart delay (1 s) is over long before the hold
        watch.check(pipeline.now + step)
        assert pipeline.daemons[Stage.ROUTER].pid == first and not watch.restarts
    watch.check(pipeline.now + 16)
    assert pipeline.daemons[Stage.ROUTER].pid != first and watch.restarts == {Stage.ROUTER: 1}
