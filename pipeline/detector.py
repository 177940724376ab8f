"""Both stages of the pipeline in one process, for `scan`, rule tests, benches and backfill.

Stage 1 evaluates match rules and extracts keyed facts for the stateful rules; the facts go
straight to one in-process keyed state (stage 2), which is what routing by key amounts to when
there is a single shard. The live pipeline splits the same two stages across the KCL applications,
so a file gives the findings the live pipeline would.

Event time only advances with the input: `finish()` fires timers up to the last event time seen
and no further (finite input does not mean time has passed), and `summary()` says how many
watches were still open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pipeline.config import Config, enabled_rules
from pipeline.engine import Engine, EngineStats
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.rule import Rule
from pipeline.stateful.extractor import FactExtractor, bind
from pipeline.stateful.kinds import StatefulRule
from pipeline.stateful.state import KeyedState, lateness_from


class Detector:
    def __init__(self, rules: Iterable[Rule] | None = None, config: Config | None = None,
                 only: Iterable[str] | None = None, overrides: dict[str, dict[str, Any]] | None = None,
                 sigma: Iterable[str] = ()) -> None:
        """`rules`, or the configured pack with the Sigma folders `sigma` (`pipeline.rules.rule_pack`)."""
        self.config = config or Config.from_dict()
        if rules is None:
            from pipeline.rules import rule_pack

            rules = rule_pack(self.config, sigma)
        chosen = enabled_rules(rules, self.config, only)
        stateful = [r for r in chosen if isinstance(r, StatefulRule)]
        self.engine = Engine([r for r in chosen if not isinstance(r, StatefulRule)], self.config, overrides)
        self.engine.rules = chosen
        self.extractor = FactExtractor(bind(stateful, self.config, overrides), self.engine.stats)
        lateness, idle_after = lateness_from(self.config)
        self.state = KeyedState([(br.rule, br.params) for br in self.extractor.bound],  # type: ignore[misc]
                                lateness=lateness, idle_after=idle_after)
        self._stateful = bool(stateful)

    @property
    def stats(self) -> EngineStats:
        """Events, findings, suppressions and rule errors of both stages."""
        return self.engine.stats

    def process(self, event: Event) -> list[Finding]:
        """Findings raised by one event, including stateful findings now due (in event-time order of input)."""
        findings = self.engine.process(event)
        if self._stateful:
            facts = self.extractor.facts(event)
            if facts:
                self._count(self.state.add(facts), findings)
            self._count(self.state.observe(event.time), findings)
        return findings

    def finish(self) -> list[Finding]:
        """End of finite input: findings of timers due up to the last event time seen."""
        findings: list[Finding] = []
        if self._stateful:
            self._count(self.state.flush(), findings)
        return findings

    def _count(self, new: list[Finding], into: list[Finding]) -> None:
        for finding in new:
            self.engine.stats.findings[finding.rule_id] += 1
        into.extend(new)
        errors = self.state.stats.last_errors
        if errors:
            self.engine.stats.rule_errors.update(self.state.stats.rule_errors)
            self.engine.stats.last_errors.extend(errors)
            self.state.stats.rule_errors.clear()
            errors.clear()

    def summary(self) -> dict[str, Any]:
        """What `scan` prints at the end: events, findings by rule, stateful watches still open,
        evictions, facts and rule errors."""
        stats = self.engine.stats
        st = self.state.stats
        open_watches = self.state.open_watches()
        total_open = sum(open_watches.values())
        text = ""
        if total_open:
            text = f"{total_open} watch{'es' if total_open != 1 else ''} still open: " + ", ".join(
                f"{rule}: {n}" for rule, n in sorted(open_watches.items()))
        return {
            "events": stats.events,
            "findings": sum(stats.findings.values()),
            "findings_by_rule": dict(sorted(stats.findings.items())),
            "suppressed_by_rule": dict(sorted(stats.suppressed.items())),
            "rule_errors": dict(sorted(stats.rule_errors.items())),
            "stateful": {
                "facts": self.extractor.facts_out,
                "duplicate_facts": st.duplicates,
                "late_facts": st.late,
                "expired_facts": st.expired,
                "tracked_keys": self.state.keys(),
                "evictions": dict(sorted(st.evictions.items())),
                "open_watches": dict(sorted(open_watches.items())),
                "open_watches_text": text,
                "last_event_time": self.state.max_time if self.state.max_time > float("-inf") else None,
            },
        }

    def open_watches(self) -> Counter[str]:
        return self.state.open_watches()
