"""First-seen rules: a `Step.value` not seen for the key within `history`, after the key's warm-up."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.finding import window_start
from pipeline.rule import Case, Kind, Params, metadata
from pipeline.stateful.facts import Fact
from pipeline.stateful.logic import KindLogic, Out, field_names
from pipeline.stateful.options import KindOptions, count, duration
from pipeline.stateful.rule import Extractor, HitFor, StatefulRule, declare


@dataclass(frozen=True, slots=True)
class Options(KindOptions):
    history: float = duration()
    warmup: float | None = duration(None, zero=True)  # None: the history period
    max_values: int = count(256)  # values remembered per key (the least recently seen go)
    refresh: float = duration(3600.0, zero=True)  # stage 1 sends a (key, value) again at most this often


@dataclass(slots=True)
class State:
    first: float  # time of the key's first fact: its warm-up runs from here
    values: dict[str, float] = field(default_factory=dict)  # value -> last seen
    last: float = 0.0


class Logic(KindLogic[Options, State]):
    """A value not seen for the key within `history` raises a finding, except while the key is
    still warming up: during its first `warmup` (by default one history period) everything is new,
    so nothing is reported. The warm-up starts again if the key's state expires (its TTL is the
    history period). At most `max_values` values are remembered per key (least recently seen go)."""

    kind = Kind.FIRST_SEEN
    options_type = Options
    state_fields = field_names(State)

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = self.options
        self.warmup = o.history if o.warmup is None else o.warmup
        self.ttl = o.history

    def apply(self, state: State | None, fact: Fact, out: Out) -> State | None:
        o = self.options
        t, value = fact.time, fact.value
        if not value:
            return state
        if state is None:
            state = State(t)
        state.first = min(state.first, t)
        values = state.values
        prev = values.get(value)
        new = prev is None or t - prev > o.history
        if prev is None or t > prev:
            values.pop(value, None)
            values[value] = t
        if len(values) > o.max_values:
            del values[min(values, key=values.__getitem__)]
        state.last = max(state.last, t)
        if new and t - state.first >= self.warmup:
            ctx = {"value": value, "history_seconds": o.history, "known": len(values) - 1}
            out.emit(
                self.finding(
                    fact.key,
                    fact.meta,
                    event_ids=(fact.event_id,),
                    event_time=t,
                    window=window_start(t, self.dedup),
                    dedup_key=f"{fact.key}\x1f{value}",
                    summary=f"{self.rule.title}: {value} for {fact.key}",
                    context=ctx,
                )
            )
        return state

    def dump(self, s: State) -> list[Any]:
        return [s.first, list(s.values.items()), s.last]

    def load(self, row: list[Any]) -> State:
        return State(float(row[0]), {str(v): float(t) for v, t in row[1]}, float(row[2]))


def first_seen(
    *,
    id: str,
    title: str,
    severity: str,
    attack: str | Iterable[str],
    events: Mapping[str, Iterable[str] | str],
    history: str | float,
    warmup: str | float | None = None,
    max_values: str | int = 256,
    refresh: str | float = "1h",
    params: Mapping[str, Any] | None = None,
    dedup: str | float = "1d",
    fields: Iterable[str] = (),
    runbook: str = "",
    cases: Iterable[Case] = (),
    hit: HitFor | None = None,
) -> Callable[[Extractor], StatefulRule]:
    """Declare a first-seen rule: a `Step.value` not seen for the key within `history`. Stage 1 sends
    a (key, value) again at most once per `refresh` of event time, so common values do not flood the
    keyed stream. Durations and `max_values` are values or names of parameters holding one."""

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
        )
        return declare(
            Logic,
            meta,
            extract=fn,
            fields=fields,
            hit=hit,
            options={"history": history, "warmup": warmup, "max_values": max_values, "refresh": refresh},
        )

    return wrap
