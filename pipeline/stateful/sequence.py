"""Sequence rules: a `first` step then a `then` step for the same key within `window`."""

from __future__ import annotations

import sys
from bisect import insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.finding import window_start
from pipeline.rule import Case, Kind, Params, metadata
from pipeline.stateful.facts import Fact
from pipeline.stateful.findings import when
from pipeline.stateful.logic import KindLogic, Out, field_names
from pipeline.stateful.options import KindOptions, duration
from pipeline.stateful.rule import Extractor, HitFor, StatefulRule, declare
from pipeline.stateful.steps import FIRST, THEN

MAX_PENDING_FIRSTS = 16


@dataclass(frozen=True, slots=True)
class Options(KindOptions):
    window: float = duration()
    same_principal: bool = True  # the `then` must be done by the principal who did the `first`
    ttl: float | None = duration(None)  # None: the window; never less


@dataclass(slots=True)
class State:
    firsts: list[tuple[float, str, str]] = field(default_factory=list)  # (time, principal, event id), sorted
    last: float = 0.0


class Logic(KindLogic[Options, State]):
    """Each `first` waits for a `then` within the window (at most 16 per key); each raises at most one finding."""

    kind = Kind.SEQUENCE
    options_type = Options
    state_fields = field_names(State)

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = self.options
        self.ttl = max(o.ttl, o.window) if o.ttl else o.window

    def apply(self, state: State | None, fact: Fact, out: Out) -> State | None:
        o = self.options
        t = fact.time
        if fact.step == FIRST:
            state = state or State()
            insort(state.firsts, (t, fact.principal, fact.event_id))
            newest = state.firsts[-1][0]
            state.firsts = [f for f in state.firsts if f[0] >= newest - o.window][-MAX_PENDING_FIRSTS:]
            state.last = max(state.last, t)
            return state
        if fact.step != THEN or state is None:
            return state
        for i, (ft, principal, eid) in enumerate(state.firsts):
            if t - o.window <= ft <= t and (not o.same_principal or principal == fact.principal):
                del state.firsts[i]
                ctx = {
                    "first_at": when(ft),
                    "then_at": when(t),
                    "window_seconds": o.window,
                    "then": (fact.fields or {}).get("action", ""),
                }
                out.emit(
                    self.finding(
                        fact.key,
                        fact.meta,
                        event_ids=(eid, fact.event_id),
                        event_time=t,
                        window=window_start(t, self.dedup),
                        summary=f"{self.rule.title}: {fact.key}",
                        context=ctx,
                    )
                )
                break
        state.last = max(state.last, t)
        return state if state.firsts else None

    def dump(self, s: State) -> list[Any]:
        return [s.firsts, s.last]

    def load(self, row: list[Any]) -> State:
        return State([(float(t), sys.intern(str(p)), str(e)) for t, p, e in row[0]], float(row[1]))


def sequence(
    *,
    id: str,
    title: str,
    severity: str,
    attack: str | Iterable[str],
    events: Mapping[str, Iterable[str] | str],
    window: str | float,
    same_principal: bool = True,
    params: Mapping[str, Any] | None = None,
    ttl: str | float | None = None,
    dedup: str | float = "1h",
    fields: Iterable[str] = (),
    runbook: str = "",
    cases: Iterable[Case] = (),
    hit: HitFor | None = None,
) -> Callable[[Extractor], StatefulRule]:
    """Declare a sequence rule: a `first` step then a `then` step for the same key within `window`
    (a duration or the name of a parameter holding one)."""

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
            options={"window": window, "same_principal": same_principal, "ttl": ttl},
        )

    return wrap
