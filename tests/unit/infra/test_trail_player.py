"""The CloudTrail player: stream names, event-time order per stream, and PutLogEvents limits (no server)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.trail_player import (
    EVENT_OVERHEAD,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_SPAN_MS,
    LogEvent,
    Player,
    batches,
    log_stream_name,
)


class FakeLogs:
    """Records PutLogEvents calls and checks each against the API's rules as CloudWatch Logs would."""

    def __init__(self, reject_too_new_from: int | None = None) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self.streams: set[str] = set()
        self.reject_too_new_from = reject_too_new_from

    def create_log_stream(self, logGroupName: str, logStreamName: str) -> None:
        self.streams.add(logStreamName)

    def put_log_events(self, logGroupName: str, logStreamName: str, logEvents: list[dict[str, Any]]) -> dict:
        assert logStreamName in self.streams, "stream used before it was created"
        assert 0 < len(logEvents) <= MAX_BATCH_EVENTS
        assert sum(len(e["message"].encode()) + EVENT_OVERHEAD for e in logEvents) <= MAX_BATCH_BYTES
        stamps = [e["timestamp"] for e in logEvents]
        assert stamps == sorted(stamps) and stamps[-1] - stamps[0] <= MAX_SPAN_MS
        self.calls.append((logStreamName, logEvents))
        if self.reject_too_new_from is not None and len(logEvents) > self.reject_too_new_from:
            return {"rejectedLogEventsInfo": {"tooNewLogEventStartIndex": self.reject_too_new_from}}
        return {}


def _record(i: int, t: int, account: str = "111122223333", region: str = "eu-west-1", size: int = 0) -> dict:
    return {
        "eventVersion": "1.08",
        "eventID": f"id-{i}",
        "eventTime": f"2024-08-06T{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}Z",
        "recipientAccountId": account,
        "awsRegion": region,
        "eventSource": "iam.amazonaws.com",
        "eventName": "ListUsers",
        "pad": "x" * size,
    }


def test_stream_names_follow_cloudtrail() -> None:
    assert log_stream_name("111122223333", "eu-west-1") == "111122223333_CloudTrail_eu-west-1"
    assert log_stream_name("111122223333", "eu-west-1", 1) == "111122223333_CloudTrail_eu-west-1_2"


def test_events_arrive_in_event_time_order_per_stream_with_nothing_lost() -> None:
    records = [_record(i, (i * 7919) % 5000, account=("111122223333", "444455556666")[i % 2]) for i in range(3000)]
    records.append(
        {
            "eventTime": "not a time",
            "eventID": "bad-time",
            "recipientAccountId": "111122223333",
            "awsRegion": "eu-west-1",
        }
    )
    logs = FakeLogs()
    stats = Player(logs, "/g").play(records)
    assert stats.events == len(records) and stats.rejected == 0
    assert logs.streams == {"111122223333_CloudTrail_eu-west-1", "444455556666_CloudTrail_eu-west-1"}
    by_stream: dict[str, list[dict]] = {}
    for stream, events in logs.calls:
        by_stream.setdefault(stream, []).extend(orjson.loads(e["message"]) for e in events)
    delivered = [r for rs in by_stream.values() for r in rs]
    assert sorted(r["eventID"] for r in delivered) == sorted(r["eventID"] for r in records)
    for stream_records in by_stream.values():
        times = [r["eventTime"] for r in stream_records if r["eventID"] != "bad-time"]
        assert times == sorted(times)
    assert by_stream["111122223333_CloudTrail_eu-west-1"][-1]["eventID"] == "bad-time"


def test_large_events_split_calls_and_oversize_events_are_dropped() -> None:
    records = [_record(i, i, size=100_000) for i in range(25)] + [_record(99, 30, size=300_000)]
    logs = FakeLogs()
    stats = Player(logs, "/g", account="999988887777").play(records)
    assert stats.oversize == 1 and stats.events == 25
    assert len(logs.calls) >= 3  # 25 x 100 KB cannot fit in one 1 MB call
    assert {stream for stream, _ in logs.calls} == {"999988887777_CloudTrail_eu-west-1"}


def test_busy_account_regions_spread_over_numbered_streams() -> None:
    logs = FakeLogs()
    Player(logs, "/g", streams_per_region=3).play([_record(i, i) for i in range(300)])
    assert logs.streams == {f"111122223333_CloudTrail_eu-west-1{s}" for s in ("", "_2", "_3")}


def test_rejected_events_are_counted() -> None:
    logs = FakeLogs(reject_too_new_from=2)
    stats = Player(logs, "/g").play([_record(i, i) for i in range(10)])
    assert stats.rejected == 8 and stats.events == 2


def test_rate_paces_delivery() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    logs = FakeLogs()
    stats = Player(logs, "/g", rate=100, clock=lambda: now[0], sleep=sleep, wall=lambda: 1_700_000_000 + now[0]).play(
        [_record(i, i) for i in range(200)]
    )
    assert stats.events == 200
    assert 1.98 <= now[0] <= 2.0  # 200 events at 100/s: the last one is due at 1.99 s
    assert len(logs.calls) >= 9  # delivered every 0.2 s, not in one call at the end


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * MAX_SPAN_MS), st.integers(0, 300_000)), max_size=60))
def test_batches_respect_every_limit(spec: list[tuple[int, int]]) -> None:
    events = [LogEvent(t, "", size) for t, size in sorted(spec)]
    out = list(batches(events, max_events=7))
    assert [e for b in out for e in b] == events
    for batch in out:
        assert 0 < len(batch) <= 7
        assert batch[-1].timestamp - batch[0].timestamp <= MAX_SPAN_MS
        assert len(batch) == 1 or sum(e.size + EVENT_OVERHEAD for e in batch) <= MAX_BATCH_BYTES
