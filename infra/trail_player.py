"""Play CloudTrail locally: write CloudTrail records into the trail log group as CloudTrail does.

CloudTrail delivers to CloudWatch Logs with PutLogEvents into log streams named
`<account id>_CloudTrail_<region>` (busy account-regions get more streams, `..._<region>_2`, ...),
one JSON record per log event, the log event's timestamp being the delivery time (the record's
`eventTime` can be anything), events in event-time order within a log stream. Each call stays within
the API's limits: 10,000 events, 1,048,576 bytes counting 26 bytes per event, a 24-hour span; an
event above 256 KB is not delivered at all.

    player = Player(logs_client, "/trailwarden/cloudtrail", rate=500)
    stats = player.play(records)          # records: CloudTrail record dicts, any order
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError

from pipeline.event import dig, parse_event_time, text

log = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD
MAX_SPAN_MS = 24 * 3600 * 1000
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
FLUSH_EVERY = 0.2  # seconds between deliveries when a rate is set


def log_stream_name(account: str, region: str, index: int = 0) -> str:
    """CloudTrail's log stream name; `index` > 0 names the extra streams of a busy account-region."""
    base = f"{account}_CloudTrail_{region}"
    return base if index == 0 else f"{base}_{index + 1}"


@dataclass(frozen=True, slots=True)
class LogEvent:
    timestamp: int  # milliseconds since the epoch
    message: str
    size: int  # bytes of the message in UTF-8

    @classmethod
    def of(cls, timestamp: int, message: str) -> LogEvent:
        return cls(timestamp, message, len(message.encode("utf-8")))


def batches(
    events: Iterable[LogEvent], max_events: int = MAX_BATCH_EVENTS, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[list[LogEvent]]:
    """Split time-ordered log events into PutLogEvents calls within the count, size and 24-hour limits."""
    batch: list[LogEvent] = []
    size = 0
    for event in events:
        cost = event.size + EVENT_OVERHEAD
        if batch and (
            len(batch) >= max_events or size + cost > max_bytes or event.timestamp - batch[0].timestamp > MAX_SPAN_MS
        ):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += cost
    if batch:
        yield batch


@dataclass
class PlayStats:
    events: int = 0  # delivered (accepted by PutLogEvents)
    calls: int = 0
    bytes: int = 0
    rejected: int = 0  # too old / too new / expired, as PutLogEvents reported
    oversize: int = 0  # above 256 KB: CloudTrail does not deliver these to CloudWatch Logs
    streams: set[str] = field(default_factory=set)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0


def _record_time(record: Any) -> float:
    t = parse_event_time(record.get("eventTime")) if isinstance(record, dict) else None
    return t if t is not None else math.inf


class Player:
    """Sends records to one log group. `rate` in events/s (None: as fast as the endpoint takes them)."""

    def __init__(
        self,
        logs: Any,
        log_group: str,
        *,
        rate: float | None = None,
        streams_per_region: int = 1,
        account: str | None = None,
        on_progress: Callable[[PlayStats], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.logs = logs
        self.log_group = log_group
        self.rate = rate
        self.streams_per_region = max(1, streams_per_region)
        self.account = account
        self.on_progress = on_progress
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self._created: set[str] = set()

    def stream_for(self, record: dict[str, Any]) -> str:
        account = self.account or text(record.get("recipientAccountId"))
        account = account or text(dig(record, "userIdentity", "accountId")) or DEFAULT_ACCOUNT
        region = text(record.get("awsRegion")) or DEFAULT_REGION
        index = 0
        if self.streams_per_region > 1:
            key = text(record.get("eventID")).encode() or orjson.dumps(record)
            index = zlib.crc32(key) % self.streams_per_region
        return log_stream_name(account, region, index)

    def play(self, records: Iterable[dict[str, Any]]) -> PlayStats:
        """Deliver `records` in event-time order per log stream (records without a valid eventTime last)."""
        ordered = sorted((r for r in records if isinstance(r, dict)), key=_record_time)
        stats = PlayStats()
        started = self.clock()
        pending: dict[str, list[LogEvent]] = {}
        pending_bytes: dict[str, int] = {}
        last_flush = started
        for i, record in enumerate(ordered):
            if self.rate is not None:
                due = started + i / self.rate
                now = self.clock()
                if due > now:
                    self.sleep(due - now)
            message = orjson.dumps(record).decode("utf-8")
            event = LogEvent.of(int(self.wall() * 1000), message)
            if event.size > MAX_EVENT_BYTES:
                stats.oversize += 1
                continue
            stream = self.stream_for(record)
            buffer = pending.setdefault(stream, [])
            cost = event.size + EVENT_OVERHEAD
            if buffer and (
                len(buffer) >= MAX_BATCH_EVENTS
                or pending_bytes[stream] + cost > MAX_BATCH_BYTES
                or event.timestamp - buffer[0].timestamp > MAX_SPAN_MS
            ):
                self._deliver(stream, buffer, stats)
                buffer.clear()
                pending_bytes[stream] = 0
            buffer.append(event)
            pending_bytes[stream] = pending_bytes.get(stream, 0) + cost
            if self.rate is not None and self.clock() - last_flush >= FLUSH_EVERY:
                self._flush(pending, pending_bytes, stats)
                last_flush = self.clock()
            stats.elapsed = self.clock() - started
        self._flush(pending, pending_bytes, stats)
        stats.elapsed = self.clock() - started
        return stats

    def _flush(self, pending: dict[str, list[LogEvent]], sizes: dict[str, int], stats: PlayStats) -> None:
        for stream, buffer in pending.items():
            if buffer:
                self._deliver(stream, buffer, stats)
                buffer.clear()
                sizes[stream] = 0

    def _ensure_stream(self, stream: str) -> None:
        if stream in self._created:
            return
        try:
            self.logs.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
        self._created.add(stream)

    def _deliver(self, stream: str, events: list[LogEvent], stats: PlayStats) -> None:
        self._ensure_stream(stream)
        for batch in batches(events):
            response = self.logs.put_log_events(
                logGroupName=self.log_group,
                logStreamName=stream,
                logEvents=[{"timestamp": e.timestamp, "message": e.message} for e in batch],
            )
            rejected = _rejected(response.get("rejectedLogEventsInfo") or {}, len(batch))
            stats.calls += 1
            stats.events += len(batch) - rejected
            stats.rejected += rejected
            stats.bytes += sum(e.size for e in batch)
            stats.streams.add(stream)
            if rejected:
                log.warning(
                    "%s: PutLogEvents rejected %d of %d events: %s",
                    stream,
                    rejected,
                    len(batch),
                    response.get("rejectedLogEventsInfo"),
                )
            if self.on_progress is not None:
                self.on_progress(stats)


def _rejected(info: dict[str, Any], n: int) -> int:
    """How many events of a batch of `n` PutLogEvents' rejectedLogEventsInfo covers (end indexes exclusive)."""
    rejected: set[int] = set()
    for key in ("tooOldLogEventEndIndex", "expiredLogEventEndIndex"):
        if isinstance(info.get(key), int):
            rejected.update(range(min(info[key], n)))
    if isinstance(info.get("tooNewLogEventStartIndex"), int):
        rejected.update(range(max(info["tooNewLogEventStartIndex"], 0), n))
    return len(rejected)
