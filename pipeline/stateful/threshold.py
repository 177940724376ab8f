"""Threshold rules: at least `threshold` facts (or, with `distinct`, distinct values) per key within `window`."""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.finding import Finding, window_start
from pipeline.rule import Case, Gate, Kind, Params, metadata
from pipeline.stateful.facts import Fact
from pipeline.stateful.findings import NO_META, Meta
from pipeline.stateful.logic import KindLogic, Out, field_names, load_meta
from pipeline.stateful.options import KindOptions, count, duration
from pipeline.stateful.rule import Extractor, HitFor, StatefulRule, declare


@dataclass(frozen=True, slots=True)
class Options(KindOptions):
    window: float = duration()
    threshold: int = count()
    distinct: bool = False  # count distinct `Step.value`s instead of facts
    ttl: float | None = duration(None)  # None: window + dedup period; never less than the window


@dataclass(slots=True)
class CountState:
    entries: list[tuple[float, str]] = field(default_factory=list)  # (time, event id), sorted, at most `threshold`
    quiet: float = 0.0  # no finding before this time (the dedup period after the last)
    last: float = 0.0
    meta: Meta = NO_META  # of the newest fact
    alerted: float | None = None  # event time of the open finding (None: none open)
    alert_meta: Meta = NO_META  # of the fact that raised it
    repeats: int = 0  # facts counted since it was raised (its resolution's occurrences - 1)


@dataclass(slots=True)
class DistinctState:
    values: dict[str, tuple[float, str]] = field(default_factory=dict)  # value -> (newest time, its event id)
    quiet: float = 0.0
    last: float = 0.0
    meta: Meta = NO_META
    alerted: float | None = None
    alert_meta: Meta = NO_META
    repeats: int = 0


State = CountState | DistinctState

BURST_STOPPED = "burst stopped"
SUPERSEDED = "continued as a new finding"


class Logic(KindLogic[Options, State]):
    """Only the last `threshold` entries are kept per key, so a key's state is bounded whatever the
    volume. After a finding the key is quiet for the dedup period (counting goes on).

    The finding resolves ("burst stopped", same id, `occurrences` the facts counted while it was open)
    once a quiet period as long as `window` passes in event time after the key's last fact; if the
    burst outlasts the dedup period, the next finding (a new window, a new id) resolves the previous one
    ("continued as a new finding")."""

    kind = Kind.THRESHOLD
    options_type = Options

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = self.options
        self.ttl = max(o.ttl if o.ttl else o.window + max(self.dedup, 0), o.window)
        self.state_fields = field_names(DistinctState if o.distinct else CountState)

    def apply(self, state: State | None, fact: Fact, out: Out) -> State | None:
        o = self.options
        t = fact.time
        if o.distinct:
            if not fact.value:
                return state
            state, n, ids = self._distinct(state if type(state) is DistinctState else DistinctState(), fact)
        else:
            state, n, ids = self._count(state if type(state) is CountState else CountState(), fact)
        state.last = max(state.last, t)
        state.meta = fact.meta
        if state.alerted is not None:
            state.repeats += 1
        if n >= o.threshold and t >= state.quiet:
            state.quiet = t + self.dedup
            if state.alerted is not None:
                state.repeats -= 1  # this fact opens the next finding
                out.emit(self._resolution(state, fact.key, ids, t, SUPERSEDED, fact.event_id))
            else:
                out.timer(t + o.window, fact.key)
            state.alerted, state.alert_meta, state.repeats = t, fact.meta, 0
            out.emit(self._open_finding(state, fact.key, ids))
        return state

    def _open_finding(self, state: State, key: str, ids: list[str]) -> Finding:
        """The key's open finding (raised at `state.alerted`), with `ids` the events it names."""
        o = self.options
        t = state.alerted
        assert t is not None  # noqa: S101 (narrows the type: called only for an alerted key)
        n = len(ids)
        what = "distinct values" if o.distinct else "events"
        ctx: dict[str, Any] = {"count": n, "threshold": o.threshold, "window_seconds": o.window}
        if type(state) is DistinctState:
            ctx["values"] = sorted(state.values)
        return self.finding(
            key,
            state.alert_meta,
            event_ids=ids,
            event_time=t,
            window=window_start(t, self.dedup),
            summary=f"{self.rule.title}: {n} {what} for {key} within {int(o.window)}s",
            context=ctx,
        )

    def fire(self, state: State, key: str, deadline: float, out: Out) -> State:
        if state.alerted is None:
            return state
        quiet_end = state.last + self.options.window
        if deadline < quiet_end:
            out.timer(quiet_end, key)  # facts came since the timer was set: wait for the quiet period again
            return state
        ids = [e for _, e in state.entries] if isinstance(state, CountState) else [e for _, e in state.values.values()]
        out.emit(self._resolution(state, key, ids, quiet_end, BURST_STOPPED))
        state.alerted, state.alert_meta, state.repeats = None, NO_META, 0
        return state

    def _resolution(self, state: State, key: str, ids: list[str], at: float, why: str, event_id: str = "") -> Finding:
        resolution = self._open_finding(state, key, ids).resolved(at, why, event_id)
        resolution.occurrences = 1 + state.repeats
        return resolution

    def deadline(self, state: State) -> float | None:
        return None if state.alerted is None else state.last + self.options.window

    def is_open(self, state: State) -> bool:
        return False  # a timer waiting for a finding to resolve is no detection still open

    def _count(self, state: CountState, fact: Fact) -> tuple[CountState, int, list[str]]:
        o = self.options
        entries = state.entries
        insort(entries, (fact.time, fact.event_id))
        newest = entries[-1][0]
        while entries and entries[0][0] < newest - o.window:
            entries.pop(0)
        if len(entries) > o.threshold:
            del entries[: len(entries) - o.threshold]
        return state, len(entries), [e for _, e in entries]

    def _distinct(self, state: DistinctState, fact: Fact) -> tuple[DistinctState, int, list[str]]:
        o = self.options
        values = state.values
        prev = values.get(fact.value)
        if prev is None or prev[0] < fact.time:
            values.pop(fact.value, None)
            values[fact.value] = (fact.time, fact.event_id)
        newest = max(v[0] for v in values.values())
        for v in [v for v, (vt, _) in values.items() if vt < newest - o.window]:
            del values[v]
        while len(values) > o.threshold:
            del values[min(values, key=lambda v: values[v])]
        return state, len(values), [e for _, e in sorted(values.values())]

    def dump(self, s: State) -> list[Any]:
        if isinstance(s, DistinctState):
            return [
                [[v, t, e] for v, (t, e) in s.values.items()],
                s.quiet,
                s.last,
                s.meta,
                s.alerted,
                s.alert_meta,
                s.repeats,
            ]
        return [s.entries, s.quiet, s.last, s.meta, s.alerted, s.alert_meta, s.repeats]

    def load(self, row: list[Any]) -> State:
        if self.options.distinct:
            return DistinctState(
                {str(v): (float(t), str(e)) for v, t, e in row[0]},
                float(row[1]),
                float(row[2]),
                load_meta(row[3]),
                _time(row[4]),
                load_meta(row[5]),
                int(row[6]),
            )
        return CountState(
            [(float(t), str(e)) for t, e in row[0]],
            float(row[1]),
            float(row[2]),
            load_meta(row[3]),
            _time(row[4]),
            load_meta(row[5]),
            int(row[6]),
        )


def _time(value: Any) -> float | None:
    return None if value is None else float(value)


def threshold(
    *,
    id: str,
    title: str,
    severity: str,
    attack: str | Iterable[str],
    events: Mapping[str, Iterable[str] | str],
    window: str | float,
    threshold: str | int,
    distinct: bool = False,
    params: Mapping[str, Any] | None = None,
    ttl: str | float | None = None,
    dedup: str | float = "1h",
    fields: Iterable[str] = (),
    runbook: str = "",
    cases: Iterable[Case] = (),
    hit: HitFor | None = None,
    gates: Iterable[Gate] = (),
) -> Callable[[Extractor], StatefulRule]:
    """Declare a threshold rule: at least `threshold` events (or, with `distinct`, distinct
    `Step.value`s) per key within `window`. `window`, `threshold` and `ttl` are values or names of
    parameters holding one; `gates` see `pipeline.rule.Rule.gates`."""

    def wrap(fn: Extractor) -> StatefulRule:
        meta = metadata(
            id=id,
            title=title,
            severity=severity,
            attack=attack,
            events=events,
            params=params,
            dedup=dedup,
            runbook=runbook,
            cases=cases,
            fn=fn,
            gates=gates,
        )
        return declare(
            Logic,
            meta,
            extract=fn,
            fields=fields,
            hit=hit,
            options={"window": window, "threshold": threshold, "distinct": distinct, "ttl": ttl},
        )

    return wrap
