"""A record processor's own metrics, written as EMF lines on stderr (`pipeline.emf`; docs/metrics.md).

    metrics = StageMetrics("trailwarden-router", Stage.ROUTER)
    metrics.add(RECORDS_IN, 120); metrics.add(FINDINGS_OUT, 1, ("Severity", "high"))
    metrics.after_batch()        # writes the lines when the interval has passed (0: after every batch)
    metrics.follow_waits()       # ... and after each sink retry, so a held batch still reports
    metrics.flush()              # at shutdown

Counts are summed over the interval, gauges keep their last value, samples are kept as a list; one line
per interval for the stage's totals (every counter, zeros included, so alarms never see missing data),
and one per breakdown (a severity, a rule, a shard) that had something. stdout is the KCL's protocol
channel, so the lines go to stderr, which the daemon copies to its own output as they are.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from consumers.sinks.retry import WAITS
from pipeline import emf
from pipeline.emf import Metric, Unit
from pipeline.finding import Finding
from pipeline.stages import Stage

NAMESPACE = "Trailwarden"
DEFAULT_INTERVAL = 60.0

RECORDS_IN = Metric("RecordsIn", Unit.COUNT)
EVENTS_IN = Metric("EventsIn", Unit.COUNT)
FINDINGS_OUT = Metric("FindingsOut", Unit.COUNT)
DEAD_LETTERS = Metric("DeadLetters", Unit.COUNT)
RULE_ERRORS = Metric("RuleErrors", Unit.COUNT)
SINK_RETRIES = Metric("SinkRetries", Unit.COUNT)
SINK_WAIT = Metric("SinkWaitSeconds", Unit.SECONDS)
DEDUPE_HITS = Metric("DedupeHits", Unit.COUNT)
KEYED_FACTS_OUT = Metric("KeyedFactsOut", Unit.COUNT)
TRACKED_KEYS = Metric("TrackedKeys", Unit.COUNT)
WATERMARK_LAG = Metric("WatermarkLagSeconds", Unit.SECONDS)
SNAPSHOT_BYTES = Metric("SnapshotBytes", Unit.BYTES)
SNAPSHOT_MILLIS = Metric("SnapshotMillis", Unit.MILLISECONDS)

COMMON = (RECORDS_IN, FINDINGS_OUT, DEAD_LETTERS, RULE_ERRORS, SINK_RETRIES, SINK_WAIT, DEDUPE_HITS)
TOTALS: dict[Stage, tuple[Metric, ...]] = {  # the counters every interval's totals line has, zeros included
    Stage.ROUTER: (*COMMON, EVENTS_IN, KEYED_FACTS_OUT),
    Stage.STATEFUL: COMMON,
}

Breakdown = tuple[str, str]  # (dimension name, value), e.g. ("Severity", "high")


class StageMetrics:
    """One processor's metrics for its stage; `enabled=False` keeps the counts and writes nothing."""

    def __init__(
        self,
        application: str,
        stage: Stage,
        *,
        out: TextIO | None = None,
        interval: float = DEFAULT_INTERVAL,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dimensions = {"Application": application, "Stage": stage.value}
        self.stage = stage
        self.out = out
        self.interval = interval
        self.enabled = enabled
        self.clock = clock
        self._counts: dict[tuple[Metric, Breakdown | None], float] = defaultdict(float)
        self._gauges: dict[tuple[Metric, Breakdown | None], float] = {}
        self._samples: dict[Metric, list[float]] = {}
        self._waits = (WAITS.retries, WAITS.seconds)
        self._rule_errors: Counter[str] = Counter()
        self._last_flush = clock()

    @classmethod
    def off(cls) -> StageMetrics:
        return cls("", Stage.ROUTER, enabled=False)

    def add(self, metric: Metric, value: float = 1, breakdown: Breakdown | None = None) -> None:
        """A count over the interval; with a breakdown, counted in the total and in the breakdown's line."""
        self._counts[(metric, None)] += value
        if breakdown is not None:
            self._counts[(metric, breakdown)] += value

    def gauge(self, metric: Metric, value: float, breakdown: Breakdown | None = None) -> None:
        self._gauges[(metric, breakdown)] = value

    def sample(self, metric: Metric, value: float) -> None:
        self._samples.setdefault(metric, []).append(value)

    def rule_errors(self, cumulative: Mapping[str, int]) -> None:
        """A stage's running count of errors per rule (engine or state stats): what is new since the last call."""
        for rule_id, total in cumulative.items():
            seen = self._rule_errors[rule_id]
            new = total - seen if total >= seen else total  # a new state (restored) counts from 0 again
            if new > 0:
                self.add(RULE_ERRORS, new, ("RuleId", rule_id))
                self._rule_errors[rule_id] = total

    def published(self, given: int, fresh: Sequence[Finding]) -> None:
        """A publish of `given` findings sent `fresh` (the rest were alerted before: dedupe hits)."""
        for finding in fresh:
            self.add(FINDINGS_OUT, 1, ("Severity", finding.severity))
        self.add(DEDUPE_HITS, max(0, given - len(fresh)))  # a digest or resolution is sent with none given

    def follow_waits(self) -> StageMetrics:
        """Check the interval after each sink retry of this process too (not only after a batch): a batch held
        by a sink that does not answer still writes its lines, SinkRetries and SinkWaitSeconds among them."""
        WAITS.listener = self.after_batch
        return self

    def after_batch(self) -> None:
        if self.clock() - self._last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write the interval's lines and start the next interval."""
        now = self.clock()
        self._take_waits()
        lines = [emf.line(doc) for doc in self.records(int(now * 1000))]
        self._counts.clear()
        self._gauges.clear()
        self._samples.clear()
        self._last_flush = now
        if self.enabled:
            out = self.out or sys.stderr
            out.write("".join(lines))
            out.flush()

    def _take_waits(self) -> None:
        retries, seconds = WAITS.retries - self._waits[0], WAITS.seconds - self._waits[1]
        self._waits = (WAITS.retries, WAITS.seconds)
        if retries:
            self.add(SINK_RETRIES, retries)
            self.add(SINK_WAIT, round(seconds, 3))

    def records(self, timestamp_ms: int) -> list[dict[str, object]]:
        """The interval's EMF records: the totals, then one per breakdown."""
        totals: dict[Metric, emf.Value] = {m: 0 for m in TOTALS[self.stage]}
        groups: dict[Breakdown, dict[Metric, emf.Value]] = {}
        for (metric, breakdown), value in [*self._counts.items(), *self._gauges.items()]:
            if breakdown is None:
                totals[metric] = value
            else:
                groups.setdefault(breakdown, {})[metric] = value
        totals.update(self._samples)
        docs = [emf.record(NAMESPACE, self.dimensions, totals, timestamp_ms)]
        for (name, label), values in sorted(groups.items()):
            docs.append(emf.record(NAMESPACE, {**self.dimensions, name: label}, values, timestamp_ms))
        return docs
