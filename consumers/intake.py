"""Which records a stage-1 processor takes: all of them (live), or a replay's time range."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Intake(Protocol):
    def take(self, batch: Any) -> list[Any]:
        """The records of a ProcessRecordsInput to process."""
        ...

    def finished(self, batch: Any) -> str | None:
        """After the batch was processed: why the shard is done, or None."""
        ...


class AllRecords:
    """Live: every record, and a shard is never done before it ends."""

    def take(self, batch: Any) -> list[Any]:
        return batch.records

    def finished(self, batch: Any) -> str | None:
        return None


class ArrivalRange:
    """A replay: the records that reached the stream in [start, end] (ApproximateArrivalTimestamp, what the
    AT_TIMESTAMP start position uses); the shard is done at its first record past the end, or at its tip."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self._passed = False

    def take(self, batch: Any) -> list[Any]:
        records = batch.records
        first, last, self._passed = select(
            [getattr(r, "timestamp_millis", None) for r in records], self.start, self.end
        )
        return records[first:last]

    def finished(self, batch: Any) -> str | None:
        if self._passed:
            return "passed the end of the range"
        if at_tip(getattr(batch, "millis_behind_latest", None), len(batch.records)):
            return "reached the tip of the shard"
        return None


def select(arrivals_ms: Sequence[int | None], start: float, end: float) -> tuple[int, int, bool]:
    """The records of a batch within [start, end] by arrival time: (first, past the last, passed end).

    Records before `start` (AT_TIMESTAMP has one-second resolution) are skipped; the first record
    after `end` ends the shard, and nothing after it is taken. A record without an arrival time is
    taken (it cannot be placed, and dropping it could lose an event)."""
    first = 0
    while first < len(arrivals_ms) and _before(arrivals_ms[first], start):
        first += 1
    for i in range(first, len(arrivals_ms)):
        arrival = arrivals_ms[i]
        if arrival is not None and arrival / 1000.0 > end:
            return first, i, True
    return first, len(arrivals_ms), False


def _before(arrival_ms: int | None, start: float) -> bool:
    return arrival_ms is not None and arrival_ms / 1000.0 < start


def at_tip(millis_behind_latest: Any, batch_size: int) -> bool:
    """True when a read reached the shard's newest record: MillisBehindLatest 0 if the service gave it,
    else an empty read."""
    if isinstance(millis_behind_latest, int | float) and not isinstance(millis_behind_latest, bool):
        return millis_behind_latest <= 0
    return batch_size == 0
