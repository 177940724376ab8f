"""Both stages of the pipeline in one process, for `scan`, rule tests, benches and backfill.

Stage 1 evaluates match rules; stage 2 (stateful rules) will receive keyed facts routed in
memory. The live pipeline splits the same two stages across the KCL applications.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.config import Config, enabled_rules
from pipeline.engine import Engine, EngineStats
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.rule import Rule


class Detector:
    def __init__(self, rules: Iterable[Rule] | None = None, config: Config | None = None,
                 only: Iterable[str] | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        if rules is None:
            from pipeline.rules import builtin_rules

            rules = builtin_rules()
        self.config = config or Config.from_dict()
        self.engine = Engine(enabled_rules(rules, self.config, only), self.config, overrides)

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    def process(self, event: Event) -> list[Finding]:
        """Findings raised by one event (in event-time order of input)."""
        return self.engine.process(event)

    def finish(self) -> list[Finding]:
        """End of finite input: findings of timers due up to the last event time seen."""
        return []
