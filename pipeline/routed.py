"""Stage 1 in worker processes, for `backfill` on every core: a file's bytes in, its events routed out
(the processes themselves are started by `infra.workers.RouterPool`).

A worker decodes one file, keeps the events in the time range, sorts them like `ordering.sort_file` and
runs stage 1 on each (`RouterStage`: match rules and fact extraction). What comes back is small: the
times of its events in one array of doubles (pickled as raw bytes), and for the few events that matched
or gave facts their index, findings and facts (`Routed`), plus the file's dead letters and counts. The
parent merges files by event time per account and region as before and, event by event, gives each
`Routed` to `Detector.take` and each other event's time to `Detector.advance`, which applies the facts to
the one keyed state and moves its event time, in event-time order: stage 2 stays in one process, so the
findings are those of a single-process backfill.

The first-seen refresh throttle of `FactExtractor` is per process, so several workers may send a
remembered value again sooner than one process would; that only refreshes what stage 2 already holds.
"""

from __future__ import annotations

import os
import signal
import time
from array import array
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from pipeline.config import Config
from pipeline.decode import DeadLetter, DecodeStats, decode
from pipeline.engine import EngineStats
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.ordering import sort_file
from pipeline.pack import bind_pack
from pipeline.runtime import tune_gc
from pipeline.stages import RouterStage
from pipeline.stateful.facts import Fact

_NONE: tuple[()] = ()


class Routed(NamedTuple):
    """One event after stage 1: its time, and the match findings and keyed facts it gave (usually none)."""

    time: float
    findings: tuple[Finding, ...] | list[Finding] = _NONE
    facts: tuple[Fact, ...] | list[Fact] = _NONE


@dataclass
class RoutedFile:
    """One file through stage 1: its dead letters, and its events in the range by event time as `times`,
    with `hits` the (index in `times`, `Routed`) of those that gave findings or facts."""

    times: array[float]
    hits: list[tuple[int, Routed]]
    dead: list[DeadLetter]
    size: int
    decode: DecodeStats
    stage1: EngineStats = field(default_factory=EngineStats)
    facts_out: int = 0
    outside: int = 0
    worker: int = 0  # the worker's process id
    worker_cpu: float = 0.0  # its CPU seconds so far, start-up included (for `bench/backfill.py`)

    @property
    def events(self) -> int:
        return len(self.times)

    def keyed(self) -> Iterator[tuple[float, Routed | float]]:
        """Its events with their merge key (the event time): a `Routed` for each hit, the bare time otherwise."""
        items: list[Routed | float] = self.times.tolist()  # type: ignore[assignment]
        for i, routed in self.hits:
            items[i] = routed
        return zip(self.times, items, strict=True)


_stage: RouterStage | None = None


def start_worker(
    config: Config, only: list[str], overrides: dict[str, dict[str, object]], sigma: list[str] | None = None
) -> None:
    """In a new worker process: bind the pack `route_file` runs (the parent's: the same rules, configuration,
    overrides and `--sigma` paths). Ctrl-C is the parent's to handle: it stops the workers."""
    global _stage
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_gc()
    _stage = RouterStage(bind_pack(config, only, overrides=overrides, sigma=sigma or ()))


def route_file(data: bytes, origin: str, start: float, end: float, max_size: int) -> RoutedFile:
    """In a worker: decode `data`, keep events in [start, end], sort, run stage 1 on each."""
    assert _stage is not None, "route_file runs in a worker started with start_worker"  # noqa: S101 (a caller bug)
    stats = DecodeStats()
    kept: list[Event | DeadLetter] = []
    outside = 0
    for item in decode(data, origin, stats, max_size):
        if type(item) is DeadLetter or start <= item.time <= end:  # type: ignore[union-attr]
            kept.append(item)
        else:
            outside += 1
    engine, extractor = _stage.engine, _stage.extractor
    engine.stats = extractor.stats = EngineStats()  # this file's counts only, added up by the parent
    extractor.facts_out = 0
    process, facts = engine.process, extractor.facts
    times: array[float] = array("d")
    hits: list[tuple[int, Routed]] = []
    dead: list[DeadLetter] = []
    for item in sort_file(kept):
        if type(item) is DeadLetter:
            dead.append(item)
            continue
        found = process(item)  # type: ignore[arg-type]
        keyed = facts(item)  # type: ignore[arg-type]
        if found or keyed:
            hits.append((len(times), Routed(item.time, found or _NONE, keyed or _NONE)))  # type: ignore[union-attr]
        times.append(item.time)  # type: ignore[union-attr]
    return RoutedFile(
        times,
        hits,
        dead,
        len(data),
        stats,
        engine.stats,
        extractor.facts_out,
        outside,
        os.getpid(),
        time.process_time(),
    )


class Router(Protocol):
    """Runs `route_file` on whole files somewhere else (worker processes: `infra.workers.RouterPool`)."""

    def submit(self, data: bytes, origin: str, start: float, end: float, max_size: int) -> Future[RoutedFile]: ...

    def close(self) -> None: ...


def add_stats(into: EngineStats, stats: Iterable[EngineStats]) -> None:
    """Add workers' stage-1 counts to `into`."""
    for s in stats:
        into.events += s.events
        into.findings.update(s.findings)
        into.suppressed.update(s.suppressed)
        into.rule_errors.update(s.rule_errors)
        into.last_errors.extend(s.last_errors[: max(0, 20 - len(into.last_errors))])
