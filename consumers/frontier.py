"""How far stage 1 has provably read: the trail shards' progress markers, as a stage-2 shard collects them.

Every router shard puts a progress marker (`consumers.markers.Progress`) on every keyed shard after its facts
were acknowledged, so a marker follows every fact it speaks of. From them a stage-2 shard knows:

- the frontier: the smallest `read_to` over the live trail shards. Every record that reached the trail
  stream before it has been read and its facts are already on this keyed shard. A trail shard is live while
  it is open, and after it closed (a split or a merge) until one of its children has reported: the KCL
  starts children only once their parents are done. A live shard that has not reported yet (a router
  that is down, or not started) leaves the frontier unknown, and stage 2 does not move on the wall clock.
- the event time reached: the largest event time of the records that arrived before the frontier (the
  reports whose last record arrived before it). Records still to come arrived after the frontier, so they
  are at most the allowed lateness older, as within one shard.

docs/architecture.md, "Event time, watermarks and timers", tells how stage 2 uses both.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from consumers.markers import Progress

MAX_PENDING = 4096  # (arrival, event time) pairs kept past the frontier; more are dropped (that only holds back)
MAX_AHEAD = 900.0  # an event time further than this past its record's arrival is not believed (a skewed clock)


@dataclass(frozen=True)
class TrailShard:
    shard: str
    parents: tuple[str, ...]
    open: bool

    @classmethod
    def from_listing(cls, shard: Mapping[str, Any]) -> TrailShard:
        """From a ListShards entry."""
        parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
        closed = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
        return cls(shard["ShardId"], parents, not closed)


class Frontier:
    """The trail shards' latest reports and what they prove (see the module docstring)."""

    def __init__(self) -> None:
        self.shards: dict[str, TrailShard] = {}
        self.read_to_by_shard: dict[str, float] = {}
        self._pending: list[tuple[float, float]] = []  # (arrival, event time), arrival past the frontier
        self._last_pair: dict[str, tuple[float, float]] = {}
        self._reached = -math.inf
        self.unknown = False  # a shard reported that the listing does not hold: list the trail stream again

    def listed(self, shards: Iterable[Mapping[str, Any]]) -> None:
        """The trail stream's shards, open and closed (ListShards)."""
        self.shards = {s.shard: s for s in map(TrailShard.from_listing, shards)}
        self.unknown = any(s not in self.shards for s in self.read_to_by_shard)

    def report(self, progress: Progress) -> None:
        shard = progress.shard
        if shard not in self.shards:
            self.unknown = True
        self.read_to_by_shard[shard] = max(progress.read_to, self.read_to_by_shard.get(shard, -math.inf))
        if progress.arrival is None or progress.time is None or progress.time > progress.arrival + MAX_AHEAD:
            return
        pair = (progress.arrival, progress.time)
        if self._last_pair.get(shard) != pair and len(self._pending) < MAX_PENDING:
            self._last_pair[shard] = pair
            heapq.heappush(self._pending, pair)

    def live(self) -> list[str]:
        """The trail shards whose progress counts: open ones, closed ones none of whose children has reported,
        and any that reported but is not listed yet."""
        parents_reported = {p for s in self.read_to_by_shard if s in self.shards for p in self.shards[s].parents}
        live = [
            s.shard
            for s in self.shards.values()
            if s.open or (s.shard in self.read_to_by_shard and s.shard not in parents_reported)
        ]
        return live + [s for s in self.read_to_by_shard if s not in self.shards]

    def read_to(self) -> float | None:
        """The frontier (arrival time), or None while a live trail shard has not reported (or none is known)."""
        live = self.live()
        if not live or any(s not in self.read_to_by_shard for s in live):
            return None
        return min(self.read_to_by_shard[s] for s in live)

    def event_time(self) -> float | None:
        """The largest event time of the records that arrived before the frontier, or None if none is known."""
        frontier = self.read_to()
        if frontier is None:
            return None
        pending = self._pending
        while pending and pending[0][0] <= frontier:
            self._reached = max(self._reached, heapq.heappop(pending)[1])
        return self._reached if self._reached > -math.inf else None
