"""Stateful rule kinds (DESIGN §5): absence, threshold (count and distinct count), sequence, first-seen.

A stateful rule is a function `(e: Event, p: Params) -> Step | list[Step] | None` that runs in
stage 1 and says which entity key the event concerns and what step it plays; stage 2 keeps the
per-key state and decides. Each decorator declares, besides the metadata every rule has:

- `events`: what stage 1 indexes the rule by (only those events reach the extractor);
- `fields`: the only fields a fact may carry to stage 2;
- `window` (and `threshold`, `history`, ...): a duration or count, or the name of a parameter
  holding one, so configuration can change it;
- `ttl`: how long a key's state lives after its last fact (each kind has a safe default);
- `dedup`: the period within which findings for the same key share one finding id.

Stage 2 applies facts in event-time order as the watermark passes them, so the outcome does not
depend on arrival order within the allowed lateness. At equal event times steps are ordered by
`STEP_RANK` (a launch before its tags, a key's creation before its use).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.event import Event
from pipeline.finding import Finding, window_start
from pipeline.rule import Case, Hit, Params, Rule, metadata, parse_duration, register
from pipeline.stateful.facts import Fact, Step
from pipeline.stateful.findings import NO_META, Meta, stateful_finding, when

Extractor = Callable[[Event, Params], "Step | Iterable[Step] | None"]
Describe = Callable[[str, dict[str, Any], Params], Hit]

START, SATISFY, UNSATISFY, END, FIRST, THEN = "start", "satisfy", "unsatisfy", "end", "first", "then"
STEP_RANK = {START: 0, FIRST: 0, "": 1, SATISFY: 1, UNSATISFY: 1, THEN: 2, END: 3}


class Out(Protocol):
    """What a kind may do while applying a fact: schedule a timer for its key, raise a finding."""

    def timer(self, deadline: float, key: str) -> None: ...

    def emit(self, finding: Finding) -> None: ...


def _intern_meta(m: Any) -> Meta:
    import sys

    if not isinstance(m, list | tuple) or len(m) != 6:
        return NO_META
    return tuple(sys.intern(str(x)) if i else str(x) for i, x in enumerate(m))  # type: ignore[return-value]


def resolve_duration(spec: str | float, params: Mapping[str, Any]) -> float:
    """A duration given directly or as the name of a parameter."""
    if isinstance(spec, str) and spec in params:
        return parse_duration(params[spec])
    return parse_duration(spec)


def resolve_number(spec: str | float, params: Mapping[str, Any]) -> float:
    if isinstance(spec, str):
        value = params.get(spec, spec)
        return float(value)
    return float(spec)


@dataclass
class StatefulRule(Rule):
    """A rule whose decision needs more than one event. `logic(params)` builds the stage-2 logic."""

    extract: Extractor = lambda e, p: None
    fields: frozenset[str] = frozenset()
    options: dict[str, Any] = field(default_factory=dict)
    describe: Describe | None = None
    # The steps an allowlist drops (None: every step). An absence rule's allowlist drops only its
    # `start`: known automation tagging someone else's instance must still satisfy the watch.
    allowlist_steps: frozenset[str] | None = None

    def logic(self, params: Params) -> Logic:
        return LOGICS[self.kind](self, params)


class Logic:
    """Stage-2 behaviour of one rule with its parameters. States are small slotted objects."""

    ttl: float = 0.0

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        self.rule = rule
        self.params = params
        self.dedup = rule.dedup

    def last(self, state: Any) -> float:
        return state.last

    def apply(self, state: Any, fact: Fact, out: Out) -> Any:
        """The key's new state after `fact` (None forgets the key)."""
        raise NotImplementedError

    def fire(self, state: Any, key: str, deadline: float, out: Out) -> Any:
        return state

    def deadline(self, state: Any) -> float | None:
        return None

    def is_open(self, state: Any) -> bool:
        return False

    def dump(self, state: Any) -> list[Any]:
        raise NotImplementedError

    def load(self, data: list[Any]) -> Any:
        raise NotImplementedError

    def finding(self, key: str, meta: Meta, *, event_ids: Iterable[str], event_time: float, window: int,
                summary: str, context: dict[str, Any], dedup_key: str = "") -> Finding:
        hit = self.rule.describe(key, context, self.params) if self.rule.describe else None
        context.pop("state", None)  # the key's state, shown to `describe` only
        return stateful_finding(self.rule, key, meta, event_ids=tuple(event_ids), event_time=event_time,
                                window=window, summary=summary, context=context, hit=hit, dedup_key=dedup_key)


# --- absence ------------------------------------------------------------------------------------


class AbsenceState:
    __slots__ = ("active", "fired", "last", "meta", "since", "value")

    def __init__(self, value: Any = None, active: bool = False, since: float | None = None, fired: bool = False,
                 last: float = 0.0, meta: Meta = NO_META) -> None:
        self.value = value
        self.active = active
        self.since = since
        self.fired = fired
        self.last = last
        self.meta = meta


def _default_fold(value: Any, step: str, fields: Mapping[str, Any] | None, params: Params) -> Any:
    if step == SATISFY:
        return True
    if step == UNSATISFY:
        return None
    return value


def _default_satisfied(value: Any, params: Params) -> bool:
    return bool(value)


class AbsenceLogic(Logic):
    """A key is watched from its `start` step; while the rule's condition is unmet, a lapse is open
    and a timer stands at lapse start + window. The timer raises one finding per lapse; meeting the
    condition closes the lapse, losing it again opens a new one; `end` forgets the key."""

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = rule.options
        self.window = resolve_duration(o["window"], params)
        self.ttl = max(resolve_duration(o["ttl"], params), self.window * 2) if o.get("ttl") else self.window * 4
        self.fold = o.get("fold") or _default_fold
        self.satisfied = o.get("satisfied") or _default_satisfied
        self.track_before_start = bool(o.get("track_before_start", True))

    def apply(self, state: AbsenceState | None, fact: Fact, out: Out) -> AbsenceState | None:
        step = fact.step
        if step == END:
            return None
        if state is None:
            if step != START and not self.track_before_start:
                return None
            state = AbsenceState()
        state.value = self.fold(state.value, step, fact.fields, self.params)
        state.last = max(state.last, fact.time)
        if step == START:
            state.active = True
        if not state.active:
            return state
        if self.satisfied(state.value, self.params):
            state.since, state.fired = None, False
        elif state.since is None:
            state.since, state.fired, state.meta = fact.time, False, fact.meta
            out.timer(fact.time + self.window, fact.key)
        return state

    def fire(self, state: AbsenceState, key: str, deadline: float, out: Out) -> AbsenceState:
        if state.since is None or state.fired or state.since + self.window != deadline:
            return state  # the lapse this timer was set for has closed
        state.fired = True
        window = window_start(state.since, self.dedup) if self.dedup > 0 else int(state.since)
        ctx = {"since": when(state.since), "deadline": when(deadline), "window_seconds": self.window,
               "state": state.value}
        out.emit(self.finding(key, state.meta, event_ids=(state.meta[0],), event_time=deadline, window=window,
                              summary=f"{self.rule.title}: {key} since {when(state.since)}", context=ctx))
        return state

    def deadline(self, state: AbsenceState) -> float | None:
        if state.active and state.since is not None and not state.fired:
            return state.since + self.window
        return None

    def is_open(self, state: AbsenceState) -> bool:
        return self.deadline(state) is not None

    def dump(self, s: AbsenceState) -> list[Any]:
        return [s.value, s.active, s.since, s.fired, s.last, list(s.meta)]

    def load(self, d: list[Any]) -> AbsenceState:
        value = self.rule.options.get("load_value", lambda v: v)(d[0])
        return AbsenceState(value, bool(d[1]), d[2], bool(d[3]), float(d[4]), _intern_meta(d[5]))


# --- threshold ----------------------------------------------------------------------------------


class CountState:
    __slots__ = ("entries", "last", "meta", "quiet")

    def __init__(self, entries: list[tuple[float, str]] | None = None, quiet: float = 0.0, last: float = 0.0,
                 meta: Meta = NO_META) -> None:
        self.entries = entries or []
        self.quiet = quiet
        self.last = last
        self.meta = meta


class DistinctState:
    __slots__ = ("last", "meta", "quiet", "values")

    def __init__(self, values: dict[str, tuple[float, str]] | None = None, quiet: float = 0.0, last: float = 0.0,
                 meta: Meta = NO_META) -> None:
        self.values = values or {}
        self.quiet = quiet
        self.last = last
        self.meta = meta


class ThresholdLogic(Logic):
    """At least `threshold` facts (or distinct values) for a key within `window`. Only the last
    `threshold` entries are kept per key, so a key's state is bounded whatever the volume. After a
    finding the key is quiet for the dedup period (counting goes on)."""

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = rule.options
        self.window = resolve_duration(o["window"], params)
        self.threshold = max(1, int(resolve_number(o["threshold"], params)))
        self.distinct = bool(o.get("distinct"))
        self.ttl = resolve_duration(o["ttl"], params) if o.get("ttl") else self.window + max(self.dedup, 0)
        self.ttl = max(self.ttl, self.window)

    def apply(self, state: Any, fact: Fact, out: Out) -> Any:
        t = fact.time
        if self.distinct:
            if not fact.value:
                return state
            if state is None:
                state = DistinctState()
            values = state.values
            prev = values.get(fact.value)
            if prev is None or prev[0] < t:
                values.pop(fact.value, None)
                values[fact.value] = (t, fact.event_id)
            newest = max(v[0] for v in values.values())
            for v in [v for v, (vt, _) in values.items() if vt < newest - self.window]:
                del values[v]
            while len(values) > self.threshold:
                del values[min(values, key=lambda v: values[v])]
            count = len(values)
            ids = [e for _, e in sorted(values.values())]
        else:
            if state is None:
                state = CountState()
            entries = state.entries
            insort(entries, (t, fact.event_id))
            newest = entries[-1][0]
            while entries and entries[0][0] < newest - self.window:
                entries.pop(0)
            if len(entries) > self.threshold:
                del entries[: len(entries) - self.threshold]
            count = len(entries)
            ids = [e for _, e in entries]
        state.last = max(state.last, t)
        state.meta = fact.meta
        if count >= self.threshold and t >= state.quiet:
            state.quiet = t + self.dedup
            what = "distinct values" if self.distinct else "events"
            ctx: dict[str, Any] = {"count": count, "threshold": self.threshold, "window_seconds": self.window}
            if self.distinct:
                ctx["values"] = sorted(state.values)
            out.emit(self.finding(fact.key, fact.meta, event_ids=ids, event_time=t, window=window_start(t, self.dedup),
                                  summary=f"{self.rule.title}: {count} {what} for {fact.key} within "
                                          f"{int(self.window)}s", context=ctx))
        return state

    def dump(self, s: Any) -> list[Any]:
        if self.distinct:
            return [[[v, t, e] for v, (t, e) in s.values.items()], s.quiet, s.last, list(s.meta)]
        return [[[t, e] for t, e in s.entries], s.quiet, s.last, list(s.meta)]

    def load(self, d: list[Any]) -> Any:
        if self.distinct:
            return DistinctState({str(v): (float(t), str(e)) for v, t, e in d[0]}, float(d[1]), float(d[2]),
                                 _intern_meta(d[3]))
        return CountState([(float(t), str(e)) for t, e in d[0]], float(d[1]), float(d[2]), _intern_meta(d[3]))


# --- sequence -----------------------------------------------------------------------------------

MAX_PENDING_FIRSTS = 16


class SequenceState:
    __slots__ = ("firsts", "last")

    def __init__(self, firsts: list[tuple[float, str, str]] | None = None, last: float = 0.0) -> None:
        self.firsts = firsts or []  # (time, principal, event id)
        self.last = last


class SequenceLogic(Logic):
    """A `first` step then a `then` step for the same key within `window` (by the same principal if
    `same_principal`). Each first raises at most one finding."""

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = rule.options
        self.window = resolve_duration(o["window"], params)
        self.same_principal = bool(o.get("same_principal", True))
        self.ttl = max(resolve_duration(o["ttl"], params), self.window) if o.get("ttl") else self.window

    def apply(self, state: SequenceState | None, fact: Fact, out: Out) -> SequenceState | None:
        t = fact.time
        if fact.step == FIRST:
            state = state or SequenceState()
            insort(state.firsts, (t, fact.principal, fact.event_id))
            newest = state.firsts[-1][0]
            state.firsts = [f for f in state.firsts if f[0] >= newest - self.window][-MAX_PENDING_FIRSTS:]
            state.last = max(state.last, t)
            return state
        if fact.step != THEN or state is None:
            return state
        for i, (ft, principal, eid) in enumerate(state.firsts):
            if t - self.window <= ft <= t and (not self.same_principal or principal == fact.principal):
                del state.firsts[i]
                ctx = {"first_at": when(ft), "then_at": when(t), "window_seconds": self.window,
                       "then": (fact.fields or {}).get("action", "")}
                out.emit(self.finding(fact.key, fact.meta, event_ids=(eid, fact.event_id), event_time=t,
                                      window=window_start(t, self.dedup),
                                      summary=f"{self.rule.title}: {fact.key}", context=ctx))
                break
        state.last = max(state.last, t)
        return state if state.firsts else None

    def dump(self, s: SequenceState) -> list[Any]:
        return [[list(f) for f in s.firsts], s.last]

    def load(self, d: list[Any]) -> SequenceState:
        import sys

        return SequenceState([(float(t), sys.intern(str(p)), str(e)) for t, p, e in d[0]], float(d[1]))


# --- first seen ---------------------------------------------------------------------------------


class FirstSeenState:
    __slots__ = ("first", "last", "values")

    def __init__(self, first: float, values: dict[str, float] | None = None, last: float = 0.0) -> None:
        self.first = first
        self.values = values or {}
        self.last = last


class FirstSeenLogic(Logic):
    """A value not seen for the key within `history` raises a finding, except while the key is
    still warming up: during its first `warmup` (by default one history period) everything is new,
    so nothing is reported. The warm-up starts again if the key's state expires (its TTL is the
    history period). At most `max_values` values are remembered per key (least recently seen go)."""

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = rule.options
        self.history = resolve_duration(o["history"], params)
        self.warmup = resolve_duration(o["warmup"], params) if o.get("warmup") is not None else self.history
        self.max_values = int(resolve_number(o.get("max_values", 256), params))
        self.ttl = self.history

    def apply(self, state: FirstSeenState | None, fact: Fact, out: Out) -> FirstSeenState | None:
        t, value = fact.time, fact.value
        if not value:
            return state
        if state is None:
            state = FirstSeenState(t)
        state.first = min(state.first, t)
        prev = state.values.get(value)
        new = prev is None or t - prev > self.history
        if prev is None or t > prev:
            state.values.pop(value, None)
            state.values[value] = t
        if len(state.values) > self.max_values:
            oldest = min(state.values, key=state.values.__getitem__)
            del state.values[oldest]
        state.last = max(state.last, t)
        if new and t - state.first >= self.warmup:
            ctx = {"value": value, "history_seconds": self.history, "known": len(state.values) - 1}
            out.emit(self.finding(fact.key, fact.meta, event_ids=(fact.event_id,), event_time=t,
                                  window=window_start(t, self.dedup), dedup_key=f"{fact.key}\x1f{value}",
                                  summary=f"{self.rule.title}: {value} for {fact.key}", context=ctx))
        return state

    def dump(self, s: FirstSeenState) -> list[Any]:
        return [s.first, [[v, t] for v, t in s.values.items()], s.last]

    def load(self, d: list[Any]) -> FirstSeenState:
        return FirstSeenState(float(d[0]), {str(v): float(t) for v, t in d[1]}, float(d[2]))


LOGICS: dict[str, type[Logic]] = {
    "absence": AbsenceLogic,
    "threshold": ThresholdLogic,
    "sequence": SequenceLogic,
    "first_seen": FirstSeenLogic,
}


# --- decorators ---------------------------------------------------------------------------------


def _declare(kind: str, *, id: str, title: str, severity: str, attack: str | Iterable[str],
             events: Mapping[str, Iterable[str] | str], params: Mapping[str, Any] | None, dedup: str | float,
             runbook: str, cases: Iterable[Case], fields: Iterable[str], options: dict[str, Any],
             describe: Describe | None, allowlist_steps: Iterable[str] | None = None
             ) -> Callable[[Extractor], StatefulRule]:
    def wrap(fn: Extractor) -> StatefulRule:
        rule = StatefulRule(**metadata(id=id, title=title, severity=severity, attack=attack, events=events,
                                       params=params, dedup=dedup, runbook=runbook, cases=cases, fn=fn),
                            kind=kind, extract=fn, fields=frozenset(fields), options=options, describe=describe,
                            allowlist_steps=None if allowlist_steps is None else frozenset(allowlist_steps))
        LOGICS[kind](rule, Params(rule.params))  # fail at import on a bad window/threshold spec
        return register(rule)  # type: ignore[return-value]

    return wrap


def absence(*, id: str, title: str, severity: str, attack: str | Iterable[str],
            events: Mapping[str, Iterable[str] | str], window: str | float, params: Mapping[str, Any] | None = None,
            ttl: str | float | None = None, dedup: str | float = 0, fields: Iterable[str] = (),
            fold: Callable[[Any, str, Mapping[str, Any] | None, Params], Any] | None = None,
            satisfied: Callable[[Any, Params], bool] | None = None, load_value: Callable[[Any], Any] | None = None,
            track_before_start: bool = True, runbook: str = "", cases: Iterable[Case] = (),
            describe: Describe | None = None) -> Callable[[Extractor], StatefulRule]:
    """A `start` not followed within `window` by the condition being met. Steps: start, satisfy,
    unsatisfy, end, or any step a custom `fold(value, step, fields, params)` understands, with
    `satisfied(value, params)` deciding. `end` forgets the key. Allowlists drop only `start`."""
    options = {"window": window, "ttl": ttl, "fold": fold, "satisfied": satisfied,
               "track_before_start": track_before_start}
    if load_value:
        options["load_value"] = load_value
    return _declare("absence", id=id, title=title, severity=severity, attack=attack, events=events, params=params,
                    dedup=dedup, runbook=runbook, cases=cases, fields=fields, options=options, describe=describe,
                    allowlist_steps=(START,))


def threshold(*, id: str, title: str, severity: str, attack: str | Iterable[str],
              events: Mapping[str, Iterable[str] | str], window: str | float, threshold: str | int,
              distinct: bool = False, params: Mapping[str, Any] | None = None, ttl: str | float | None = None,
              dedup: str | float = "1h", fields: Iterable[str] = (), runbook: str = "", cases: Iterable[Case] = (),
              describe: Describe | None = None) -> Callable[[Extractor], StatefulRule]:
    """At least `threshold` events (or, with `distinct`, distinct `Step.value`s) per key within `window`."""
    options = {"window": window, "threshold": threshold, "distinct": distinct, "ttl": ttl}
    return _declare("threshold", id=id, title=title, severity=severity, attack=attack, events=events, params=params,
                    dedup=dedup, runbook=runbook, cases=cases, fields=fields, options=options, describe=describe)


def sequence(*, id: str, title: str, severity: str, attack: str | Iterable[str],
             events: Mapping[str, Iterable[str] | str], window: str | float, same_principal: bool = True,
             params: Mapping[str, Any] | None = None, ttl: str | float | None = None, dedup: str | float = "1h",
             fields: Iterable[str] = (), runbook: str = "", cases: Iterable[Case] = (),
             describe: Describe | None = None) -> Callable[[Extractor], StatefulRule]:
    """A `first` step then a `then` step for the same key within `window`."""
    options = {"window": window, "same_principal": same_principal, "ttl": ttl}
    return _declare("sequence", id=id, title=title, severity=severity, attack=attack, events=events, params=params,
                    dedup=dedup, runbook=runbook, cases=cases, fields=fields, options=options, describe=describe)


def first_seen(*, id: str, title: str, severity: str, attack: str | Iterable[str],
               events: Mapping[str, Iterable[str] | str], history: str | float, warmup: str | float | None = None,
               max_values: str | int = 256, refresh: str | float = "1h", params: Mapping[str, Any] | None = None,
               dedup: str | float = "1d", fields: Iterable[str] = (), runbook: str = "", cases: Iterable[Case] = (),
               describe: Describe | None = None) -> Callable[[Extractor], StatefulRule]:
    """A `Step.value` not seen for the key within `history`. Stage 1 sends a (key, value) again at
    most once per `refresh` of event time, so common values do not flood the keyed stream."""
    options = {"history": history, "warmup": warmup, "max_values": max_values, "refresh": refresh}
    return _declare("first_seen", id=id, title=title, severity=severity, attack=attack, events=events,
                    params=params, dedup=dedup, runbook=runbook, cases=cases, fields=fields, options=options,
                    describe=describe)
