"""The data paths of the provisioned stack, through the real server.

CloudWatch Logs -> subscription filter -> trail stream; SNS -> SQS with a filter policy on severity;
Firehose -> S3 as newline-delimited findings.
"""

from __future__ import annotations

import gzip
import time
from typing import Any

import orjson
import pytest

from infra import aws, provision
from infra import outputs as stack_outputs
from infra.trail_player import Player
from pipeline.decode import DeadLetter, decode
from pipeline.event import Event
from pipeline.finding import SEVERITIES, Finding, finding_id
from tests.support.corpus import STRATUS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(module_target: aws.Target) -> tuple[aws.Target, dict[str, str]]:
    """The template's resources, provisioned once for this module on a freshly reset emulator."""
    return module_target, provision.provision(module_target)


def _stream_records(target: aws.Target, stream: str) -> list[dict[str, Any]]:
    kinesis = target.client("kinesis")
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend(response["Records"])
            if not response["Records"] or response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return records


def _finding(i: int, severity: str) -> Finding:
    return Finding(
        id=finding_id("test-rule", f"key-{i}", 0),
        rule_id="test-rule",
        title=f"finding {i}",
        severity=severity,
        attack=("T1078",),
        account="111122223333",
        region="eu-west-1",
        principal="arn:aws:iam::111122223333:user/x",
        source_ip="203.0.113.9",
        user_agent="ua",
        resources=(f"r-{i}",),
        event_ids=(f"e-{i}",),
        event_time=1_722_918_600.0,
        dedup_key=f"key-{i}",
        window=0,
        summary="line one\nline two \u2028 end",
    )


def test_log_events_reach_the_trail_stream_as_gzip_subscription_records(
    stack: tuple[aws.Target, dict[str, str]],
) -> None:
    from pipeline.scenario import build

    target, outputs = stack
    sent = build(events=400, seed=3, attacks=["root-usage", "console-brute-force"]).events
    stats = Player(target.client("logs"), outputs["TrailLogGroupName"]).play(sent)
    assert stats.events == len(sent)

    records = _stream_records(target, outputs["TrailStreamName"])
    assert len(records) == stats.calls  # one subscription record per PutLogEvents call
    received: list[Event] = []
    for record in records:
        data = record["Data"]
        assert data[:2] == b"\x1f\x8b"
        envelope = orjson.loads(gzip.decompress(data))
        assert envelope["messageType"] == "DATA_MESSAGE"
        assert envelope["logGroup"] == outputs["TrailLogGroupName"]
        assert "_CloudTrail_" in envelope["logStream"]
        assert envelope["subscriptionFilters"] == [f"{stack_outputs.STACK_NAME}-trail"]
        for item in decode(data, f"kinesis:{record['SequenceNumber']}"):
            assert not isinstance(item, DeadLetter), item
            received.append(item)
    assert sorted((e.raw for e in received), key=lambda r: r["eventID"]) == sorted(sent, key=lambda r: r["eventID"])
    # Within each log stream, the events arrived in event-time order.
    by_stream: dict[str, list[str]] = {}
    for record in sorted(records, key=lambda r: r["ApproximateArrivalTimestamp"]):
        envelope = orjson.loads(gzip.decompress(record["Data"]))
        by_stream.setdefault(envelope["logStream"], []).extend(
            orjson.loads(e["message"])["eventTime"] for e in envelope["logEvents"]
        )
    assert all(times == sorted(times) for times in by_stream.values())


def test_findings_topic_reaches_a_queue_filtered_on_severity(stack: tuple[aws.Target, dict[str, str]]) -> None:
    target, outputs = stack
    sqs, sns = target.client("sqs"), target.client("sns")
    queue_url = sqs.create_queue(QueueName="high-findings")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=outputs["FindingsTopicArn"],
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={
            "FilterPolicy": orjson.dumps({"severity": ["high", "critical"]}).decode(),
            "RawMessageDelivery": "true",
        },
    )
    findings = [_finding(i, SEVERITIES[i % len(SEVERITIES)]) for i in range(10)]
    response = sns.publish_batch(
        TopicArn=outputs["FindingsTopicArn"],
        PublishBatchRequestEntries=[
            {
                "Id": f.id,
                "Subject": f.title[:100],
                "Message": f.to_json().decode(),
                "MessageAttributes": {
                    "severity": {"DataType": "String", "StringValue": f.severity},
                    "rule_id": {"DataType": "String", "StringValue": f.rule_id},
                    "account": {"DataType": "String", "StringValue": f.account},
                },
            }
            for f in findings
        ],
    )
    assert len(response["Successful"]) == len(findings) and not response.get("Failed")

    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        if not messages and got:
            break
        got.extend(orjson.loads(m["Body"]) for m in messages)
    expected = {f.id for f in findings if f.severity in ("high", "critical")}
    assert expected and {g["id"] for g in got} == expected
    assert all(Finding.from_dict(g).to_dict()["severity"] in ("high", "critical") for g in got)


def test_firehose_writes_newline_delimited_findings_to_the_bucket(stack: tuple[aws.Target, dict[str, str]]) -> None:
    target, outputs = stack
    findings = [_finding(i, "medium") for i in range(25)]
    response = target.client("firehose").put_record_batch(
        DeliveryStreamName=outputs["FindingsDeliveryStreamName"],
        Records=[{"Data": f.to_json() + b"\n"} for f in findings],  # the producer writes the newline
    )
    assert response["FailedPutCount"] == 0

    s3 = target.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=outputs["FindingsBucketName"]).get("Contents", [])]
    assert keys and all(k.startswith("findings/") for k in keys)
    lines: list[bytes] = []
    for key in keys:
        body = s3.get_object(Bucket=outputs["FindingsBucketName"], Key=key)["Body"].read()
        if body[:2] == b"\x1f\x8b":  # AWS compresses (GZIP in the template); moto stores the bytes as sent
            body = gzip.decompress(body)
        assert body.endswith(b"\n")
        lines.extend(body.splitlines())
    assert [Finding.from_dict(orjson.loads(line)).to_dict() for line in lines] == [
        Finding.from_dict(f.to_dict()).to_dict() for f in findings
    ]


def test_simulate_command_plays_files_and_prints_the_scenario_expectations(
    stack: tuple[aws.Target, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from pipeline.commands import simulate
    from pipeline.sources import Reader, resolve

    target, outputs = stack
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers())
    logs = target.client("logs")
    group = outputs["TrailLogGroupName"]

    def delivered() -> int:
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        return sum(
            len(logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"])["events"]) for s in streams
        )

    before = delivered()
    args = parser.parse_args(["simulate", str(STRATUS), "--endpoint-url", target.endpoint_url or "", "-q"])
    assert args.func(args) == 0
    in_files = sum(1 for item in Reader(resolve([str(STRATUS)])).items() if not isinstance(item, DeadLetter))
    assert in_files > 0 and delivered() - before == in_files
    assert capsys.readouterr().out == ""  # files carry no expectations

    args = parser.parse_args(
        [
            "simulate",
            "--scenario",
            "root-usage",
            "--events",
            "50",
            "--json",
            "--endpoint-url",
            target.endpoint_url or "",
            "-q",
        ]
    )
    assert args.func(args) == 0
    printed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    from pipeline.scenario import build

    expected = build(50, 1, ["root-usage"]).expected  # root usage is medium: the default policy alerts it
    assert printed and printed == [{**e.to_dict(), "delivery": "alerted"} for e in expected]
