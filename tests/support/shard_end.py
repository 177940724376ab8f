"""How a Kinesis endpoint ends a closed shard, to each kind of reader: what the KCL needs to leave a parent.

A polling reader (GetRecords) is at a shard's end when a response has no NextShardIterator (it carries the
ChildShards). An enhanced fan-out reader (SubscribeToShard over HTTP/2) is at the end when an event has no
ContinuationSequenceNumber, with the ChildShards; the KCL's fan-out publisher marks the end of the shard on
exactly that (`isAtShardEnd(continuationSequenceNumber == null)`), and reads no child before.

    seen = shard_end.probe(url)        # a stream of its own: 1 shard, 3 records, a consumer, a split
    seen.fanout_ends, seen.evidence    # False and the events as received, on kinesis-local 0.6.2

The subscription is read as the raw event stream (botocore's parser refuses a stream that does not open
with an `initial-response` event, and kinesis-local sends none), signed like any request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

REGION = "us-east-1"


@dataclass(frozen=True)
class ShardEnd:
    polling_ends: bool  # GetRecords on the closed parent: no NextShardIterator, the ChildShards given
    fanout_ends: bool  # SubscribeToShard on it: an event without ContinuationSequenceNumber, with ChildShards
    evidence: str


def _client(url: str) -> Any:
    return boto3.client(
        "kinesis", endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )


def _wait_active(kinesis: Any, stream: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stream} not ACTIVE after {timeout:.0f} s")
        time.sleep(0.1)


def subscribe(url: str, consumer: str, shard: str, seconds: float) -> tuple[int, list[dict[str, Any]]]:
    """SubscribeToShard from TRIM_HORIZON, read for `seconds` (or until the stream closes): the HTTP status and
    each event as {type, name, payload} (a payload's Records replaced by their count)."""
    body = json.dumps({"ConsumerARN": consumer, "ShardId": shard, "StartingPosition": {"Type": "TRIM_HORIZON"}})
    request = AWSRequest(
        "POST",
        url + "/",
        data=body,
        headers={"X-Amz-Target": "Kinesis_20131202.SubscribeToShard", "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials("test", "test"), "kinesis", REGION).add_auth(request)
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=seconds + 5)
    events: list[dict[str, Any]] = []
    try:
        connection.request("POST", "/", body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        buffer = EventStreamBuffer()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            chunk = response.read1(65536)
            if not chunk:
                break
            buffer.add_data(chunk)
            for message in buffer:
                payload = json.loads(message.payload) if message.payload else {}
                if isinstance(payload.get("Records"), list):
                    payload["Records"] = len(payload["Records"])
                headers = message.headers
                name = headers.get(":event-type") or headers.get(":exception-type")
                events.append({"type": headers.get(":message-type"), "name": name, "payload": payload})
                if payload.get("ChildShards") and not payload.get("ContinuationSequenceNumber"):
                    return response.status, events
        return response.status, events
    finally:
        connection.close()


def probe(url: str, seconds: float = 3.5) -> ShardEnd:
    """Split a one-shard stream of its own holding 3 records, then read the closed parent both ways."""
    kinesis = _client(url)
    stream = f"shard-end-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    try:
        _wait_active(kinesis, stream)
        for i in range(3):
            kinesis.put_record(StreamName=stream, PartitionKey=str(i), Data=b"x")
        arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
        consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="probe")["Consumer"]["ConsumerARN"]
        deadline = time.monotonic() + 30
        while kinesis.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]["ConsumerStatus"] != (
            "ACTIVE"
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the probe's consumer is not ACTIVE after 30 s")
            time.sleep(0.1)
        parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
        low, high = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        kinesis.split_shard(
            StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2)
        )
        _wait_active(kinesis, stream)
        closed = next(s for s in kinesis.list_shards(StreamName=stream)["Shards"] if s["ShardId"] == parent["ShardId"])
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=parent["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        polled = kinesis.get_records(ShardIterator=iterator)
        polling_ends = not polled.get("NextShardIterator") and bool(polled.get("ChildShards"))
        status, events = subscribe(url, consumer, parent["ShardId"], seconds)
        fanout_ends = any(
            e["payload"].get("ChildShards") and not e["payload"].get("ContinuationSequenceNumber") for e in events
        )
        shown = "; ".join(json.dumps(e, sort_keys=True) for e in events[:3])
        ending = (
            "one ending the shard" if fanout_ends else "none without ContinuationSequenceNumber, none with ChildShards"
        )
        evidence = (
            f"after SplitShard the parent {parent['ShardId']} lists SequenceNumberRange "
            f"{closed['SequenceNumberRange']};"
            f" GetRecords on it: {len(polled['Records'])} records, NextShardIterator "
            f"{'absent' if not polled.get('NextShardIterator') else 'present'}, "
            f"ChildShards {[c['ShardId'] for c in polled.get('ChildShards', [])]}. "
            f"SubscribeToShard (TRIM_HORIZON) on it: HTTP {status}, {len(events)} events in {seconds:g} s, "
            f"{ending}; the first: {shown}"
        )
        return ShardEnd(polling_ends, fanout_ends, evidence)
    finally:
        with contextlib.suppress(Exception):
            kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
