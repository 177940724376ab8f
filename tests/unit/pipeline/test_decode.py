"""Decoders: every transport, gzip or not, and dead letters with their reasons and origins."""

from __future__ import annotations

import gzip
import json
from typing import Any

import orjson
import pytest

from pipeline.decode import (
    EVENTBRIDGE_DETAIL_TYPE,
    SAMPLE_BYTES,
    DeadLetter,
    DecodeStats,
    GzipError,
    decode,
    decode_floor,
    decode_line,
    gunzip,
)
from pipeline.event import Event
from tests.support.corpus import STRATUS


def record(i: int = 0, **fields: Any) -> dict[str, Any]:
    base = {
        "eventVersion": "1.09",
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser",
        "eventTime": f"2024-07-31T13:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "eventID": f"id-{i}",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice"},
        "requestParameters": {"userName": f"u{i}"},
        "responseElements": None,
    }
    base.update(fields)
    return base


def cwl(messages: list[Any], message_type: str = "DATA_MESSAGE", int_ids: bool = False) -> dict[str, Any]:
    return {
        "messageType": message_type,
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs",
        "logStream": "111122223333_CloudTrail_us-east-1",
        "subscriptionFilters": ["trail"],
        "logEvents": [
            {
                "id": i if int_ids else str(i),
                "timestamp": 1722431184000,
                "message": m if isinstance(m, str) else json.dumps(m),
            }
            for i, m in enumerate(messages)
        ],
    }


def envelope(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e",
        "detail-type": EVENTBRIDGE_DETAIL_TYPE,
        "source": "aws.iam",
        "account": "111122223333",
        "time": rec["eventTime"],
        "region": "us-east-1",
        "resources": [],
        "detail": rec,
    }


def run(data: bytes, origin: str = "test") -> tuple[list[Event], list[DeadLetter], DecodeStats]:
    stats = DecodeStats()
    out = list(decode(data, origin, stats))
    events = [x for x in out if isinstance(x, Event)]
    dead = [x for x in out if isinstance(x, DeadLetter)]
    assert len(events) + len(dead) == len(out)
    return events, dead, stats


def both(data: bytes) -> list[bytes]:
    return [data, gzip.compress(data)]


RECORDS = [record(i) for i in range(5)]
TRANSPORTS = {
    "cloudwatch-logs": orjson.dumps(cwl(RECORDS)),
    "cloudwatch-logs-int-ids": orjson.dumps(cwl(RECORDS, int_ids=True)),
    "s3-log-file": orjson.dumps({"Records": RECORDS}),
    "json-array": orjson.dumps(RECORDS),
    "json-lines": b"\n".join(orjson.dumps(r) for r in RECORDS) + b"\n",
    "json-lines-crlf": b"\r\n".join(orjson.dumps(r) for r in RECORDS),
    "eventbridge-lines": b"\n".join(orjson.dumps(envelope(r)) for r in RECORDS),
}


@pytest.mark.parametrize("name", sorted(TRANSPORTS))
@pytest.mark.parametrize("compressed", [False, True])
def test_every_transport_decodes_gzip_or_not(name: str, compressed: bool) -> None:
    data = TRANSPORTS[name]
    events, dead, _ = run(gzip.compress(data) if compressed else data)
    assert dead == []
    assert [e.event_id for e in events] == [r["eventID"] for r in RECORDS]
    assert events[0].source == "iam.amazonaws.com" and events[0].name == "CreateUser"
    assert events[0].raw == RECORDS[0]


@pytest.mark.parametrize("data", both(orjson.dumps(record(7))) + both(orjson.dumps(envelope(record(7)))))
def test_single_event_and_single_envelope(data: bytes) -> None:
    events, dead, _ = run(data)
    assert dead == [] and [e.event_id for e in events] == ["id-7"]


def test_event_time_is_epoch_seconds() -> None:
    (event,), _, _ = run(orjson.dumps(record(0, eventTime="2024-07-31T13:06:24Z")))
    assert event.time == 1722431184.0


@pytest.mark.parametrize(
    ("detail_type", "event_type"),
    [
        ("AWS Console Signin via CloudTrail", "AwsConsoleSignIn"),
        ("AWS Service Event via CloudTrail", "AwsServiceEvent"),
        ("AWS Console Action via CloudTrail", "AwsConsoleAction"),
    ],
)
def test_eventbridge_other_cloudtrail_detail_types_decode(detail_type: str, event_type: str) -> None:
    rec = record(4, eventType=event_type)
    events, dead, _ = run(orjson.dumps({**envelope(rec), "detail-type": detail_type}))
    assert dead == [] and [e.event_id for e in events] == ["id-4"]


def test_cloudtrail_insights_events_are_skipped_in_every_transport() -> None:
    insight = record(
        9,
        eventType="AwsCloudTrailInsight",
        eventName="AttachRolePolicy",
        insightDetails={"state": "Start", "insightType": "ApiCallRateInsight"},
    )
    recs = [record(1), insight, record(2)]
    insight_envelope = {**envelope(insight), "detail-type": "AWS Insight via CloudTrail"}
    for data in (
        orjson.dumps({"Records": recs}),
        orjson.dumps(cwl(recs)),
        orjson.dumps(insight),
        b"\n".join([orjson.dumps(envelope(recs[0])), orjson.dumps(insight_envelope)]),
    ):
        events, dead, stats = run(data)
        assert dead == [] and "id-9" not in [e.event_id for e in events]
        assert stats.skipped["CloudTrail Insights event"] == 1


def test_control_message_is_skipped_and_counted_not_dead_lettered() -> None:
    control = cwl(["CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."], "CONTROL_MESSAGE")
    for data in both(orjson.dumps(control)):
        events, dead, stats = run(data)
        assert events == [] and dead == []
        assert stats.skipped["CONTROL_MESSAGE"] == 1
        assert not stats.dead_letters


def test_multi_member_gzip_of_one_document() -> None:
    data = orjson.dumps({"Records": RECORDS})
    half = len(data) // 2
    events, dead, _ = run(gzip.compress(data[:half]) + gzip.compress(data[half:]))
    assert dead == [] and len(events) == len(RECORDS)


def test_multi_member_gzip_of_documents_as_firehose_delivers() -> None:
    members = gzip.compress(orjson.dumps(cwl(RECORDS[:2]))) + gzip.compress(orjson.dumps(cwl(["x"], "CONTROL_MESSAGE")))
    members += gzip.compress(orjson.dumps(cwl(RECORDS[2:])))
    events, dead, stats = run(members, "fh")
    assert dead == [] and [e.event_id for e in events] == [r["eventID"] for r in RECORDS]
    assert stats.skipped["CONTROL_MESSAGE"] == 1


def test_cloudwatch_logs_bad_log_events_are_dead_letters_the_others_decode() -> None:
    doc = cwl([record(0), "{not json", record(1)])
    doc["logEvents"].append({"id": "9", "timestamp": 1})  # no message
    doc["logEvents"].append(None)
    doc["logEvents"].append({"id": "10", "message": 42})
    doc["logEvents"].append({"id": "11", "message": "[1, 2]"})
    doc["logEvents"].append({"id": "12", "message": json.dumps(record(2, eventTime="yesterday"))})
    events, dead, stats = run(gzip.compress(orjson.dumps(doc)), "trail/shardId-000000000001/4955")
    assert [e.event_id for e in events] == ["id-0", "id-1"]
    reasons = [d.reason for d in dead]
    assert reasons[0].startswith("logEvents[1].message is not JSON: ")
    assert reasons[1:] == [
        "logEvents[3].message is a JSON null, not a string",
        "logEvents[4] is a JSON null, not an object",
        "logEvents[5].message is a JSON number, not a string",
        "logEvents[6].message: record is a JSON array, not an object",
        "logEvents[7].message: eventTime missing or not an ISO 8601 time",
    ]
    assert all(d.origin == "trail/shardId-000000000001/4955" for d in dead)
    assert dead[0].sample == b"{not json"
    assert sum(stats.dead_letters.values()) == len(dead)
    assert stats.dead_letters["logEvents[].message is not JSON"] == 1


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"messageType": "DATA_MESSAGE", "logEvents": None}, "logEvents is a JSON null, not an array"),
        ({"messageType": "DATA_MESSAGE", "logEvents": {"a": 1}}, "logEvents is a JSON object, not an array"),
        ({"messageType": "DATA_MESSAGE"}, "logEvents is a JSON null, not an array"),
        ({"messageType": 5, "logEvents": []}, "messageType is not DATA_MESSAGE or CONTROL_MESSAGE: a JSON number"),
        ({"messageType": "OTHER", "logEvents": []}, "messageType is not DATA_MESSAGE or CONTROL_MESSAGE: 'OTHER'"),
        ({"Records": None}, "Records is a JSON null, not an array"),
        ({"Records": "x"}, "Records is a JSON string, not an array"),
        ({"detail-type": EVENTBRIDGE_DETAIL_TYPE, "detail": None}, "detail is a JSON null, not an object"),
        ({"detail-type": EVENTBRIDGE_DETAIL_TYPE, "detail": [1]}, "detail is a JSON array, not an object"),
        (
            {"detail-type": EVENTBRIDGE_DETAIL_TYPE, "detail": {"eventName": "X"}},
            "detail: eventSource missing or not a string",
        ),
        (
            {"detail-type": "EC2 Instance State-change Notification", "detail": {}},
            "EventBridge detail-type is not one of CloudTrail's (... via CloudTrail): "
            "'EC2 Instance State-change Notification'",
        ),
        (
            {"detail-type": ["AWS API Call via CloudTrail"], "detail": {}},
            "EventBridge detail-type is not one of CloudTrail's (... via CloudTrail): a JSON array",
        ),
        (
            {"eventSource": "s3.amazonaws.com", "eventName": 3, "eventTime": "2024-07-31T13:06:24Z"},
            "eventName missing or not a string",
        ),
        (
            {"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventTime": None},
            "eventTime missing or not an ISO 8601 time",
        ),
        ([None, 1, "x", [], {}], None),
        (None, "JSON null is not a CloudTrail record or envelope"),
        (42, "JSON number is not a CloudTrail record or envelope"),
        ("CloudTrail", "JSON string is not a CloudTrail record or envelope"),
    ],
)
def test_wrong_shapes_are_dead_letters_with_reasons(doc: Any, reason: str | None) -> None:
    for data in both(orjson.dumps(doc)):
        events, dead, stats = run(data, "s3://bucket/key.json.gz")
        assert events == []
        assert all(d.origin == "s3://bucket/key.json.gz" for d in dead)
        if reason is None:  # a JSON array of non-records: one dead letter each
            assert [d.reason for d in dead] == [
                "[0]: record is a JSON null, not an object",
                "[1]: record is a JSON number, not an object",
                "[2]: record is a JSON string, not an object",
                "[3]: record is a JSON array, not an object",
                "[4]: eventSource missing or not a string",
            ]
        else:
            assert [d.reason for d in dead] == [reason]
        assert sum(stats.dead_letters.values()) == len(dead)


def test_records_with_nulls_and_wrong_types_each_dead_lettered_with_index() -> None:
    events, dead, _ = run(orjson.dumps({"Records": [record(0), None, record(2), {"eventSource": ["x"]}]}))
    assert [e.event_id for e in events] == ["id-0", "id-2"]
    assert [d.reason for d in dead] == [
        "Records[1]: record is a JSON null, not an object",
        "Records[3]: eventSource missing or not a string",
    ]
    assert [d.kind for d in dead] == [
        "Records[]: record is a JSON null, not an object",
        "Records[]: eventSource missing or not a string",
    ]


def test_json_lines_bad_line_is_a_dead_letter_with_its_line_number() -> None:
    lines = [
        orjson.dumps(record(0)),
        b"",
        b"{broken",
        b"   ",
        orjson.dumps(envelope(record(1))),
        b"[]",
        orjson.dumps(record(2)),
    ]
    events, dead, _ = run(b"\n".join(lines), "trail.jsonl")
    assert [e.event_id for e in events] == ["id-0", "id-1", "id-2"]
    assert [(d.origin, d.reason.split(":")[0]) for d in dead] == [("trail.jsonl:3", "not JSON")]
    assert len(dead) == 1  # an empty array line holds no records: nothing to account for


def test_json_lines_whose_first_line_is_bad_still_decode() -> None:
    data = b"garbage line\n" + b"\n".join(orjson.dumps(r) for r in RECORDS)
    events, dead, _ = run(data, "f")
    assert len(events) == len(RECORDS) and [d.origin for d in dead] == ["f:1"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b"  \n\n ", "empty input"),
        (b"\xff\xfe\x00{", "not UTF-8"),
        (b'{"eventSource": "\xc3\x28"}', "not UTF-8"),
        (b"<html>503</html>", "not JSON"),
        (b'{"Records": [', "not JSON"),
        (gzip.compress(orjson.dumps({"Records": RECORDS}), mtime=0)[:-10], "truncated gzip"),
        (gzip.compress(orjson.dumps({"Records": RECORDS}), mtime=0)[:12], "truncated gzip"),
        (b"\x1f\x8b\x08\x00garbage-garbage", "corrupt gzip"),
        (gzip.compress(b"[]", mtime=0) + b"trailing junk", "trailing data after gzip"),
    ],
)
def test_unreadable_blobs_are_one_dead_letter(data: bytes, reason: str) -> None:
    events, dead, stats = run(data, "shard-1/seq-42")
    assert events == []
    assert len(dead) == 1
    assert dead[0].reason.split(":")[0] == reason and dead[0].kind == reason
    assert dead[0].origin == "shard-1/seq-42"
    assert dead[0].sample == data[:SAMPLE_BYTES]
    assert stats.dead_letters[reason] == 1


def test_utf8_byte_order_mark_is_ignored() -> None:
    for data in both(b"\xef\xbb\xbf" + TRANSPORTS["s3-log-file"]):
        events, dead, _ = run(data)
        assert dead == [] and len(events) == len(RECORDS)
    assert [e.event_id for e in decode_line(b"\xef\xbb\xbf" + orjson.dumps(record(3)), "f:1")] == ["id-3"]
    (dead,) = decode_line(b"\xef\xbb\xbf" * 100_000, "f:2")
    assert isinstance(dead, DeadLetter) and dead.kind == "not JSON"


def test_gzip_zero_padding_is_ignored() -> None:
    events, dead, _ = run(gzip.compress(orjson.dumps(RECORDS)) + b"\x00" * 100)
    assert dead == [] and len(events) == len(RECORDS)


def test_gzip_bomb_is_a_dead_letter_not_a_memory_blowup() -> None:
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    stats = DecodeStats()
    (dead,) = list(decode(bomb, "bomb", stats, max_size=1024 * 1024))
    assert isinstance(dead, DeadLetter)
    assert dead.reason.startswith("decompressed size exceeds the limit")
    assert len(dead.sample) <= SAMPLE_BYTES
    with pytest.raises(GzipError):
        gunzip(bomb, 1024 * 1024)


def test_plain_blob_over_the_limit_is_a_dead_letter() -> None:
    (dead,) = list(decode(orjson.dumps(RECORDS), "big", max_size=100))
    assert isinstance(dead, DeadLetter) and dead.reason.startswith("size exceeds the limit")


def test_sample_is_bounded_and_dead_letter_serializes() -> None:
    big = record(0, eventTime=None, requestParameters={"blob": "x" * 100_000})
    _, (dead,), _ = run(orjson.dumps([big]))
    assert len(dead.sample) == SAMPLE_BYTES
    as_dict = dead.to_dict()
    assert set(as_dict) == {"reason", "kind", "origin", "sample"}
    orjson.dumps(as_dict)


@pytest.mark.parametrize("depth", [10, 300, 1000, 1023])
def test_deeply_nested_json_is_a_dead_letter_not_a_recursion_error(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    for data in (
        b'{"Records": [' + nested + b"]}",
        b'{"Records": [{"eventSource": ' + nested + b"}]}",
        orjson.dumps(cwl([(b"[" * depth + b"]" * depth).decode()])),
    ):
        events, dead, _ = run(data)
        assert events == [] and len(dead) == 1 and dead[0].sample


def test_decode_line_blank_yields_nothing() -> None:
    assert list(decode_line(b"  \r\n", "x")) == []
    (event,) = list(decode_line(orjson.dumps(record(3)) + b"\n", "x:1"))
    assert isinstance(event, Event) and event.origin == "x:1"


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = gzip.compress(TRANSPORTS["cloudwatch-logs"])
    for blob in (bytearray(data), memoryview(data)):
        events, dead, _ = run(blob)  # type: ignore[arg-type]
        assert dead == [] and len(events) == len(RECORDS)


def test_decode_floor_counts_the_messages() -> None:
    doc = cwl(RECORDS)
    assert decode_floor(gzip.compress(orjson.dumps(doc))) == len(RECORDS)
    assert decode_floor(orjson.dumps(doc)) == len(RECORDS)


def test_corpus_files_decode_without_dead_letters_in_every_transport() -> None:
    total = 0
    for path in sorted(STRATUS.glob("*.json")):
        data = path.read_bytes()
        recs = orjson.loads(data)
        for blob in (
            data,
            gzip.compress(orjson.dumps({"Records": recs})),
            orjson.dumps(cwl(recs)),
            b"\n".join(orjson.dumps(envelope(r)) for r in recs),
        ):
            events, dead, _ = run(blob, path.name)
            assert dead == [], (path.name, dead[:1])
            assert [e.event_id for e in events] == [r.get("eventID", "") for r in recs]
        total += len(recs)
    assert total > 0
