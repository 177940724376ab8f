"""How a stage-2 processor moves its shard's event time: the wall clock (live) or a replay's markers.

Live, the router shards move in step with the wall clock, so a keyed shard's own largest event time minus
the allowed lateness is a safe watermark, and when the shard is idle it advances with the wall clock, so
"still untagged after N minutes" fires even if nothing else happens. In a replay each router shard reads the
past at its own pace: the state never advances on what it sees alone, only on the replay's markers
(`consumers.markers`). docs/architecture.md tells the whole story.
"""

from __future__ import annotations

from typing import Protocol

from consumers import markers
from pipeline.finding import Finding
from pipeline.stateful.facts import Fact
from pipeline.stateful.state import KeyedState


class Watermark(Protocol):
    idle_batches: bool  # whether an empty batch moves event time (the daemon sends them when asked to)

    def prepare(self, state: KeyedState) -> None: ...

    def marker(self, data: bytes) -> markers.Marker | None:
        """The control record `data` is, if it is one."""
        ...

    def facts(self, state: KeyedState, facts: list[Fact], now: float) -> list[Finding]:
        """Take a batch's facts; the findings now due."""
        ...

    def at_marker(self, state: KeyedState, marker: markers.Marker) -> list[Finding]: ...

    def after_batch(self, state: KeyedState, now: float) -> list[Finding]:
        """At the end of every batch, empty ones too if `idle_batches`."""
        ...


class WallClock:
    """Live: the state's own watermark, advanced with the wall clock on an idle shard."""

    idle_batches = True

    def prepare(self, state: KeyedState) -> None:
        pass

    def marker(self, data: bytes) -> markers.Marker | None:
        return None  # the live keyed stream carries facts only

    def facts(self, state: KeyedState, facts: list[Fact], now: float) -> list[Finding]:
        return state.add(facts, now=now)

    def at_marker(self, state: KeyedState, marker: markers.Marker) -> list[Finding]:
        return []

    def after_batch(self, state: KeyedState, now: float) -> list[Finding]:
        return state.tick(now)


class ReplayMarkers:
    """A replay: event time moves only at the run's markers. At WATERMARK the facts and timers due up to its
    time minus the allowed lateness are applied and fired (every fact still to come is at most that much older);
    at END, event time moves to the replay's largest event time and the timers up to it fire, as `scan` does at
    the end of a file, never beyond."""

    idle_batches = False

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def prepare(self, state: KeyedState) -> None:
        state.driven = True

    def marker(self, data: bytes) -> markers.Marker | None:
        return markers.read(data, self.run_id)

    def facts(self, state: KeyedState, facts: list[Fact], now: float) -> list[Finding]:
        return state.add(facts)

    def at_marker(self, state: KeyedState, marker: markers.Marker) -> list[Finding]:
        if marker.kind is markers.Kind.WATERMARK:
            return state.drive_to(marker.time - state.lateness) if marker.time is not None else []
        found = state.observe(marker.time) if marker.time is not None else []
        return found + state.flush()

    def after_batch(self, state: KeyedState, now: float) -> list[Finding]:
        return []
