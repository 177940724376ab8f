"""Both KCL applications of the live pipeline, started and stopped together, and the findings queue.

    pipeline = LivePipeline.start(target, outputs, directory, env={...})
    pipeline.router.pid, pipeline.stateful.pid
    pipeline.stop()

Locally (emulator or LocalStack) the leases are seeded for fixed worker ids first, so the first
finding shows seconds after start-up rather than a minute.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers import launcher
from infra import aws
from pipeline.finding import Finding
from pipeline.settings import environment

log = logging.getLogger(__name__)


def specs(outputs: Mapping[str, str], env: Mapping[str, str] | None = None, worker_suffix: str = "local",
          settings: Mapping[str, str] | None = None) -> tuple[launcher.AppSpec, launcher.AppSpec]:
    """The router (over the trail stream) and the stateful stage (over the keyed stream)."""
    child_env = {**environment(resources=outputs), **(env or {})}
    router_app = outputs.get("RouterAppName", "trailwarden-router")
    stateful_app = outputs.get("StatefulAppName", "trailwarden-stateful")
    router = launcher.AppSpec(router_app, outputs["TrailStreamName"], "consumers.router",
                              worker_id=f"{router_app}-{worker_suffix}", env=child_env, settings=dict(settings or {}))
    stateful = launcher.AppSpec(stateful_app, outputs["KeyedStreamName"], "consumers.stateful",
                                worker_id=f"{stateful_app}-{worker_suffix}", empty_batches=True, env=child_env,
                                settings=dict(settings or {}))
    return router, stateful


@dataclass
class LivePipeline:
    target: aws.Target
    router_spec: launcher.AppSpec
    stateful_spec: launcher.AppSpec
    directory: Path
    daemons: dict[str, launcher.Daemon] = field(default_factory=dict)

    @classmethod
    def start(cls, target: aws.Target, outputs: Mapping[str, str], directory: Path,
              env: Mapping[str, str] | None = None, worker_suffix: str = "local",
              settings: Mapping[str, str] | None = None) -> LivePipeline:
        router, stateful = specs(outputs, env, worker_suffix, settings)
        pipeline = cls(target, router, stateful, directory)
        try:
            pipeline.start_stage("router")
            pipeline.start_stage("stateful")
        except BaseException:
            pipeline.stop()
            raise
        return pipeline

    @property
    def router(self) -> launcher.Daemon:
        return self.daemons["router"]

    @property
    def stateful(self) -> launcher.Daemon:
        return self.daemons["stateful"]

    def spec(self, stage: str) -> launcher.AppSpec:
        return self.router_spec if stage == "router" else self.stateful_spec

    def start_stage(self, stage: str, worker_id: str | None = None) -> launcher.Daemon:
        """(Re)start one stage; a new `worker_id` plays a replacement worker after a crash."""
        spec = self.spec(stage)
        if worker_id:
            spec = launcher.AppSpec(spec.application, spec.stream, spec.processor, spec.initial_position, worker_id,
                                    spec.empty_batches, spec.settings, spec.env)
        launcher.prepare_local(spec, self.target)
        daemon = launcher.start(spec, self.target, directory=self.directory)
        self.daemons[stage] = daemon
        return daemon

    def alive(self) -> dict[str, bool]:
        return {stage: d.alive() for stage, d in self.daemons.items()}

    def stop(self) -> None:
        """Stop both daemons at once (each takes about the failover time to shut down cleanly)."""
        threads = [threading.Thread(target=_stop, args=(d,)) for d in self.daemons.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _stop(daemon: launcher.Daemon) -> None:
    try:
        daemon.stop()
    except Exception as exc:  # the other one is stopped anyway
        log.error("stopping %s (pid %d): %s", daemon.application, daemon.pid, exc)


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
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds,
                                       MessageAttributeNames=["All"], AttributeNames=["SentTimestamp"])
        messages = response.get("Messages", [])
        if not messages:
            return
        wait_seconds = 0
        now = time.time()
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
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
