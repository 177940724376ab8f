"""One SQS queue per destination, subscribed to the findings topic, with its dead-letter queue: what keeps a
destination's pending findings while it is down. Destination names live in the configuration, not in the
template, so the deliverer creates its queues at start-up (idempotent: CreateQueue and Subscribe return what
exists) and `trailwarden destinations redrive NAME` moves a dead-letter queue back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra import aws

VISIBILITY = 30  # seconds a received message stays hidden before another receive may take it
RETENTION = 14 * 24 * 3600  # the SQS maximum: a destination may be down for days without losing a finding


@dataclass(frozen=True)
class DestinationQueue:
    name: str
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


def queue_name(topic_arn: str, destination: str) -> str:
    """`<topic name>-to-<destination>` within SQS's 80 characters (the .fifo suffix dropped)."""
    topic = topic_arn.rsplit(":", 1)[-1].removesuffix(".fifo")[:30]
    return f"{topic}-to-{destination}"[:76]


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure(target: aws.Target, topic_arn: str, destination: str, max_receives: int = 10) -> DestinationQueue:
    """The destination's queue and dead-letter queue, the queue subscribed to the topic (raw delivery: the
    body is the finding JSON), SNS allowed to send to it."""
    sqs, sns = target.client("sqs"), target.client("sns")
    name = queue_name(topic_arn, destination)
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(RETENTION)})[
        "QueueUrl"
    ]
    dlq_arn = _arn(sqs, dlq_url)
    url = sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": str(VISIBILITY), "MessageRetentionPeriod": str(RETENTION)}
    )["QueueUrl"]
    arn = _arn(sqs, url)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "Policy": json.dumps(policy),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
        },
    )
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )
    return DestinationQueue(destination, url, arn, dlq_url, dlq_arn)


def depth(target: aws.Target, url: str) -> int:
    attrs = target.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))


def redrive(target: aws.Target, queue: DestinationQueue) -> int:
    """Move every message of the dead-letter queue back to the destination's queue; returns how many. Each is
    sent before it is deleted: a crash in between leaves a copy in both, and the deliverer's dedupe drops the
    second delivery."""
    sqs = target.client("sqs")
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return moved
        sent = sqs.send_message_batch(
            QueueUrl=queue.url, Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)]
        )
        if sent.get("Failed"):
            raise RuntimeError(
                f"redrive of {queue.name}: SQS refused {len(sent['Failed'])} message(s) "
                f"({sent['Failed'][0].get('Code')}); nothing was removed from the dead-letter queue"
            )
        sqs.delete_message_batch(
            QueueUrl=queue.dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        moved += len(messages)
