"""`FactExtractor`: the stage-1 half of the stateful rules, an event to the keyed facts its rules want.

Rules are looked up with the engine's `RuleIndex`, so an event only meets the extractors of the
rules that declared its (eventSource, eventName) and whose gates admit it; everything else costs one
dict lookup (and a read of each gated field).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pipeline.config import Config
from pipeline.engine import BoundRule, EngineStats, RuleIndex, note_rule_error
from pipeline.engine import bind as bind_rule
from pipeline.event import Event
from pipeline.rule import Kind
from pipeline.stateful.facts import Fact, Step, clean_fields
from pipeline.stateful.rule import StatefulRule

log = logging.getLogger(__name__)

# Bound on the (rule, key, value) -> last sent time map that throttles first-seen refreshes.
_RECENT_LIMIT = 200_000


def bind(
    rules: Iterable[StatefulRule], config: Config, overrides: dict[str, dict[str, Any]] | None = None
) -> list[BoundRule]:
    overrides = overrides or {}
    return [bind_rule(r, config, overrides.get(r.id)) for r in rules]


class FactExtractor:
    """Extracts keyed facts for stateful rules. Extractor exceptions are counted in `stats`, never raised."""

    def __init__(self, bound: Iterable[BoundRule], stats: EngineStats | None = None) -> None:
        self.bound = [br for br in bound if isinstance(br.rule, StatefulRule)]
        self.index = RuleIndex(self.bound)
        self.stats = stats or EngineStats()
        self.facts_out = 0
        self._refresh = {
            br.rule.id: br.rule.options_for(br.params).refresh  # type: ignore[attr-defined]
            for br in self.bound
            if br.rule.kind == Kind.FIRST_SEEN
        }
        self._recent: dict[tuple[str, str, str], float] = {}
        # Allowlist emptiness is decided once here, not per fact.
        self._allowlists = {br.rule.id: br.allowlist for br in self.bound if br.allowlist}
        self._meta_event: Event | None = None
        self._meta: tuple[str, ...] = ()

    @classmethod
    def for_rules(
        cls,
        rules: Iterable[StatefulRule],
        config: Config | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> FactExtractor:
        return cls(bind(rules, config or Config.from_dict(), overrides))

    def facts(self, event: Event) -> list[Fact]:
        """The facts `event` yields (usually none)."""
        candidates, gated = self.index.candidates(event)
        if not candidates:
            return []
        out: list[Fact] = []
        for br in candidates:
            rule: StatefulRule = br.rule  # type: ignore[assignment]
            try:
                result = rule.extract(event, br.params)
                if not result:
                    continue
                if isinstance(result, Step):  # one step, nearly always: no bookkeeping of places
                    fact = self._fact(rule, br, event, result)
                    if fact is not None:
                        out.append(fact)
                    continue
                seen: dict[tuple[str, str], int] = {}
                for step in result:
                    fact = self._fact(rule, br, event, step)
                    if fact is not None:
                        fact.nth = seen.get((fact.key, fact.step), 0)  # several facts of one event for one key
                        seen[(fact.key, fact.step)] = fact.nth + 1
                        out.append(fact)
            except Exception as exc:  # a rule bug must not stop the shard
                note_rule_error(self.stats, rule.id, event, exc)
        self.facts_out += len(out)
        if gated and len(out) > 1:  # in the pack's order, as if no rule were gated
            out.sort(key=lambda f: self.index.position[f.rule])
        return out

    def _fact(self, rule: StatefulRule, br: BoundRule, event: Event, step: Step) -> Fact | None:
        if type(step.key) is not str or not step.key:
            return None
        allowlist = self._allowlists.get(rule.id)
        if (
            allowlist is not None
            and (rule.allowlist_steps is None or step.step in rule.allowlist_steps)
            and allowlist.permits(event)
        ):
            self.stats.suppressed[rule.id] += 1
            return None
        value = step.value if type(step.value) is str else ""
        refresh = self._refresh.get(rule.id)
        if refresh:
            marker = (rule.id, step.key, value)
            sent = self._recent.get(marker)
            if sent is not None and 0 <= event.time - sent < refresh:
                return None
            if len(self._recent) >= _RECENT_LIMIT:
                self._recent.clear()
            self._recent[marker] = event.time
        if self._meta_event is not event:  # the event's fields every fact carries, read once per event
            self._meta_event, self._meta = event, _meta(event)
        return Fact.of_event(
            rule.id,
            step.key,
            event.time,
            step.step,
            value,
            clean_fields(step.fields, rule.fields) if step.fields else None,
            self._meta,
        )


def _meta(event: Event) -> tuple[str, ...]:
    """What every fact of `event` carries besides its rule's step, clipped and interned once."""
    return Fact.meta_of(event.event_id, event.account, event.region, event.principal, event.source_ip, event.user_agent)
