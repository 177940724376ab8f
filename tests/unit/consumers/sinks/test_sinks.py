"""Sinks against moto's in-process mock: batching, partial failures, retries, dedupe, the Publisher."""

from __future__ import annotations

import json
import random

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from consumers.sinks import (
    DedupeTable,
    FileSink,
    FirehoseSink,
    MemoryDedupe,
    Publisher,
    RetryPolicy,
    SinkUnavailable,
    SnsSink,
    retry,
)
from consumers.sinks.sns import attributes, subject
from pipeline.finding import Finding, finding_id

REGION = "us-east-1"


def make_finding(n: int = 0, **overrides) -> Finding:
    fields = dict(
        id=finding_id("rule-x", f"key-{n}", 0),
        rule_id="rule-x",
        title=f"Title {n}",
        severity="high",
        attack=("T1078",),
        account="123456789012",
        region=REGION,
        principal="arn:aws:iam::123456789012:user/a",
        source_ip="198.51.100.7",
        user_agent="aws-cli",
        resources=(f"i-{n:08x}",),
        event_ids=(f"ev-{n}",),
        event_time=1_700_000_000.0 + n,
        dedup_key=f"key-{n}",
        window=0,
        summary=f"summary {n}",
    )
    fields.update(overrides)
    return Finding(**fields)


def fast_policy(attempts: int = 5) -> RetryPolicy:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=attempts, base=0.01, cap=0.05, sleep=sleeps.append, rng=random.Random(7))
    policy.slept = sleeps  # type: ignore[attr-defined]
    return policy


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "TRAILWARDEN_TARGET", "LOCALSTACK_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def topic_with_queue():
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="findings")["TopicArn"]
    queue = sqs.create_queue(QueueName="findings")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return sns, sqs, topic, queue


def drain(sqs, queue) -> list[dict]:
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])


# --- retry -------------------------------------------------------------------------------------


def test_full_jitter_delays_are_bounded_and_vary():
    policy = RetryPolicy(attempts=10, base=0.1, cap=1.0, rng=random.Random(1))
    delays = list(policy.delays())
    assert len(delays) == 9
    assert all(0 <= d <= min(1.0, 0.1 * 2**n) for n, d in enumerate(delays))
    assert len(set(delays)) == len(delays)


def test_transient_errors_are_retried_then_succeed():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise client_error("ThrottlingException")
        return "ok"

    policy = fast_policy()
    assert retry.call(flaky, policy, "flaky") == "ok"
    assert len(calls) == 3 and len(policy.slept) == 2


def test_budget_spent_raises_sink_unavailable():
    policy = fast_policy(attempts=4)
    with pytest.raises(SinkUnavailable):
        retry.call(lambda: (_ for _ in ()).throw(client_error("InternalError", 500)), policy, "down")
    assert len(policy.slept) == 3


def test_permanent_error_is_not_retried():
    policy = fast_policy()
    with pytest.raises(SinkUnavailable):
        retry.call(lambda: (_ for _ in ()).throw(client_error("AccessDenied", 403)), policy, "denied")
    assert policy.slept == []


def test_connection_errors_and_5xx_are_transient():
    assert retry.is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert retry.is_transient(client_error("Whatever", 503))
    assert not retry.is_transient(client_error("ValidationException", 400))


# --- SNS ---------------------------------------------------------------------------------------


def test_sns_publishes_in_batches_of_ten_with_attributes(aws):
    sns, sqs, topic, queue = topic_with_queue()
    sink = SnsSink(sns, topic, fast_policy())
    findings = [make_finding(i) for i in range(23)]
    sink.deliver(findings)
    assert sink.calls == 3
    messages = drain(sqs, queue)
    assert sorted(json.loads(m["Message"])["id"] for m in messages) == sorted(f.id for f in findings)
    attrs = messages[0]["MessageAttributes"]
    assert attrs["severity"]["Value"] == "high"
    assert attrs["rule_id"]["Value"] == "rule-x"
    assert attrs["account"]["Value"] == "123456789012"
    assert all(m["Subject"].startswith("[high] Title ") for m in messages)


def test_subject_is_sanitized_and_bounded():
    evil = make_finding(title="Root login\r\nseverity: low\x00\x1b[31m " + "é" * 50 + "x" * 200)
    s = subject(evil)
    assert len(s) <= 100
    assert all(0x20 <= ord(c) <= 0x7E for c in s)
    assert s.startswith("[high] Root login severity: low")
    assert subject(make_finding(title="\n\t", severity="")) != ""


def test_attacker_text_cannot_forge_attributes():
    evil = make_finding(
        summary='", "severity": {"DataType": "String", "StringValue": "info"}',
        account="1234\nrule_id=other",
        rule_id="rule-x",
    )
    attrs = attributes(evil)
    assert set(attrs) == {"severity", "rule_id", "account", "status"}
    assert attrs["severity"]["StringValue"] == "high"
    assert attrs["rule_id"]["StringValue"] == "rule-x"
    assert "\n" not in attrs["account"]["StringValue"]
    assert attributes(make_finding(account=""))["account"]["StringValue"] == "unknown"


class FlakySns:
    """PublishBatch that fails the given entry ids once (server fault), then accepts everything."""

    def __init__(self, fail_ids: set[str]):
        self.fail_ids = set(fail_ids)
        self.requests: list[list[str]] = []

    def publish_batch(self, TopicArn, PublishBatchRequestEntries):
        ids = [e["Id"] for e in PublishBatchRequestEntries]
        self.requests.append(ids)
        failed = [i for i in ids if i in self.fail_ids]
        self.fail_ids -= set(failed)
        return {
            "Successful": [{"Id": i, "MessageId": "m"} for i in ids if i not in failed],
            "Failed": [{"Id": i, "Code": "InternalError", "SenderFault": False} for i in failed],
        }


def test_sns_resends_only_failed_entries():
    client = FlakySns({"f1", "f4"})
    sink = SnsSink(client, "arn:aws:sns:us-east-1:000000000000:t", fast_policy())
    sink.deliver([make_finding(i) for i in range(6)])
    assert client.requests == [["f0", "f1", "f2", "f3", "f4", "f5"], ["f1", "f4"]]


def test_sns_sender_fault_is_not_retried_and_raises():
    class Refusing(FlakySns):
        def publish_batch(self, TopicArn, PublishBatchRequestEntries):
            self.requests.append([e["Id"] for e in PublishBatchRequestEntries])
            return {
                "Successful": [],
                "Failed": [
                    {"Id": e["Id"], "Code": "InvalidParameter", "SenderFault": True} for e in PublishBatchRequestEntries
                ],
            }

    client = Refusing(set())
    with pytest.raises(SinkUnavailable):
        SnsSink(client, "arn:aws:sns:us-east-1:000000000000:t", fast_policy()).deliver([make_finding()])
    assert len(client.requests) == 1


def test_sns_fifo_topic_uses_finding_id_for_deduplication():
    seen = []

    class Capture:
        def publish_batch(self, TopicArn, PublishBatchRequestEntries):
            seen.extend(PublishBatchRequestEntries)
            return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries], "Failed": []}

    f = make_finding()
    SnsSink(Capture(), "arn:aws:sns:us-east-1:000000000000:t.fifo").deliver([f])
    assert seen[0]["MessageDeduplicationId"] == f.id and seen[0]["MessageGroupId"] == "rule-x"


# --- Firehose ----------------------------------------------------------------------------------


def firehose_to_bucket():
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="archive")
    firehose = boto3.client("firehose", region_name=REGION)
    firehose.create_delivery_stream(
        DeliveryStreamName="findings",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/fh",
            "BucketARN": "arn:aws:s3:::archive",
            "Prefix": "findings/",
        },
    )
    return s3, firehose


def bucket_lines(s3) -> list[bytes]:
    lines = []
    for obj in s3.list_objects_v2(Bucket="archive").get("Contents", []):
        body = s3.get_object(Bucket="archive", Key=obj["Key"])["Body"].read()
        assert body.endswith(b"\n")
        lines.extend(body.splitlines())
    return lines


def test_firehose_writes_one_finding_per_line_in_batches_of_500(aws):
    s3, firehose = firehose_to_bucket()
    sink = FirehoseSink(firehose, "findings", fast_policy())
    findings = [make_finding(i, summary=f"line\nbreak {i}") for i in range(1201)]
    sink.deliver(findings)
    assert sink.calls == 3
    lines = bucket_lines(s3)
    assert sorted(json.loads(x)["id"] for x in lines) == sorted(f.id for f in findings)


class FlakyFirehose:
    def __init__(self, fail_indexes: set[int]):
        self.fail_indexes = fail_indexes
        self.requests: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName, Records):
        data = [r["Data"] for r in Records]
        self.requests.append(data)
        failing = self.fail_indexes if len(self.requests) == 1 else set()
        return {
            "FailedPutCount": len(failing),
            "RequestResponses": [
                {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}
                if i in failing
                else {"RecordId": f"r{i}"}
                for i in range(len(data))
            ],
        }


def test_firehose_resends_exactly_the_failed_records():
    client = FlakyFirehose({0, 3, 7})
    findings = [make_finding(i) for i in range(10)]
    FirehoseSink(client, "findings", fast_policy()).deliver(findings)
    assert len(client.requests) == 2
    assert [json.loads(d)["id"] for d in client.requests[1]] == [findings[i].id for i in (0, 3, 7)]


def test_firehose_that_stays_down_raises():
    class Down:
        def put_record_batch(self, DeliveryStreamName, Records):
            raise client_error("ServiceUnavailableException", 503)

    with pytest.raises(SinkUnavailable):
        FirehoseSink(Down(), "findings", fast_policy(attempts=3)).deliver([make_finding()])


def test_oversized_finding_is_shrunk_not_dropped():
    big = make_finding(context={"blob": "x" * 2_000_000})
    client = FlakyFirehose(set())
    FirehoseSink(client, "findings", fast_policy()).deliver([big])
    data = client.requests[0][0]
    assert len(data) <= 1000 * 1024 and data.endswith(b"\n")
    assert json.loads(data)["id"] == big.id


# --- dedupe ------------------------------------------------------------------------------------


def dedupe_table() -> DedupeTable:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="dedupe",
        KeySchema=[{"AttributeName": "finding_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "finding_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DedupeTable(ddb, "dedupe", ttl_seconds=3600, policy=fast_policy(), clock=lambda: 1000.0)


def test_dedupe_marks_conditionally_with_ttl(aws):
    table = dedupe_table()
    ids = [f"id-{i}" for i in range(150)]
    assert table.seen(ids) == set()
    assert table.mark(ids[:120]) == 120
    assert table.mark(ids[100:130]) == 10  # the conditional put refuses the 20 already there
    assert table.seen(ids) == set(ids[:130])
    item = table.client.get_item(TableName="dedupe", Key={"finding_id": {"S": "id-3"}})["Item"]
    assert item["expires_at"]["N"] == "4600"


# --- Publisher ---------------------------------------------------------------------------------


class Recording:
    def __init__(self, name: str, fail_times: int = 0):
        self.name = name
        self.fail_times = fail_times
        self.delivered: list[str] = []

    def deliver(self, findings):
        if self.fail_times:
            self.fail_times -= 1
            raise SinkUnavailable(f"{self.name} down")
        self.delivered.extend(f.id for f in findings)


def test_publisher_alerts_once_across_batches_and_duplicates():
    sink, dedupe = Recording("a"), MemoryDedupe()
    publisher = Publisher([sink], dedupe)
    first = [make_finding(1), make_finding(2), make_finding(1)]
    assert [f.id for f in publisher.publish(first)] == [make_finding(1).id, make_finding(2).id]
    assert [f.id for f in publisher.publish([make_finding(2), make_finding(3)])] == [make_finding(3).id]
    assert sink.delivered == [make_finding(i).id for i in (1, 2, 3)]
    assert publisher.stats.suppressed == 2 and publisher.stats.published == 3


def test_publisher_failure_marks_nothing_and_retry_skips_acknowledged_sinks():
    sns, firehose, dedupe = Recording("sns"), Recording("firehose", fail_times=1), MemoryDedupe()
    publisher = Publisher([sns, firehose], dedupe)
    batch = [make_finding(1), make_finding(2)]
    with pytest.raises(SinkUnavailable):
        publisher.publish(batch)
    assert dedupe.seen(f.id for f in batch) == set()
    assert firehose.delivered == []
    publisher.publish(batch)
    assert sns.delivered == [f.id for f in batch]  # not alerted twice by the retry
    assert firehose.delivered == [f.id for f in batch]
    assert dedupe.seen(f.id for f in batch) == {f.id for f in batch}


def test_publisher_with_real_table_and_topic(aws):
    sns, sqs, topic, queue = topic_with_queue()
    publisher = Publisher([SnsSink(sns, topic, fast_policy())], dedupe_table())
    publisher.publish([make_finding(i) for i in range(5)])
    # a new process (fresh Publisher) replaying the same input alerts nothing again
    again = Publisher([SnsSink(sns, topic, fast_policy())], DedupeTable(publisher.dedupe.client, "dedupe"))
    assert again.publish([make_finding(i) for i in range(5)]) == []
    assert len(drain(sqs, queue)) == 5


def test_file_sink_appends_json_lines(tmp_path):
    path = tmp_path / "out" / "findings.jsonl"
    sink = FileSink(path)
    sink.deliver([make_finding(1)])
    sink.deliver([make_finding(2, summary="multi\nline")])
    lines = path.read_bytes().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [make_finding(1).id, make_finding(2).id]


# --- keyed facts to Kinesis, dead letters to S3 -----------------------------------------------


class FlakyKinesis:
    def __init__(self, fail_indexes: set[int]):
        self.fail_indexes = fail_indexes
        self.requests: list[list[dict]] = []

    def put_records(self, StreamName, Records):
        self.requests.append(Records)
        failing = self.fail_indexes if len(self.requests) == 1 else set()
        return {
            "FailedRecordCount": len(failing),
            "Records": [
                {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
                if i in failing
                else {"SequenceNumber": str(i), "ShardId": "shardId-000000000000"}
                for i in range(len(Records))
            ],
        }


def test_kinesis_writer_batches_within_limits_and_resends_only_failed():
    from consumers.sinks.kinesis import KinesisWriter

    client = FlakyKinesis({1, 499})
    records = [(f"key-{i}", b"x" * 100) for i in range(1100)]
    KinesisWriter(client, "keyed", fast_policy()).put(records)
    sizes = [len(r) for r in client.requests]
    assert sizes == [500, 2, 500, 100]  # the first batch's two failures resent alone, in between
    assert [r["PartitionKey"] for r in client.requests[1]] == ["key-1", "key-499"]
    big = [(f"k{i}", b"y" * 600_000) for i in range(20)]  # 12 MB: the 5 MiB limit splits it
    client2 = FlakyKinesis(set())
    KinesisWriter(client2, "keyed", fast_policy()).put(big)
    assert all(sum(len(r["Data"]) + len(r["PartitionKey"]) for r in req) <= 5 * 1024 * 1024 for req in client2.requests)
    assert sum(len(req) for req in client2.requests) == 20


def test_kinesis_writer_puts_facts_by_entity_key(aws):
    from consumers.sinks.kinesis import KinesisWriter
    from pipeline.stateful.facts import Fact

    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName="keyed", ShardCount=1)
    facts = [Fact("rule", f"111122223333:us-east-1:i-{n}", f"ev-{n}", 1.0 + n, "start") for n in range(30)]
    KinesisWriter(kinesis, "keyed", fast_policy()).put_facts(facts)
    shard = kinesis.list_shards(StreamName="keyed")["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName="keyed", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    got = kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"]
    assert [r["PartitionKey"] for r in got] == [f.key for f in facts]
    assert [Fact.from_bytes(r["Data"]) for r in got] == facts


def test_dead_letters_go_to_s3_with_reason_and_origin(aws):
    from consumers.sinks.deadletter import S3DeadLetters
    from pipeline.decode import decode

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="state")
    letters = [x for x in decode(b"\x00\x01 not json", "trail/shardId-000000000000/42")]
    assert letters and not hasattr(letters[0], "name")
    S3DeadLetters(s3, "state", "trailwarden-router").deliver(letters, "shardId-000000000000/42")
    body = s3.get_object(Bucket="state", Key="dead-letters/trailwarden-router/shardId-000000000000/42.jsonl")
    doc = json.loads(body["Body"].read().splitlines()[0])
    assert doc["origin"] == "trail/shardId-000000000000/42" and doc["reason"]


def test_unencodable_or_huge_findings_still_give_valid_json_lines():
    from consumers.sinks.base import encode, line

    past_9999 = make_finding(event_time=1e15, window=10**15)
    doc = json.loads(line(past_9999))
    assert doc["id"] == past_9999.id and doc["event_time"] == doc["window_start"] == "9999-12-31T23:59:59Z"
    everywhere = "é\x1b" * 200_000
    huge = make_finding(
        account=everywhere,
        region=everywhere,
        dedup_key=everywhere,
        source_ip=everywhere,
        context={everywhere: [everywhere]},
    )
    for limit in (256 * 1024, 4096):
        data = encode(huge, limit)
        assert len(data) <= limit and json.loads(data)["id"] == huge.id
