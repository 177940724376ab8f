"""Replay markers: control records the replay command puts on its keyed stream, one per shard.

WATERMARK carries the event time every router shard still reading has reached (stage 2 may fire timers up
to it, minus the allowed lateness); END carries the replay's largest event time, after every router shard
is done. A marker names its run, so a marker of another run is not one (docs/architecture.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum

KEY = "trailwarden_replay"
_PREFIX = b'{"' + KEY.encode()


class Kind(StrEnum):
    END = "end"
    WATERMARK = "watermark"


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
    when = doc.get("time")
    valid = isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when)
    return Marker(Kind(doc["kind"]), float(when) if valid and when is not None else None)
