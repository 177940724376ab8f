"""What the live end-to-end tests share: CloudTrail records that raise known findings, and a running stack
(emulator, provisioned resources, both KCL daemons, the findings queue) with ways to watch it.

    with live_stack(directory, config_text) as stack:   # or stack_on(target, ...) on an emulator you own
        stack.play([open_sg("sg-1", time.time())])
        stack.wait_for(lambda: stack.about("sg-1"), 60)

By default a stack starts its own emulator on a free port; TRAILWARDEN_TEST_ENDPOINT=http://host:port runs
it against that endpoint instead (e.g. LocalStack).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from consumers import live
from infra import aws
from infra.trail_player import Player
from pipeline.finding import iso_time
from pipeline.ruletest import complete_record

EC2 = "ec2.amazonaws.com"
MISSING_TAGS = "ec2-instance-missing-required-tags"
SG_OPEN = "ec2-security-group-open-to-internet"
REQUIRED = ("Owner", "CostCenter", "Environment")


def run_instances(iid: str, t: float, **fields: Any) -> dict:
    return complete_record(
        {
            "eventSource": EC2,
            "eventName": "RunInstances",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-1", "minCount": 1, "maxCount": 1}]}},
            "responseElements": {"instancesSet": {"items": [{"instanceId": iid}]}},
            **fields,
        }
    )


def create_tags(iid: str, t: float, value: str = "x", **fields: Any) -> dict:
    return complete_record(
        {
            "eventSource": EC2,
            "eventName": "CreateTags",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {
                "resourcesSet": {"items": [{"resourceId": iid}]},
                "tagSet": {"items": [{"key": k, "value": value} for k in REQUIRED]},
            },
            "responseElements": {"_return": True},
            **fields,
        }
    )


def open_sg(group: str, t: float, **fields: Any) -> dict:
    return complete_record(
        {
            "eventSource": EC2,
            "eventName": "AuthorizeSecurityGroupIngress",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {
                "groupId": group,
                "ipPermissions": {
                    "items": [
                        {
                            "ipProtocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                        }
                    ]
                },
            },
            "responseElements": {"_return": True},
            **fields,
        }
    )


def instance_id() -> str:
    return "i-" + uuid.uuid4().hex[:17]


def subscription_record(
    records: list[dict],
    log_group: str = "/trailwarden/cloudtrail",
    log_stream: str = "000000000000_CloudTrail_us-east-1",
) -> bytes:
    """CloudTrail records as one CloudWatch Logs subscription record (gzip DATA_MESSAGE), as Kinesis gets it."""
    now = int(time.time() * 1000)
    doc = {
        "messageType": "DATA_MESSAGE",
        "owner": "000000000000",
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["trailwarden"],
        "logEvents": [{"id": str(i), "timestamp": now, "message": json.dumps(r)} for i, r in enumerate(records)],
    }
    return gzip.compress(json.dumps(doc).encode())


def rss_kb(pid: int) -> int:
    """Resident memory of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Live:
    """The running stack: play records, watch the findings queue, read the Firehose bucket and the leases."""

    def __init__(self, target: aws.Target, outputs: dict, pipeline: live.LivePipeline, queue: str) -> None:
        self.target, self.outputs, self.pipeline, self.queue = target, outputs, pipeline, queue
        self.sqs = target.client("sqs")
        self.alerts: list[live.Alert] = []
        self.player = Player(target.client("logs"), outputs["TrailLogGroupName"])

    def play(self, records: list[dict]) -> None:
        self.player.play(records)

    def poll(self) -> None:
        self.alerts.extend(live.receive(self.sqs, self.queue, wait=1))

    def wait_for(self, predicate: Callable[[], Any], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate():
                return True
        return False

    def about(self, resource_part: str) -> list[live.Alert]:
        return [a for a in self.alerts if any(resource_part in r for r in a.finding.resources)]

    def archived(self) -> list[dict]:
        s3, bucket = self.target.client("s3"), self.outputs["FindingsBucketName"]
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                if body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                assert body.endswith(b"\n"), obj["Key"]
                out += [json.loads(line) for line in body.splitlines()]
        return out

    def checkpoints(self, stage: str = "router") -> dict[str, str]:
        """The checkpoint of each shard in the lease table of `stage` (router or stateful)."""
        app = self.outputs["RouterAppName" if stage == "router" else "StatefulAppName"]
        ddb = self.target.client("dynamodb")
        items = ddb.scan(TableName=app, ConsistentRead=True).get("Items", [])
        return {i["leaseKey"]["S"]: i.get("checkpoint", {}).get("S", "") for i in items}

    def restarts(self, stage: str | None = None) -> int:
        """Daemons (of `stage`, or of both) that exited and the pipeline's supervisor restarted so far. The
        MultiLangDaemon exits when one of its record processors dies."""
        supervisor = self.pipeline.supervisor
        assert supervisor is not None, "the live pipeline runs under its supervisor"
        return supervisor.restarts[stage] if stage else sum(supervisor.restarts.values())

    def logs(self) -> str:
        return "\n".join(d.log_file.read_text(errors="replace")[-3000:] for d in self.pipeline.daemons.values())

    def wait_for_processors(self, timeout: float = 300) -> None:
        """Until each daemon runs a record processor per shard of its stream. Tests whose deadlines count from
        the first record played wait for this where the daemons share the cores with a heavier emulator
        (LocalStack and kinesis-mock: on a loaded 2-core machine the JVMs took 90 s to their first processor)."""
        kinesis = self.target.client("kinesis")
        wanted = {
            stage: len(kinesis.list_shards(StreamName=spec.stream)["Shards"])
            for stage, spec in (("router", self.pipeline.router_spec), ("stateful", self.pipeline.stateful_spec))
        }
        deadline = time.monotonic() + timeout
        while any(len(self.pipeline.daemons[stage].processors()) < n for stage, n in wanted.items()):
            assert time.monotonic() < deadline, f"record processors not started after {timeout:.0f} s\n{self.logs()}"
            assert all(self.pipeline.alive().values()), f"a daemon exited\n{self.logs()}"
            time.sleep(1)


def config_file(directory: Path, grace: float, extra: str = "", alerts: str = "") -> Path:
    """A configuration with short lateness and idle time and the missing-tags grace of `grace` seconds;
    missing-tags findings (low) are alerted, as [alerts] rules, since the tests watch the topic for them
    (`alerts`: more [alerts] lines)."""
    config = directory / "trailwarden.toml"
    config.write_text(
        f'[engine]\nallowed_lateness = "2s"\nidle_after = "2s"\n[alerts]\nrules = ["{MISSING_TAGS}"]\n{alerts}'
        f'[rules.{MISSING_TAGS}]\ngrace = "{grace:g}s"\n{extra}'
    )
    return config


@contextlib.contextmanager
def stack_on(
    target: aws.Target,
    directory: Path,
    config: Path,
    env: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    queue_name: str = "trailwarden-findings-watch",
    settings: Mapping[str, str] | None = None,
) -> Iterator[Live]:
    """Provision `target`, subscribe a findings queue and start both daemons (`settings`: more KCL
    properties); stopped on exit."""
    from infra import provision

    resolved = dict(outputs or provision.provision(target))
    queue, _ = live.findings_queue(target, resolved["FindingsTopicArn"], name=queue_name)
    pipeline = live.LivePipeline.start(
        target,
        resolved,
        directory / "kcl",
        env={"TRAILWARDEN_CONFIG": str(config), "TRAILWARDEN_LOG_LEVEL": "INFO", **(env or {})},
        settings=settings,
    )
    try:
        yield Live(target, resolved, pipeline, queue)
    finally:
        pipeline.stop()


@contextlib.contextmanager
def emulator_target(directory: Path) -> Iterator[aws.Target]:
    """An emulator of its own on a free port (or TRAILWARDEN_TEST_ENDPOINT, left running), stopped on exit."""
    from infra import emulator

    given = os.environ.get("TRAILWARDEN_TEST_ENDPOINT")
    handle = None if given else emulator.start(emulator.free_port(), log_file=directory / "emulator.log")
    try:
        yield aws.endpoint(given) if given else aws.emulator(handle.endpoint)
    finally:
        if handle is not None:
            handle.stop()


@contextlib.contextmanager
def live_stack(directory: Path, config: Path, env: Mapping[str, str] | None = None) -> Iterator[Live]:
    """`stack_on` an emulator of its own (or TRAILWARDEN_TEST_ENDPOINT), stopped on exit."""
    with emulator_target(directory) as target, stack_on(target, directory, config, env) as stack:
        yield stack
