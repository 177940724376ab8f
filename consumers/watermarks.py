"""How a stage-2 processor moves its shard's event time: as far as the routers have read (live), or at a
replay's markers.

Live, each router shard reports how far it has read its trail shard (progress markers on the keyed stream),
and a keyed shard's watermark moves only as far as every live trail shard has read; when the shard is idle it
also advances with the wall clock, but never past that point, so "still untagged after N minutes" fires even
if nothing else happens, and never while the fact that would cancel it is still upstream. In a replay each
router shard reads the past at its own pace, and the state advances only at the replay's markers
(`consumers.markers`). docs/architecture.md tells the whole story.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from consumers import markers
from consumers.frontier import Frontier
from pipeline.finding import Finding
from pipeline.stateful.facts import Fact
from pipeline.stateful.state import KeyedState

log = logging.getLogger("consumers.stateful")


class Watermark(Protocol):
    idle_batches: bool  # whether an empty batch moves event time (the daemon sends them when asked to)

    def prepare(self, state: KeyedState) -> None: ...

    def marker(self, data: bytes) -> markers.Marker | markers.Progress | None:
        """The control record `data` is, if it is one."""
        ...

    def facts(self, state: KeyedState, facts: list[Fact], now: float) -> list[Finding]:
        """Take a batch's facts; the findings now due."""
        ...

    def at_marker(self, state: KeyedState, marker: markers.Marker | markers.Progress) -> list[Finding]: ...

    def after_batch(self, state: KeyedState, now: float) -> list[Finding]:
        """At the end of every batch, empty ones too if `idle_batches`."""
        ...


class RouterProgress:
    """Live: event time moves as far as stage 1 has provably read (`consumers.frontier.Frontier`, from the
    routers' progress markers), never on what this shard sees alone:

    - with the trail flowing, to the largest event time of the records that arrived before the frontier,
      minus the allowed lateness (a router shard that falls behind holds every keyed shard back, so its facts
      are never judged late for being slow);
    - when this shard had no fact for `idle_after`, also with the wall clock from its last fact, but only up to
      the frontier: a router that is down, or has not reported, stops the clock, so a timer never fires while
      the fact that would cancel it may still be waiting in the trail stream.

    `trail_shards` lists the trail stream's shards (ListShards): at the start, when a shard that is not listed
    reports (after a reshard), and every LIST_EVERY seconds."""

    idle_batches = True
    LIST_EVERY = 60.0
    LIST_AGAIN_AFTER = 2.0  # at most this often when a report names a shard not listed

    def __init__(self, trail_shards: Callable[[], list[dict[str, Any]]]) -> None:
        self.trail_shards = trail_shards
        self.frontier = Frontier()
        self._listed_at = -math.inf
        self._last_fact: tuple[float, float] | None = None  # (wall clock, largest event time) at the last fact

    def prepare(self, state: KeyedState) -> None:
        state.driven = True
        self._last_fact = None

    def marker(self, data: bytes) -> markers.Progress | None:
        return markers.read_progress(data)

    def facts(self, state: KeyedState, facts: list[Fact], now: float) -> list[Finding]:
        found = state.add(facts, now=now)
        if facts:
            self._last_fact = (now, state.max_time)
        return found

    def at_marker(self, state: KeyedState, marker: markers.Marker | markers.Progress) -> list[Finding]:
        if isinstance(marker, markers.Progress):
            self.frontier.report(marker)
        return []

    def after_batch(self, state: KeyedState, now: float) -> list[Finding]:
        self._list(now)
        if self._last_fact is None:
            self._last_fact = (now, state.max_time)
        frontier = self.frontier.read_to()
        if frontier is None:
            return []
        reached = self.frontier.event_time()
        target = -math.inf if reached is None else reached - state.lateness
        wall, base = self._last_fact
        if now - wall >= state.idle_after and base > -math.inf:
            target = max(target, base + (min(now, frontier) - wall) - state.lateness)
        return state.drive_to(target) if target > state.watermark else []

    def _list(self, now: float) -> None:
        due = now - self._listed_at >= (self.LIST_AGAIN_AFTER if self.frontier.unknown else self.LIST_EVERY)
        if not due:
            return
        self._listed_at = now
        try:
            self.frontier.listed(self.trail_shards())
        except Exception as exc:  # the clock waits (safe); listed again next time
            log.warning("listing the trail stream's shards failed: %s", exc)


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

    def at_marker(self, state: KeyedState, marker: markers.Marker | markers.Progress) -> list[Finding]:
        if not isinstance(marker, markers.Marker):
            return []
        if marker.kind is markers.Kind.WATERMARK:
            return state.drive_to(marker.time - state.lateness) if marker.time is not None else []
        found = state.observe(marker.time) if marker.time is not None else []
        return found + state.flush()

    def after_batch(self, state: KeyedState, now: float) -> list[Finding]:
        return []
