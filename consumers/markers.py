"""Markers: control records on a keyed stream, one per keyed shard, among the facts.

Replay markers are put by the replay command: WATERMARK carries the event time every router shard still
reading has reached (stage 2 may fire timers up to it, minus the allowed lateness); END carries the replay's
largest event time, after every router shard is done. A replay marker names its run, so a marker of another
run is not one.

Progress markers are put live by each router shard, after its facts were acknowledged: how far in arrival
time it has read its trail shard, and the arrival and largest event time of what it read. Stage 2 moves its
watermark only as far as every trail shard has read (`consumers.frontier`; docs/architecture.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum

KEY = "trailwarden_replay"
_PREFIX = b'{"' + KEY.encode()
PROGRESS_KEY = "trailwarden_progress"
_PROGRESS_PREFIX = b'{"' + PROGRESS_KEY.encode()


class Kind(StrEnum):
    END = "end"
    WATERMARK = "watermark"
    PROGRESS = "progress"


@dataclass(frozen=True)
class Marker:
    kind: Kind
    time: float | None  # event time, epoch seconds; None if the replay saw no event


def encode(run_id: str, kind: Kind, event_time: float | None = None) -> bytes:
    return json.dumps({KEY: run_id, "kind": kind.value, "time": event_time}, separators=(",", ":")).encode()


def read(data: bytes | None, run_id: str) -> Marker | None:
    """The marker of run `run_id` in `data`, or None (a fact is never one: facts have no such field)."""
    if not data or not data.startswith(_PREFIX):
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get(KEY) != run_id or doc.get("kind") not in (Kind.END, Kind.WATERMARK):
        return None
    return Marker(Kind(doc["kind"]), _number(doc.get("time")))


@dataclass(frozen=True)
class Progress:
    """A router shard's progress: every record that reached trail shard `shard` before `read_to` (epoch
    seconds, arrival time) was read and its facts acknowledged; `arrival` and `time` are the arrival time of
    the last record read and the largest event time read (None before the first record)."""

    shard: str
    read_to: float
    arrival: float | None = None
    time: float | None = None
    kind: Kind = Kind.PROGRESS


def encode_progress(progress: Progress) -> bytes:
    return json.dumps(
        {PROGRESS_KEY: progress.shard, "read_to": progress.read_to, "arrival": progress.arrival, "time": progress.time},
        separators=(",", ":"),
    ).encode()


def read_progress(data: bytes | None) -> Progress | None:
    """The progress marker in `data`, or None (facts never start with its key)."""
    if not data or not data.startswith(_PROGRESS_PREFIX):
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get(PROGRESS_KEY), str):
        return None
    read_to, arrival, when = (_number(doc.get(name)) for name in ("read_to", "arrival", "time"))
    if read_to is None:
        return None
    return Progress(doc[PROGRESS_KEY], read_to, arrival, when)


def _number(value: object) -> float | None:
    valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if valid else None  # type: ignore[arg-type]
