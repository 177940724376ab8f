"""Encoders: each transport is written as AWS writes it and decodes back to the same records."""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from typing import Any

import orjson
import pytest

from pipeline import encode
from pipeline.decode import DeadLetter, DecodeStats, decode
from pipeline.detector import Detector
from pipeline.event import Event, parse_event_time
from pipeline.scenario import build

S3_KEY = re.compile(
    r"^AWSLogs/(?P<acct>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/"
    r"(?P=acct)_CloudTrail_(?P=region)_(?P<stamp>\d{8}T\d{4}Z)_[A-Za-z0-9]{16}\.json\.gz$"
)


@pytest.fixture(scope="module")
def scenario() -> Any:
    return build(1500, seed=11)


def decoded(blobs: list[bytes], origin: str = "test") -> tuple[list[Event], DecodeStats]:
    stats = DecodeStats()
    out: list[Event] = []
    for n, blob in enumerate(blobs):
        for item in decode(blob, f"{origin}-{n}", stats):
            assert not isinstance(item, DeadLetter), item
            out.append(item)
    return out, stats


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["eventID"]: r for r in records}


def test_cwl_records_have_the_subscription_shape(scenario: Any) -> None:
    records = encode.cwl_records(scenario.events, per_record=50)
    last_id: dict[str, int] = {}
    for blob in records:
        assert blob[:2] == b"\x1f\x8b"
        doc = orjson.loads(gzip.decompress(blob))
        assert set(doc) == {"messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents"}
        assert doc["messageType"] == "DATA_MESSAGE"
        assert doc["subscriptionFilters"] == [encode.SUBSCRIPTION_FILTER]
        account, region = doc["logStream"].split("_CloudTrail_")
        assert doc["owner"] == account and re.fullmatch(r"\d{12}", account)
        assert 1 <= len(doc["logEvents"]) <= 50
        for le in doc["logEvents"]:
            assert set(le) == {"id", "timestamp", "message"}
            assert re.fullmatch(r"\d{56}", le["id"])
            ev = orjson.loads(le["message"])
            assert (ev["recipientAccountId"], ev["awsRegion"]) == (account, region)
            assert le["timestamp"] == int(parse_event_time(ev["eventTime"]) * 1000)
            n = int(le["id"])
            assert n > last_id.get(doc["logStream"], -1), "ids must increase within a log stream"
            last_id[doc["logStream"]] = n


def test_cwl_round_trip_keeps_every_event_and_stream_order(scenario: Any) -> None:
    events, stats = decoded(encode.cwl_records(scenario.events, per_record=64))
    assert by_id([e.raw for e in events]) == by_id(scenario.events)
    assert len(events) == len(scenario.events)
    per_stream: dict[str, list[float]] = defaultdict(list)
    for e in events:
        per_stream[encode.log_stream(e.raw)].append(e.time)
    for times in per_stream.values():
        assert times == sorted(times)
    assert not stats.dead_letters


def test_cwl_respects_the_byte_limit(scenario: Any) -> None:
    limit = 20_000
    for blob in encode.cwl_records(scenario.events, per_record=10_000, max_bytes=limit):
        doc = orjson.loads(gzip.decompress(blob))
        size = sum(len(le["message"]) + 100 for le in doc["logEvents"])
        assert size <= limit or len(doc["logEvents"]) == 1


def test_by_log_stream(scenario: Any) -> None:
    streams = encode.by_log_stream(scenario.events)
    assert sum(map(len, streams.values())) == len(scenario.events)
    for name, records in streams.items():
        assert {encode.log_stream(r) for r in records} == {name}
        assert [r["eventTime"] for r in records] == sorted(r["eventTime"] for r in records)


def test_control_message_is_skipped_not_dead() -> None:
    events, stats = decoded([encode.control_record(1722918600000)])
    assert events == []
    assert stats.skipped["CONTROL_MESSAGE"] == 1


def test_s3_files_use_the_cloudtrail_key_layout(scenario: Any) -> None:
    files = encode.cloudtrail_files(scenario.events, seed=3)
    assert len({k for k, _ in files}) == len(files)
    for key, blob in files:
        m = S3_KEY.match(key)
        assert m, key
        assert m["stamp"][:8] == m["y"] + m["m"] + m["d"]
        records = orjson.loads(gzip.decompress(blob))["Records"]
        assert records
        assert {(r["recipientAccountId"], r["awsRegion"]) for r in records} == {(m["acct"], m["region"])}
        delivered = max(parse_event_time(r["eventTime"]) for r in records)
        stamp = parse_event_time(
            f"{m['stamp'][:4]}-{m['stamp'][4:6]}-{m['stamp'][6:8]}T{m['stamp'][9:11]}:{m['stamp'][11:13]}:00Z"
        )
        assert stamp >= delivered - 60, "a file is named after its delivery, after its events"
    events, _ = decoded([b for _, b in files])
    assert by_id([e.raw for e in events]) == by_id(scenario.events)


def test_organization_trail_prefix(scenario: Any) -> None:
    key, _ = encode.cloudtrail_files(scenario.events[:5], org_id="o-a1b2c3d4e5")[0]
    assert key.startswith("AWSLogs/o-a1b2c3d4e5/") and key.split("/")[3] == "CloudTrail"


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_round_trip(scenario: Any, gz: bool) -> None:
    [(name, blob)] = list(encode.encode(scenario.events, "jsonl", gz=gz))
    assert name.endswith(".gz") == gz
    events, _ = decoded([blob])
    assert [e.raw for e in events] == scenario.events


@pytest.mark.parametrize("gz", [False, True])
def test_eventbridge_api_calls_round_trip(scenario: Any, gz: bool) -> None:
    calls = [r for r in scenario.events if r.get("eventType") == "AwsApiCall"]
    [(name, blob)] = list(encode.encode(calls, "eventbridge", gz=gz))
    assert name.endswith(".gz") == gz
    events, _ = decoded([blob])
    assert [e.raw for e in events] == calls


def test_eventbridge_every_event_type_round_trips(scenario: Any) -> None:
    """Console sign-ins ("AWS Console Signin via CloudTrail") and service events travel too."""
    events, _ = decoded([encode.eventbridge(scenario.events)])
    assert [e.raw for e in events] == scenario.events


def test_eventbridge_envelopes(scenario: Any) -> None:
    lines = encode.eventbridge(scenario.events, seed=1).splitlines()
    assert len(lines) == len(scenario.events)
    kinds = set()
    for line, ev in zip(lines, scenario.events, strict=True):
        env = orjson.loads(line)
        assert env["detail"] == ev
        assert env["version"] == "0" and re.fullmatch(r"[0-9a-f-]{36}", env["id"])
        assert env["source"] == "aws." + ev["eventSource"].split(".")[0]
        assert (env["account"], env["region"], env["time"]) == (
            ev["recipientAccountId"],
            ev["awsRegion"],
            ev["eventTime"],
        )
        kinds.add((ev.get("eventType"), env["detail-type"]))
    assert ("AwsApiCall", "AWS API Call via CloudTrail") in kinds
    assert ("AwsConsoleSignIn", "AWS Console Signin via CloudTrail") in kinds
    service_event = {"eventType": "AwsServiceEvent", "eventSource": "kms.amazonaws.com"}
    assert encode.eventbridge_envelope(service_event, "x")["detail-type"] == "AWS Service Event via CloudTrail"


@pytest.mark.parametrize("fmt", encode.FORMATS)
def test_encoding_is_deterministic(scenario: Any, fmt: str) -> None:
    assert list(encode.encode(scenario.events, fmt, seed=5)) == list(encode.encode(scenario.events, fmt, seed=5))


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        list(encode.encode([], "xml"))


@pytest.mark.parametrize("fmt", encode.FORMATS)
def test_every_transport_gives_the_same_findings(fmt: str) -> None:
    """Detection does not depend on the transport: CloudWatch Logs records, S3 files, JSON lines
    and EventBridge envelopes of one scenario raise the same findings as the records themselves."""
    sc = build(1200, seed=4)

    def findings(events: list[Event]) -> set[str]:
        det = Detector(overrides=sc.overrides)
        out = [f for e in events for f in det.process(e)] + det.finish()
        return {f.id for f in out}

    direct = findings([e for r in sc.events if isinstance(e := Event.from_record(r), Event)])
    blobs = [blob for _, blob in encode.encode(sc.events, fmt, seed=4)]
    events, _ = decoded(blobs)
    if fmt in ("cwl", "s3"):  # grouped by stream or file: restore event-time order as a consumer's merge would
        events.sort(key=lambda e: e.time)
    assert direct and findings(events) == direct
