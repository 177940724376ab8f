"""Both KCL applications of the live pipeline, started and stopped together, and the findings queue.

    pipeline = LivePipeline.start(target, outputs, directory, env={...})
    pipeline.router.pid, pipeline.stateful.pid
    pipeline.supervisor.restarts     # daemons that exited and were restarted (consumers/supervisor.py)
    pipeline.stop()

    daemon = launch(spec, target, directory, foreground=True)   # one stage: `trailwarden consume`

Locally (emulator or LocalStack) the leases are seeded for fixed worker ids first, so the first
finding shows seconds after start-up rather than a minute.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers import launcher
from consumers.supervisor import RestartPolicy, Supervisor
from infra import aws
from infra.resources import Resources
from pipeline.finding import Finding
from pipeline.settings import environment
from pipeline.stages import Stage

log = logging.getLogger(__name__)


def stage_spec(
    stage: Stage,
    outputs: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    worker_suffix: str = "local",
    settings: Mapping[str, str] | None = None,
    initial_position: str = "TRIM_HORIZON",
) -> launcher.AppSpec:
    """One stage's KCL application: the router over the trail stream, the stateful stage over the keyed stream
    (empty batches on: routers tell their progress when idle, stage 2 fires its wall-clock timers). An empty
    `worker_suffix` leaves the worker id to the KCL (a random one: on AWS, where several tasks run one
    application)."""
    resources = Resources(outputs)
    app = resources.app(stage)
    return launcher.AppSpec(
        app,
        resources.stream(stage),
        launcher.PROCESSORS[stage],
        initial_position,
        worker_id=f"{app}-{worker_suffix}" if worker_suffix else "",
        empty_batches=True,  # routers tell progress on idle, stage 2 fires timers
        env={**environment(resources=resources), **(env or {})},
        settings=dict(settings or {}),
    )


def specs(
    outputs: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    worker_suffix: str = "local",
    settings: Mapping[str, str] | None = None,
) -> tuple[launcher.AppSpec, launcher.AppSpec]:
    """The router and the stateful stage."""
    return (
        stage_spec(Stage.ROUTER, outputs, env, worker_suffix, settings),
        stage_spec(Stage.STATEFUL, outputs, env, worker_suffix, settings),
    )


def launch(
    spec: launcher.AppSpec, target: aws.Target, directory: Path | None = None, foreground: bool = False
) -> launcher.Daemon:
    """Start one stage's daemon, as `trailwarden run` does for each and `trailwarden consume` for one: locally
    its leases seeded for its worker id first (`launcher.prepare_local`)."""
    launcher.prepare_local(spec, target)
    return launcher.start(spec, target, directory=directory, foreground=foreground)


@dataclass
class LivePipeline:
    """Both stages' daemons, restarted by a `Supervisor` when one exits (unless started with `supervise=False`)."""

    target: aws.Target
    router_spec: launcher.AppSpec
    stateful_spec: launcher.AppSpec
    directory: Path
    daemons: dict[Stage, launcher.Daemon] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def start(
        cls,
        target: aws.Target,
        outputs: Mapping[str, str],
        directory: Path,
        env: Mapping[str, str] | None = None,
        worker_suffix: str = "local",
        settings: Mapping[str, str] | None = None,
        supervise: bool = True,
        restarts: RestartPolicy | None = None,
        say: Callable[[str], None] | None = None,
    ) -> LivePipeline:
        router, stateful = specs(outputs, env, worker_suffix, settings)
        pipeline = cls(target, router, stateful, directory)
        try:
            pipeline.start_stage(Stage.ROUTER)
            pipeline.start_stage(Stage.STATEFUL)
        except BaseException:
            pipeline.stop()
            raise
        if supervise:
            pipeline.supervisor = Supervisor(
                pipeline.daemons, pipeline.start_stage, pipeline.lock, restarts, say=say
            ).start()
        return pipeline

    @property
    def router(self) -> launcher.Daemon:
        return self.daemons[Stage.ROUTER]

    @property
    def stateful(self) -> launcher.Daemon:
        return self.daemons[Stage.STATEFUL]

    def spec(self, stage: Stage | str) -> launcher.AppSpec:
        return self.router_spec if Stage(stage) is Stage.ROUTER else self.stateful_spec

    def start_stage(self, stage: Stage | str) -> launcher.Daemon:
        """(Re)start one stage (what the supervisor calls)."""
        with self.lock:
            daemon = launch(self.spec(stage), self.target, self.directory)
            self.daemons[Stage(stage)] = daemon
            return daemon

    def replace_worker(self, stage: Stage | str, worker_id: str) -> None:
        """The stage's next start (a restart after it exits) is a new worker, `worker_id`: a replacement worker,
        whose leases move from the old one."""
        with self.lock:
            spec = dataclasses.replace(self.spec(stage), worker_id=worker_id)
            if Stage(stage) is Stage.ROUTER:
                self.router_spec = spec
            else:
                self.stateful_spec = spec

    def alive(self) -> dict[str, bool]:
        return {stage: d.alive() for stage, d in self.daemons.items()}

    def stop(self) -> None:
        """Stop the supervisor, then both daemons at once, gracefully (processors checkpoint)."""
        if self.supervisor is not None:
            self.supervisor.stop()
        launcher.stop_all(self.daemons.values())


# --- the findings queue (SQS subscribed to the topic), how `run` and the tests watch alerts -------------


def findings_queue(target: aws.Target, topic_arn: str, name: str = "trailwarden-findings-watch") -> tuple[str, str]:
    """A queue subscribed to the findings topic (raw delivery off: the SNS envelope keeps the attributes).
    Returns (queue url, subscription arn). Subscriptions left by deleted queues are removed first: the
    emulator fails a whole PublishBatch when one of the topic's SQS endpoints is gone."""
    sqs, sns = target.client("sqs"), target.client("sns")
    prune_dead_subscriptions(target, topic_arn)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)
    return url, subscription["SubscriptionArn"]


def remove_findings_queue(target: aws.Target, queue_url: str, subscription_arn: str) -> None:
    target.client("sns").unsubscribe(SubscriptionArn=subscription_arn)
    target.client("sqs").delete_queue(QueueUrl=queue_url)


def prune_dead_subscriptions(target: aws.Target, topic_arn: str) -> int:
    """Unsubscribe SQS endpoints of the topic whose queue no longer exists; returns how many."""
    sqs, sns = target.client("sqs"), target.client("sns")
    removed = 0
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") != "sqs" or not sub.get("SubscriptionArn", "").startswith("arn:"):
                continue
            parts = sub.get("Endpoint", "").split(":")
            try:
                sqs.get_queue_url(QueueName=parts[-1], QueueOwnerAWSAccountId=parts[-2])
            except sqs.exceptions.QueueDoesNotExist:
                sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                removed += 1
    return removed


@dataclass
class Alert:
    finding: Finding
    attributes: dict[str, str]
    subject: str
    received: float  # when this process read it
    enqueued: float  # when SNS delivered it to the queue (SQS SentTimestamp)


def receive(sqs: Any, queue_url: str, wait: float = 1.0) -> Iterator[Alert]:
    """Alerts now in the queue (deleted once read): one long poll of `wait` seconds, then drained."""
    wait_seconds = int(wait)
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
            AttributeNames=["SentTimestamp"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return
        wait_seconds = 0
        now = time.time()
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        for message in messages:
            try:
                envelope = json.loads(message["Body"])
                finding = Finding.from_dict(json.loads(envelope["Message"]))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable message in the findings queue: %s", exc)
                continue
            attrs = {k: v.get("Value", "") for k, v in (envelope.get("MessageAttributes") or {}).items()}
            sent = message.get("Attributes", {}).get("SentTimestamp", "")
            enqueued = int(sent) / 1000 if sent.isdigit() else now
            yield Alert(finding, attrs, envelope.get("Subject", ""), now, enqueued)


# --- the findings archive (Firehose -> S3), how `run` and the tests see what was archived ---------------


def archived(target: aws.Target, bucket: str, read: set[str] | None = None) -> list[dict[str, Any]]:
    """The findings in the archive bucket (one JSON finding per line, gzip or not). Objects whose keys are
    in `read` are skipped and the keys read now are added to it, so a caller can poll for new ones."""
    s3 = target.client("s3")
    out: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if read is not None and obj["Key"] in read:
                continue
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            body = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
            for line in body.splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    log.warning("unreadable line in s3://%s/%s", bucket, obj["Key"])
                    continue
                if isinstance(doc, dict):
                    out.append(doc)
            if read is not None:
                read.add(obj["Key"])
    return out
