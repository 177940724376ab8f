"""The live pipeline end to end on LocalStack (make test-localstack): CloudTrail records put into the trail log
group, LocalStack's subscription filter delivering them to its Kinesis (kinesis-mock), both KCL daemons (their
Kinesis on LocalStack, their lease tables on the embedded emulator), findings to SNS -> SQS and Firehose -> S3
on LocalStack.

The live tests are tests/e2e/test_live_pipeline.py's own, run here on this module's `stack`: the same records,
the same findings asserted as on the embedded emulator (the daemon SIGKILL and restart included).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.e2e.test_live_pipeline as on_the_emulator
from infra import localstack
from tests.support.live import SG_OPEN, Live, config_file, open_sg, stack_on
from tests.support.replay_run import run_replay

REPO = Path(__file__).resolve().parents[2]
GRACE = on_the_emulator.GRACE


@pytest.fixture(scope="module")
def stack(pair: localstack.LocalStackPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp("live-localstack")
    started = time.time()
    with stack_on(pair.target(), directory, config_file(directory, GRACE)) as running:
        running.started = started  # type: ignore[attr-defined]
        running.wait_for_processors()
        yield running


test_untagged_instance_reported_once_after_grace_and_tagged_one_not = (
    on_the_emulator.test_untagged_instance_reported_once_after_grace_and_tagged_one_not
)
test_no_processor_crashed = on_the_emulator.test_no_processor_crashed


def test_each_service_is_where_the_target_sends_it(pair: localstack.LocalStackPair, stack: Live):
    target = stack.target
    assert target.url_for("kinesis") == pair.localstack.endpoint
    assert target.url_for("dynamodb") == pair.emulator.endpoint
    assert stack.outputs["TrailStreamName"] in target.client("kinesis").list_streams()["StreamNames"]
    tables = target.client("dynamodb").list_tables()["TableNames"]
    assert stack.outputs["DedupeTableName"] in tables
    health = localstack.health(pair.localstack.endpoint) or {}
    assert health.get("services", {}).get("kinesis") == "running"  # LocalStack's, not the emulator's


def test_localstack_delivers_cloudwatch_logs_subscription_records(stack: Live):
    """What the router reads from LocalStack's trail stream: gzip DATA_MESSAGE documents, as on AWS."""
    kinesis, stream = stack.target.client("kinesis"), stack.outputs["TrailStreamName"]
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    documents = []
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        documents += [
            json.loads(gzip.decompress(r["Data"]))
            for r in kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"]
        ]
    assert documents, "nothing in the trail stream"
    data = [d for d in documents if d["messageType"] == "DATA_MESSAGE"]
    assert data and all(d["logGroup"] == stack.outputs["TrailLogGroupName"] for d in data)
    assert all(json.loads(e["message"])["eventVersion"] for d in data for e in d["logEvents"])


def test_replay_of_the_live_range_finds_the_same_and_leaves_nothing(stack: Live, tmp_path: Path):
    """`trailwarden replay` on LocalStack: its keyed stream on kinesis-mock, its lease tables on the emulator.
    The replay starts two more daemons beside LocalStack and the live ones: on a loaded 2-core machine they took
    two minutes to their first processor, and a 150 s --timeout ran out with the router done and stage 2 not."""
    window = (stack.started, time.time())  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRAILWARDEN_"))}
    env.update(
        {"TRAILWARDEN_STATE_DIR": str(tmp_path), "TRAILWARDEN_ENDPOINTS": stack.target.env({})["TRAILWARDEN_ENDPOINTS"]}
    )
    command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "replay",
        "--endpoint-url",
        str(stack.target.endpoint_url),
        "--from",
        repr(window[0]),
        "--to",
        repr(window[1]),
        "--format",
        "json",
        "--keyed-shards",
        "1",
        "--timeout",
        "360",
    ]
    result = run_replay(command, env, REPO, tmp_path, timeout=480)
    assert result.returncode == 0, result.stderr[-4000:]
    out = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert out and all(f["replayed"] for f in out)
    live_ids = {a.finding.id for a in stack.alerts}
    replayed = {(f["rule_id"], r) for f in out for r in f["resources"]}
    assert any(rule == SG_OPEN and "sg-0live1" in r for rule, r in replayed)  # the live test's
    assert {f["id"] for f in out if f["rule_id"] == SG_OPEN} <= live_ids  # the same finding as live
    tables = stack.target.client("dynamodb").list_tables()["TableNames"]
    assert [n for n in tables if "-replay-" in n] == []
    # kinesis-mock, like Kinesis, deletes a stream in the background: DELETING is a deletion accepted.
    kinesis = stack.target.client("kinesis")
    streams = [n for n in kinesis.list_streams()["StreamNames"] if "-replay-" in n]
    assert [n for n in streams if _status(kinesis, n) not in ("DELETING", None)] == []


def _status(kinesis, stream: str) -> str | None:
    """The stream's status, None once it is gone."""
    try:
        return kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
    except kinesis.exceptions.ResourceNotFoundException:
        return None


def _wait_active(kinesis, stream: str) -> None:
    deadline = time.monotonic() + 60
    while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, f"{stream} not ACTIVE after a reshard"
        time.sleep(0.2)


def _open_shards(kinesis, stream: str) -> list[dict]:
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return sorted(
        (s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )


def test_split_and_merge_of_the_trail_stream_while_records_flow_alerts_every_finding_once(stack: Live):
    """kinesis-mock reshards for real (moto cannot): the router daemon finishes each parent shard, then reads
    its children, and every finding is alerted exactly once."""
    kinesis, stream = stack.target.client("kinesis"), stack.outputs["TrailStreamName"]
    start = len(stack.alerts)
    groups = [f"sg-0rs{n:04d}" for n in range(60)]
    now = time.time()
    records = [open_sg(g, now + i * 0.05) for i, g in enumerate(groups)]

    def feed() -> None:
        for i in range(0, len(records), 4):
            stack.play(records[i : i + 4])
            time.sleep(0.3)

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(1.0)
    parent = _open_shards(kinesis, stream)[0]
    low, high = int(parent["HashKeyRange"]["StartingHashKey"]), int(parent["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2))
    _wait_active(kinesis, stream)
    time.sleep(1.5)
    first, second = _open_shards(kinesis, stream)[:2]
    kinesis.merge_shards(StreamName=stream, ShardToMerge=first["ShardId"], AdjacentShardToMerge=second["ShardId"])
    _wait_active(kinesis, stream)
    feeder.join()

    def complete() -> bool:
        seen = {r for a in stack.alerts[start:] if a.finding.rule_id == SG_OPEN for r in a.finding.resources}
        return all(any(g in r for r in seen) for g in groups)

    assert stack.wait_for(complete, 240), f"alerts so far: {len(stack.alerts) - start}\n{stack.logs()}"
    stack.wait_for(lambda: False, 8)
    ids = Counter(a.finding.id for a in stack.alerts[start:])
    assert [i for i, n in ids.items() if n > 1] == []
    closed = [
        s
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
        if "EndingSequenceNumber" in s["SequenceNumberRange"]
    ]
    assert len(closed) >= 3  # the split parent and the two merged: the reshard really happened
    assert all(stack.pipeline.alive().values())


test_sigkill_of_each_daemon_mid_stream_loses_nothing_and_alerts_once = (
    on_the_emulator.test_sigkill_of_each_daemon_mid_stream_loses_nothing_and_alerts_once
)
