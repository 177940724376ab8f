"""The match-rule engine: rules indexed by (eventSource, eventName), so an event meets only the rules it can match.

`MatchEngine` runs the match rules of a bound pack (`pipeline.pack`) on one event; the stateful rules' half of
stage 1 (`pipeline.stateful.extractor`) looks its rules up with the same `RuleIndex`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Allowlist, Config
from pipeline.event import Event
from pipeline.finding import Finding, finding_id, window_start
from pipeline.rule import ANY, Hit, MatchRule, Params, Rule

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


class RuleIndex:
    """Rules bound to configuration, looked up by (eventSource, eventName)."""

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

    def lookup(self, source: str, name: str) -> tuple[BoundRule, ...]:
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
        candidates = self.index.lookup(event.source, event.name)
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
        return findings
