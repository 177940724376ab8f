"""Both stages in one process, for `scan`, `backfill`, `rules test` and `demo`: a `RouterStage` whose facts go
straight to one keyed state (docs/architecture.md, "The two stages").

Event time only advances with the input: `finish()` fires timers up to the last event time seen and no
further, and `summary()` says how many watches were still open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.config import Config
from pipeline.engine import EngineStats
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.pack import Pack, bind_pack
from pipeline.routed import Routed, add_stats
from pipeline.rule import Rule
from pipeline.stages import RouterStage


class Detector:
    """Stage 1 and stage 2 in one process: a `RouterStage` whose facts go straight to one keyed state."""

    def __init__(
        self,
        pack: Pack | None = None,
        *,
        rules: Iterable[Rule] | None = None,
        config: Config | None = None,
        only: Iterable[str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        sigma: Iterable[str] = (),
    ) -> None:
        """`pack`, or the pack `bind_pack(config, only, rules=rules, overrides=overrides, sigma=sigma)` binds."""
        self.pack = pack if pack is not None else bind_pack(config, only, rules=rules, overrides=overrides, sigma=sigma)
        stage = RouterStage(self.pack)
        self.engine, self.extractor = stage.engine, stage.extractor
        self.state = self.pack.new_state()
        self._stateful = bool(self.pack.stateful)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule it runs."""
        return self.pack.rules

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

    def take(self, routed: Routed) -> list[Finding]:
        """`process` for an event whose stage 1 ran elsewhere (`pipeline.routed`): its findings, and those
        its facts and time make due here."""
        findings = list(routed.findings)
        if self._stateful:
            if routed.facts:
                self._count(self.state.add(routed.facts), findings)
            self._count(self.state.observe(routed.time), findings)
        return findings

    def advance(self, time: float) -> list[Finding]:
        """`take` for an event whose stage 1 elsewhere gave no finding and no fact: what its time makes due."""
        findings: list[Finding] = []
        if self._stateful:
            self._count(self.state.observe(time), findings)
        return findings

    def absorb(self, stage1: EngineStats, facts_out: int) -> None:
        """Count what stage 1 did elsewhere (`pipeline.routed` workers) as if it ran here."""
        add_stats(self.engine.stats, [stage1])
        self.extractor.facts_out += facts_out

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
                f"{rule}: {n}" for rule, n in sorted(open_watches.items())
            )
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
