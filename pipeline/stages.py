"""The two stages of the pipeline, as the core sees them (docs/architecture.md).

Stage 1, the router, turns each event into findings of the match rules (`MatchEngine`) and keyed facts for
the stateful rules (`FactExtractor`): `RouterStage`. Stage 2, the stateful stage, applies the facts to keyed
state with event-time timers (`Pack.new_state()`, a `KeyedState`). Live, a KCL application runs each stage
(`consumers.router`, `consumers.stateful`); `Detector` runs both in one process.
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.engine import EngineStats, MatchEngine
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.pack import Pack
from pipeline.stateful.extractor import FactExtractor
from pipeline.stateful.facts import Fact


class Stage(StrEnum):
    """A stage by its name: the name of its KCL application's default, its log lines and its progress files."""

    ROUTER = "router"  # stage 1, over the trail stream
    STATEFUL = "stateful"  # stage 2, over the keyed stream


class RouterStage:
    """Stage 1 on one event: the match rules' findings and the stateful rules' facts. Match rules and fact
    extraction count their rule errors in one `stats`."""

    def __init__(self, pack: Pack) -> None:
        self.engine = MatchEngine(pack.match)
        self.extractor = FactExtractor(pack.stateful, self.engine.stats)

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    def process(self, event: Event) -> tuple[list[Finding], list[Fact]]:
        return self.engine.process(event), self.extractor.facts(event)

    def take_errors(self) -> list[str]:
        """The rule errors noted since the last call."""
        errors = list(self.engine.stats.last_errors)
        self.engine.stats.last_errors.clear()
        return errors
