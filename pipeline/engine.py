"""The match-rule engine: rules indexed by (eventSource, eventName), so an event meets only the rules it can match.

A rule that declares gates (`pipeline.rule.Gate`: a field it cannot match without) is indexed by that field
too: the rules gated on one field are found with one read of the field and a set lookup, so a rule that
watches every event for root's calls or a denied call costs the events that are neither nothing.

`MatchEngine` runs the match rules of a bound pack (`pipeline.pack`) on one event; the stateful rules' half of
stage 1 (`pipeline.stateful.extractor`) looks its rules up with the same `RuleIndex`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Allowlist, Config
from pipeline.event import Event
from pipeline.finding import Finding, finding_id, window_start
from pipeline.rule import ANY, Gate, Hit, MatchRule, Params, Rule

# Event names are attacker-controlled: the per-pair cache is cleared rather than allowed to grow.
_CACHE_LIMIT = 20_000


@dataclass(slots=True)
class BoundRule:
    """A rule with its configured parameters and allowlist."""

    rule: Rule
    params: Params
    allowlist: Allowlist


@dataclass
class EngineStats:
    events: int = 0
    findings: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    rule_errors: Counter[str] = field(default_factory=Counter)
    last_errors: list[str] = field(default_factory=list)


def bind(rule: Rule, config: Config, overrides: dict[str, Any] | None = None) -> BoundRule:
    """A rule as the configuration has it: its severity and dedup period, parameters and allowlist."""
    return BoundRule(config.configured(rule), config.params(rule, overrides), config.allowlist(rule))


def note_rule_error(stats: EngineStats | Any, rule_id: str, what: object, exc: BaseException) -> None:
    """Count a rule's exception in `stats` (anything with `rule_errors` and `last_errors`) and keep the
    first few messages: a rule bug is reported, never raised into the shard."""
    stats.rule_errors[rule_id] += 1
    if len(stats.last_errors) < 20:
        stats.last_errors.append(f"{rule_id} on {what}: {type(exc).__name__}: {exc}")


def make_finding(
    rule: Rule, event: Event, hit: Hit, *, event_ids: Sequence[str] | None = None, context: dict[str, Any] | None = None
) -> Finding:
    """A finding for `rule` raised by `event` (the event that completed the detection)."""
    key = hit.key or event.principal or event.source_ip
    window = window_start(event.time, rule.dedup)
    ctx: dict[str, Any] = {"event_source": event.source, "event_name": event.name}
    if context:
        ctx.update(context)
    ctx.update(hit.context)
    return Finding(
        id=finding_id(rule.id, key, window, event.account),
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        attack=rule.attack,
        account=event.account,
        region=event.region,
        principal=event.principal,
        source_ip=event.source_ip,
        user_agent=event.user_agent,
        resources=tuple(hit.resources),
        event_ids=tuple(event_ids) if event_ids is not None else (event.event_id,),
        event_time=event.time,
        dedup_key=key,
        window=window,
        summary=hit.summary or f"{event.name} by {event.principal or 'unknown principal'}",
        context=ctx,
    )


_MISSING = object()


@dataclass(frozen=True, slots=True)
class GateGroup:
    """The gated rules of one (eventSource, eventName) whose gates read one field (see `Gate`)."""

    path: tuple[str, ...]
    present: tuple[BoundRule, ...]  # any value will do
    exact: dict[str, tuple[BoundRule, ...]]  # the value as it is
    folded: dict[str, tuple[BoundRule, ...]]  # the value lowercased
    contains: tuple[tuple[str, bool, BoundRule], ...]  # (text, fold, rule)
    every: tuple[BoundRule, ...]  # each rule of the group once: a value the gates cannot read lets all decide

    @classmethod
    def of(cls, path: tuple[str, ...], gated: list[tuple[Gate, BoundRule]]) -> GateGroup:
        present: list[BoundRule] = []
        exact: dict[str, list[BoundRule]] = {}
        folded: dict[str, list[BoundRule]] = {}
        contains: list[tuple[str, bool, BoundRule]] = []
        for gate, br in gated:
            if gate.equals:
                for value in gate.equals:
                    (folded if gate.fold else exact).setdefault(value, []).append(br)
            elif gate.contains:
                contains.append((gate.contains, gate.fold, br))
            else:
                present.append(br)
        every = tuple({id(br): br for _, br in gated}.values())
        return cls(
            path,
            tuple(present),
            {k: tuple(v) for k, v in exact.items()},
            {k: tuple(v) for k, v in folded.items()},
            tuple(contains),
            every,
        )


Admit = Callable[[dict[str, Any]], list[BoundRule]]
Route = tuple[tuple[BoundRule, ...], Admit | None]


def compile_gates(groups: tuple[GateGroup, ...]) -> Admit:
    """The function that picks, of the gated rules in `groups`, those whose gates admit a record (see
    `Gate`), each once; straight-line code: each field read once (a shared first step,
    `userIdentity`, once for all), no loop and no call per group. The rules and the field names are the
    function's constants, never part of its source text (Sigma field names come from files)."""
    env: dict[str, Any] = {"M": _MISSING, "ODD": object()}
    heads: dict[str, str] = {}
    lines = ["def admit(raw):", "    out = []"]

    def const(value: Any) -> str:
        name = f"c{len(env)}"
        env[name] = value
        return name

    for group in groups:
        first, rest = group.path[0], group.path[1:]
        if rest and first not in heads:
            heads[first] = f"h{len(heads)}"
            lines.append(f"    {heads[first]} = raw.get({const(first)}, M)")
    for group in groups:
        first, rest = group.path[0], group.path[1:]
        lines.append(f"    v = {heads[first]}" if rest else f"    v = raw.get({const(first)}, M)")
        for step in rest:
            lines += [
                f"    if type(v) is dict: v = v.get({const(step)}, M)",
                "    elif v is not None and v is not M: v = ODD",
                "    else: v = M",
            ]
        lines.append("    if type(v) is str:")
        body = []
        if group.present:
            body.append(f"        out.extend({const(group.present)})")
        if group.exact:
            body.append(f"        r = {const(group.exact)}.get(v)")
            body.append("        if r: out.extend(r)")
        if group.folded or any(fold for _, fold, _ in group.contains):
            body.append("        lv = v.lower()")
        if group.folded or group.contains:
            if group.folded:
                body.append(f"        r = {const(group.folded)}.get(lv)")
                body.append("        if r: out.extend(r)")
            for needle, fold, br in group.contains:
                body.append(f"        if {const(needle)} in {'lv' if fold else 'v'}: out.append({const(br)})")
        lines += body or ["        pass"]
        lines.append("    elif v is M: pass")
        if group.present:
            lines.append(f"    elif v is None: out.extend({const(group.present)})")
        else:
            lines.append("    elif v is None: pass")
        lines.append(f"    else: out.extend({const(group.every)})")
    if len(groups) > 1:
        lines.append("    if len(out) > 1: out = list({id(br): br for br in out}.values())")
    lines.append("    return out")
    # The constants are the arguments of a function that makes `admit`: read as closure cells, not globals.
    names = ", ".join(env)
    source = "\n".join([f"def make({names}):", *("    " + line for line in lines), "    return admit"])
    scope: dict[str, Any] = {}
    exec(source, scope)  # noqa: S102 (generated from the structure above; every value is an argument)
    return scope["make"](**env)  # type: ignore[no-any-return]


class RuleIndex:
    """Rules bound to configuration, looked up by (eventSource, eventName), then by their gates' fields."""

    def __init__(self, bound: Iterable[BoundRule]) -> None:
        self.bound = list(bound)
        self._exact: dict[tuple[str, str], list[BoundRule]] = {}
        self._by_source: dict[str, list[BoundRule]] = {}
        self._any_source: dict[str, list[BoundRule]] = {}
        self._everything: list[BoundRule] = []
        for br in self.bound:
            for source, names in br.rule.events.items():
                if source == ANY and names is None:
                    self._everything.append(br)
                elif source == ANY:
                    for name in names or ():
                        self._any_source.setdefault(name, []).append(br)
                elif names is None:
                    self._by_source.setdefault(source, []).append(br)
                else:
                    for name in names:
                        self._exact.setdefault((source, name), []).append(br)
        self._cache: dict[tuple[str, str], tuple[BoundRule, ...]] = {}
        self.routes: dict[tuple[str, str], Route] = {}  # what `route` found, by (source, name)
        self._admits: dict[tuple[Any, ...], Admit] = {}
        self.position = {br.rule.id: i for i, br in enumerate(self.bound)}

    def route(self, source: str, name: str) -> Route:
        """The rules an event of (source, name) meets: those without gates, and the gated ones grouped by
        the function that picks the gated ones an event is for (`compile_gates`)."""
        pair = (source, name)
        found = self.routes.get(pair)
        if found is None:
            plain: list[BoundRule] = []
            by_path: dict[tuple[str, ...], list[tuple[Gate, BoundRule]]] = {}
            for br in self.lookup(source, name):
                if br.rule.gates:
                    for gate in br.rule.gates:
                        by_path.setdefault(gate.path, []).append((gate, br))
                else:
                    plain.append(br)
            found = tuple(plain), self._admit(by_path) if by_path else None
            if len(self.routes) >= _CACHE_LIMIT:
                self.routes.clear()
            self.routes[pair] = found
        return found

    def _admit(self, by_path: dict[tuple[str, ...], list[tuple[Gate, BoundRule]]]) -> Admit:
        # Compiled once per set of gated rules (events of unknown names all share one), not per name.
        key = tuple((path, tuple(id(br) for _, br in gated)) for path, gated in by_path.items())
        admit = self._admits.get(key)
        if admit is None:
            admit = self._admits[key] = compile_gates(tuple(GateGroup.of(p, g) for p, g in by_path.items()))
        return admit

    def candidates(self, event: Event) -> tuple[tuple[BoundRule, ...], bool]:
        """The rules `event` is for: those of its (source, name) without gates, then the gated ones its fields
        pass (each gated field read once); and whether any gated one is among them (then what they give must
        be put in the pack's order)."""
        pair = (event.source, event.name)
        plain, admit = self.routes.get(pair) or self.route(*pair)
        gated = admit(event.raw) if admit is not None else None
        return ((*plain, *gated), True) if gated else (plain, False)

    def lookup(self, source: str, name: str) -> tuple[BoundRule, ...]:
        """Every rule that declared (source, name), gated or not, in the pack's order."""
        pair = (source, name)
        found = self._cache.get(pair)
        if found is None:
            seen: dict[int, BoundRule] = {}
            for group in (
                self._exact.get(pair, ()),
                self._by_source.get(source, ()),
                self._any_source.get(name, ()),
                self._everything,
            ):
                for br in group:
                    seen.setdefault(id(br), br)
            found = tuple(seen.values())
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[pair] = found
        return found


class MatchEngine:
    """Evaluates match rules on events. Rule exceptions are counted, never raised."""

    def __init__(self, bound: Iterable[BoundRule], stats: EngineStats | None = None) -> None:
        self.index = RuleIndex(br for br in bound if isinstance(br.rule, MatchRule))
        self.stats = stats or EngineStats()

    def process(self, event: Event) -> list[Finding]:
        """Findings of the match rules for one event."""
        self.stats.events += 1
        candidates, gated = self.index.candidates(event)
        if not candidates:
            return []
        findings: list[Finding] = []
        for br in candidates:
            rule: MatchRule = br.rule  # type: ignore[assignment]
            try:
                result = rule.check(event, br.params)
                if not result:
                    continue
                if br.allowlist and br.allowlist.permits(event):
                    self.stats.suppressed[rule.id] += 1
                    continue
                finding = make_finding(rule, event, result if isinstance(result, Hit) else Hit())
            except Exception as exc:  # a rule bug must not stop the shard
                note_rule_error(self.stats, rule.id, event, exc)
                continue
            self.stats.findings[rule.id] += 1
            findings.append(finding)
        if gated and len(findings) > 1:  # in the pack's order, as if no rule were gated
            findings.sort(key=lambda f: self.index.position[f.rule_id])
        return findings
