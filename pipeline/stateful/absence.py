"""Absence rules: a `start` not followed within `window` by the rule's condition being met."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pipeline.finding import Finding, window_start
from pipeline.rule import Case, Kind, Params, metadata
from pipeline.stateful.facts import Fact
from pipeline.stateful.findings import NO_META, NO_WHERE, Meta, shared_where, when
from pipeline.stateful.logic import KindLogic, Out, load_meta
from pipeline.stateful.options import KindOptions, duration
from pipeline.stateful.rule import Extractor, HitFor, StatefulRule, declare
from pipeline.stateful.steps import END, SATISFY, START, UNSATISFY

# fold(value, fact, params): the key's value after a fact; satisfied(value, params): is the condition met.
Fold = Callable[[Any, Fact, Params], Any]
Satisfied = Callable[[Any, Params], bool]


def default_fold(value: Any, fact: Fact, params: Params) -> Any:
    """`satisfy` meets the condition, `unsatisfy` loses it again."""
    if fact.step == SATISFY:
        return True
    if fact.step == UNSATISFY:
        return None
    return value


def default_satisfied(value: Any, params: Params) -> bool:
    return bool(value)


def unchanged(value: Any) -> Any:
    return value


def loaded(value: Any, params: Params) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Options(KindOptions):
    window: float = duration()
    ttl: float | None = duration(None)  # None: four windows; never less than two
    fold: Fold = default_fold
    satisfied: Satisfied = default_satisfied
    dump_value: Callable[[Any], Any] = unchanged  # a folded value as a snapshot's JSON holds it
    load_value: Callable[[Any, Params], Any] = loaded  # a folded value read back from a snapshot's JSON
    track_before_start: bool = True  # fold steps that come before the key's `start`
    resolved: str = "condition met"  # a finding's resolution when the condition is met after it
    ended: str = "ended"  # a finding's resolution when the key ends (`end`) after it
    # A key's own window, from its value and the params (None: `window`); keep it within half the ttl.
    window_of: Callable[[Any, Params], float | None] | None = None


ACTIVE, FIRED = 1, 2  # State.flags
_new_state = object.__new__


def compact_id(event_id: str) -> str | bytes:
    """An event id in fewer bytes: a CloudTrail eventID (a UUID in canonical form) as its 16 bytes, another
    ASCII id as bytes (a str spends 16 bytes more), anything else as it is. `full_id` gives it back."""
    if not event_id:
        return ""
    if len(event_id) == 36 and event_id[8] == "-":
        try:
            packed = UUID(event_id).bytes
        except ValueError:
            packed = b""
        if packed and str(UUID(bytes=packed)) == event_id:
            return packed
    if len(event_id) != 16 and event_id.isascii():
        return event_id.encode()
    return event_id


def full_id(held: str | bytes) -> str:
    """The event id `compact_id` was given."""
    if isinstance(held, str):
        return held
    return str(UUID(bytes=held)) if len(held) == 16 else held.decode()


class State:
    """One watched key, in as few bytes as a Python object allows (a million of them are usual): the
    two flags share one small int, and the finding's metadata is the opening fact's event id beside
    the fields it shares with many keys (account, region, principal, source address, user agent: one
    shared tuple, `shared_where`). A closed lapse keeps neither: only an open lapse's finding needs them."""

    __slots__ = ("event_id", "flags", "last", "since", "value", "where")

    def __init__(
        self,
        value: Any = None,  # what `fold` made of the key's facts
        active: bool = False,  # a `start` was seen
        since: float | None = None,  # start of the open lapse (condition unmet)
        fired: bool = False,  # the open lapse has raised its finding
        last: float = 0.0,
        meta: Meta = NO_META,  # of the fact that opened the lapse
    ) -> None:
        self.value = value
        self.flags = (ACTIVE if active else 0) | (FIRED if fired else 0)
        self.since = since
        self.last = last
        self.event_id: str | bytes = compact_id(meta[0])
        self.where = NO_WHERE if meta is NO_META else shared_where(meta[1:])

    @property
    def active(self) -> bool:
        return bool(self.flags & ACTIVE)

    @property
    def fired(self) -> bool:
        return bool(self.flags & FIRED)

    @property
    def meta(self) -> Meta:
        return (full_id(self.event_id), *self.where)  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if type(other) is not State:
            return NotImplemented
        return (self.value, self.flags, self.since, self.last, self.meta) == (
            other.value,
            other.flags,
            other.since,
            other.last,
            other.meta,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"State(value={self.value!r}, active={self.active}, since={self.since}, fired={self.fired}, "
            f"last={self.last}, meta={self.meta})"
        )


class Logic(KindLogic[Options, State]):
    """A key is watched from its `start` step; while the rule's condition is unmet, a lapse is open
    and a timer stands at lapse start + window (the key's own, when the rule says so). The timer raises
    one finding per lapse; meeting the condition closes the lapse, losing it again opens a new one;
    `end` forgets the key. A lapse whose finding was raised resolves it (same id) when the condition is
    met or the key ends."""

    kind = Kind.ABSENCE
    options_type = Options
    state_fields = ("value", "active", "since", "fired", "last", "event_id", "where")
    shared_fields = ("value", "where")

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        super().__init__(rule, params)
        o = self.options
        self.ttl = max(o.ttl, o.window * 2) if o.ttl else o.window * 4

    def apply(self, state: State | None, fact: Fact, out: Out) -> State | None:
        o = self.options
        step = fact.step
        # The finding of the key's lapse, if raised: as it was raised, before this fact changes the value.
        opened = self._open_finding(state, fact.key) if state is not None and state.flags & FIRED else None
        if step == END:
            if opened is not None:
                out.emit(opened.resolved(fact.time, o.ended, fact.event_id))
            return None
        if state is None:
            if step != START and not o.track_before_start:
                return None
            state = State()
        state.value = o.fold(state.value, fact, self.params)
        state.last = max(state.last, fact.time)
        if step == START:
            state.flags |= ACTIVE
        if not state.flags & ACTIVE:
            return state
        if o.satisfied(state.value, self.params):
            if opened is not None:
                out.emit(opened.resolved(fact.time, o.resolved, fact.event_id))
            state.since, state.flags, state.event_id, state.where = None, ACTIVE, "", NO_WHERE
        elif state.since is None:
            state.since, state.flags = fact.time, ACTIVE
            state.event_id = compact_id(fact.event_id)
            state.where = shared_where((fact.account, fact.region, fact.principal, fact.source_ip, fact.user_agent))
            out.timer(fact.time + self.window(state), fact.key)
        return state

    def window(self, state: State) -> float:
        """The key's window: the rule's, or the one its value names."""
        of = self.options.window_of
        return (of(state.value, self.params) if of is not None else None) or self.options.window

    def fire(self, state: State, key: str, deadline: float, out: Out) -> State:
        window = self.window(state)
        if state.since is None or state.flags & FIRED or state.since + window != deadline:
            return state  # the lapse this timer was set for has closed
        state.flags |= FIRED
        finding = self._open_finding(state, key)
        if finding is not None:
            out.emit(finding)
        return state

    def _open_finding(self, state: State, key: str) -> Finding | None:
        """The finding the key's lapse raises at its deadline (None: no lapse open): rebuilt the same when it
        resolves."""
        since = state.since
        if since is None:
            return None
        window = self.window(state)
        deadline = since + window
        start = window_start(since, self.dedup) if self.dedup > 0 else int(since)
        ctx = {"since": when(since), "deadline": when(deadline), "window_seconds": window, "state": state.value}
        return self.finding(
            key,
            state.meta,
            event_ids=(full_id(state.event_id),),
            event_time=deadline,
            window=start,
            summary=f"{self.rule.title}: {key} since {when(since)}",
            context=ctx,
        )

    def deadline(self, state: State) -> float | None:
        if state.since is not None and state.flags == ACTIVE:
            return state.since + self.window(state)
        return None

    def dump(self, s: State) -> list[Any]:
        return [s.value, bool(s.flags & ACTIVE), s.since, bool(s.flags & FIRED), s.last, full_id(s.event_id), s.where]

    def load(self, row: list[Any]) -> State:
        state = _new_state(State)
        state.value, state.since, state.last = row[0], row[2], float(row[4])
        state.flags = (ACTIVE if row[1] else 0) | (FIRED if row[3] else 0)
        if state.since is None:  # a closed lapse's metadata is never read
            state.event_id, state.where = "", NO_WHERE
        elif type(row[5]) is str and type(row[6]) is tuple:
            state.event_id, state.where = compact_id(row[5]), row[6]
        else:
            raise TypeError(f"event id and fields of an open lapse: {row[5]!r}, {row[6]!r}")
        return state

    def dump_shared(self, name: str, value: Any) -> Any:
        return self.options.dump_value(value) if name == "value" else value

    def load_shared(self, name: str, raw: Any) -> Any:
        if name == "value":
            return self.options.load_value(raw, self.params)
        if not isinstance(raw, list | tuple) or len(raw) != 5:
            raise TypeError(f"shared fields of a lapse: {raw!r}")
        return shared_where(load_meta(["", *raw])[1:])


def absence(
    *,
    id: str,
    title: str,
    severity: str,
    attack: str | Iterable[str],
    events: Mapping[str, Iterable[str] | str],
    window: str | float,
    params: Mapping[str, Any] | None = None,
    ttl: str | float | None = None,
    dedup: str | float = 0,
    fields: Iterable[str] = (),
    fold: Fold | None = None,
    satisfied: Satisfied | None = None,
    dump_value: Callable[[Any], Any] | None = None,
    load_value: Callable[[Any, Params], Any] | None = None,
    window_of: Callable[[Any, Params], float | None] | None = None,
    track_before_start: bool = True,
    resolved: str | None = None,
    ended: str | None = None,
    runbook: str = "",
    cases: Iterable[Case] = (),
    hit: HitFor | None = None,
    validate: Callable[[Params], None] | None = None,
    param_docs: Mapping[str, str] | None = None,
    shared: str = "",
) -> Callable[[Extractor], StatefulRule]:
    """Declare an absence rule: a `start` not followed within `window` by the condition being met.
    Steps: start, satisfy, unsatisfy, end, or any step a custom `fold(value, fact, params)`
    understands, with `satisfied(value, params)` deciding; `window_of(value, params)` may give a key
    its own window. `end` forgets the key. Allowlists drop only `start`. `window` and `ttl` are durations or
    names of parameters holding one. `validate`, `param_docs` and `shared` are as for every rule. A finding
    resolves (same id, `resolution` = `resolved` or `ended`) when the condition is met or the key ends after it."""

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
            param_docs=param_docs,
            shared=shared,
        )
        return declare(
            Logic,
            meta,
            extract=fn,
            fields=fields,
            hit=hit,
            allowlist_steps=(START,),
            validate=validate,
            options={
                "window": window,
                "ttl": ttl,
                "fold": fold,
                "satisfied": satisfied,
                "dump_value": dump_value,
                "load_value": load_value,
                "window_of": window_of,
                "track_before_start": track_before_start,
                "resolved": resolved,
                "ended": ended,
            },
        )

    return wrap
