"""The rule API: metadata, the events a rule wants, parameters, dedup period and test cases.

A match rule is a function decorated with `@match(...)` that answers one question of one event:

    @match(
        id="cloudtrail-logging-stopped", title="CloudTrail logging stopped", severity="high",
        attack="T1562.008", events={"cloudtrail.amazonaws.com": ["StopLogging"]},
        cases=[Case("stopped", [{...}], expect=1)],
    )
    def cloudtrail_logging_stopped(e: Event, p: Params) -> Hit | bool | None:
        '''Someone stopped a trail from logging.'''
        return e.succeeded

Returning a true value raises a finding; a `Hit` adds the dedup key, resources and context.
Rules must never raise on odd input: use the safe accessors of `Event`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipeline.event import Event
from pipeline.finding import SEVERITIES

ANY = "*"

REGISTRY: dict[str, Rule] = {}


class Kind(StrEnum):
    """What decides a rule: one event (match, stage 1) or per-key state over many (the stateful kinds, stage 2)."""

    MATCH = "match"
    ABSENCE = "absence"
    THRESHOLD = "threshold"
    SEQUENCE = "sequence"
    FIRST_SEEN = "first_seen"


class Params(dict[str, Any]):
    """A rule's parameters: its declared defaults overlaid by configuration; read as attributes.
    `origins` says, for a parameter set by a shared section (`Rule.shared`), which one."""

    origins: dict[str, str]  # an instance attribute, set only when a shared section set a parameter

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"rule has no parameter {name!r}") from None

    def path(self, rule_id: str, name: str) -> str:
        """The configuration key that sets parameter `name`, as an error names it: "rules.<id>.<name>",
        or "<section>.<name>" when a shared section set it."""
        section = self.__dict__.get("origins", {}).get(name)
        return f"{section or 'rules.' + rule_id}.{name}"


@dataclass(frozen=True)
class Hit:
    """What a rule says about a match. Empty fields take defaults from the event."""

    key: str = ""
    resources: tuple[str, ...] = ()
    summary: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """A rule's own test: events (partial CloudTrail records, defaults filled in) and the expected
    number of findings the rule raises over them; `params` override the rule's parameters.

    A case that expects findings is also run in its other forms (`pipeline.ruletest.FORMS`): made in
    the console, made through CloudFormation. The rule must find the same there. `no_form` names a
    form the case genuinely cannot have, with the reason, e.g. {"console": "a sign-in is the
    console's own record"}; keep such exceptions few. `resolved`, when given, is the number of those
    findings the case expects resolved (a stateful rule's condition cleared after its finding)."""

    name: str
    events: tuple[dict[str, Any], ...]
    expect: int
    params: Mapping[str, Any] = field(default_factory=dict)
    no_form: Mapping[str, str] = field(default_factory=dict)
    resolved: int | None = None

    def __init__(
        self,
        name: str,
        events: Iterable[dict[str, Any]] | dict[str, Any],
        expect: int,
        params: Mapping[str, Any] | None = None,
        no_form: Mapping[str, str] | None = None,
        resolved: int | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "events", (events,) if isinstance(events, dict) else tuple(events))
        object.__setattr__(self, "expect", expect)
        object.__setattr__(self, "params", dict(params or {}))
        object.__setattr__(self, "no_form", dict(no_form or {}))
        object.__setattr__(self, "resolved", resolved)


def parse_duration(value: str | int | float) -> float:
    """Seconds from 90, "90s", "15m", "2h", "7d" or "1w"."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = str(value).strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ValueError(f"not a duration: {value!r} (use seconds, or a number with s, m, h, d or w)") from None


def format_duration(seconds: float) -> str:
    """A duration the way configuration writes it: "1d", "6h", "15m", else seconds ("90s", "0s")."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Gate:
    """A field a rule cannot match without, which the engine's index reads instead of running the rule.

    `path` is the field (`("userIdentity", "type")`); the rule can only match when the field
    `equals` one of the values, `contains` a text, or (neither given) is present with any value. With
    `fold`, the value is lowercased first (the values and text given lowercased). A missing field (or a
    null object on the way), or a null one for `equals` and `contains`, keeps the rule from the event; a
    value of another type than a string, or an array on the way, lets the rule decide. A gate only
    narrows: the rule's own check must still ask the same question (the naive baseline of `bench engine`
    and the gate test run it alone)."""

    path: tuple[str, ...]
    equals: frozenset[str] = frozenset()
    contains: str = ""
    fold: bool = False

    @classmethod
    def of(cls, field: str, equals: Iterable[str] = (), contains: str = "", fold: bool = False) -> Gate:
        """A gate on a dotted field name: `Gate.of("userIdentity.type", equals=["Root"])`."""
        return cls(tuple(field.split(".")), frozenset(equals), contains, fold)

    def admits(self, raw: dict[str, Any]) -> bool:
        """Whether the rule may match `raw` (what the index decides, one rule at a time)."""
        value: Any = raw
        for step in self.path:
            if type(value) is not dict:
                return value is not None  # null on the way: no field; an array (or other value): the rule decides
            if step not in value:
                return False
            value = value[step]
        if not self.equals and not self.contains:
            return True
        if value is None:
            return False
        if type(value) is not str:
            return True
        if self.fold:
            value = value.lower()
        return value in self.equals if self.equals else self.contains in value


def _event_index(events: Mapping[str, Iterable[str] | str]) -> dict[str, frozenset[str] | None]:
    """{eventSource: names} with None standing for every name of that source."""
    index: dict[str, frozenset[str] | None] = {}
    for source, names in events.items():
        index[source] = None if names == ANY else frozenset([names] if isinstance(names, str) else names)
    return index


@dataclass
class Rule:
    """Metadata every rule kind shares. Subclasses add how the rule evaluates events."""

    id: str
    title: str
    severity: str
    attack: tuple[str, ...]
    description: str
    runbook: str
    events: dict[str, frozenset[str] | None]
    params: dict[str, Any]
    dedup: float
    cases: tuple[Case, ...]
    kind: Kind = Kind.MATCH
    validate: Callable[[Params], None] | None = None
    param_docs: dict[str, str] = field(default_factory=dict)
    # Where the rule comes from: "builtin" (a Python rule of the pack) or "sigma" (compiled from a Sigma
    # file); `upstream` says which (the Sigma id, file, status, author).
    origin: str = "builtin"
    upstream: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True  # runs unless the configuration says `enabled = false` (or, if False here, `true`)
    # A top-level configuration section whose keys set this rule's parameters for every rule sharing it
    # (the rule's own [rules.<id>] section wins), e.g. "tags" for the tag-compliance rules.
    shared: str = ""
    # Fields the rule cannot match without (any one of them admits the event): the index skips the rule
    # for an event none admits, without calling it. For rules that would otherwise see every event.
    gates: tuple[Gate, ...] = ()

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.id}: severity {self.severity!r} is not one of {SEVERITIES}")
        if not self.events:
            raise ValueError(f"rule {self.id}: declares no events")

    def wants(self, source: str, name: str) -> bool:
        for src in (source, ANY):
            if src in self.events:
                names = self.events[src]
                if names is None or name in names:
                    return True
        return False


@dataclass
class MatchRule(Rule):
    """One event decides: `check(event, params)` returns a Hit, True, or a false value."""

    check: Callable[[Event, Params], Hit | bool | None] = lambda e, p: None


def register(rule: Rule) -> Rule:
    if rule.id in REGISTRY and REGISTRY[rule.id] is not rule:
        raise ValueError(f"two rules share the id {rule.id!r}")
    REGISTRY[rule.id] = rule
    return rule


def docstring_of(fn: Callable[..., Any]) -> str:
    """A rule function's docstring, dedented, as its description."""
    return inspect.cleandoc(fn.__doc__ or "").strip()


def metadata(
    *,
    id: str,
    title: str,
    severity: str,
    attack: str | Iterable[str],
    events: Mapping[str, Iterable[str] | str],
    params: Mapping[str, Any] | None,
    dedup: str | float,
    runbook: str,
    cases: Iterable[Case],
    fn: Callable[..., Any],
    validate: Callable[[Params], None] | None = None,
    param_docs: Mapping[str, str] | None = None,
    shared: str = "",
    gates: Iterable[Gate] = (),
) -> dict[str, Any]:
    """The keyword arguments of `Rule` from a decorator's arguments: shared by every rule kind.

    `validate(params)` checks configured values beyond their type and raises ConfigError;
    `param_docs` says in one line per parameter what it means (shown by `trailwarden config`);
    `shared` names a configuration section that sets the rule's parameters (see `Rule.shared`);
    `gates` are fields the rule cannot match without (see `Rule.gates`)."""
    return {
        "id": id,
        "title": title,
        "severity": severity,
        "attack": (attack,) if isinstance(attack, str) else tuple(attack),
        "description": docstring_of(fn),
        "runbook": runbook,
        "events": _event_index(events),
        "params": dict(params or {}),
        "dedup": parse_duration(dedup),
        "cases": tuple(cases),
        "validate": validate,
        "param_docs": dict(param_docs or {}),
        "shared": shared,
        "gates": tuple(gates),
    }


def match(
    *,
    id: str,
    title: str,
    severity: str,
    attack: str | Iterable[str],
    events: Mapping[str, Iterable[str] | str],
    params: Mapping[str, Any] | None = None,
    dedup: str | float = "1h",
    runbook: str = "",
    cases: Iterable[Case] = (),
    validate: Callable[[Params], None] | None = None,
    param_docs: Mapping[str, str] | None = None,
    gates: Iterable[Gate] = (),
) -> Callable[[Callable[[Event, Params], Hit | bool | None]], MatchRule]:
    """Declare a match rule (see the module docstring); `gates` see `Rule.gates`."""

    def wrap(fn: Callable[[Event, Params], Hit | bool | None]) -> MatchRule:
        rule = MatchRule(
            **metadata(
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
                validate=validate,
                param_docs=param_docs,
                gates=gates,
            ),
            kind=Kind.MATCH,
            check=fn,
        )
        return register(rule)  # type: ignore[return-value]

    return wrap
