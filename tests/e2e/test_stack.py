"""`trailwarden stack up|down|status` through the real server, on a free port and a private state directory."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from infra import aws, provision
from infra import emulator as emu
from infra import outputs as stack_outputs
from pipeline.commands import stack

pytestmark = pytest.mark.slow


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    stack.register(parser.add_subparsers())
    args = parser.parse_args(["stack", *argv])
    return args.func(args)


def _listed(target: aws.Target) -> dict[str, set[str]]:
    """What exists on the endpoint, per resource type, read with list calls (independent of provision's checks)."""
    c = target.client
    groups = [g["logGroupName"] for g in c("logs").describe_log_groups()["logGroups"]]
    return {
        "AWS::S3::Bucket": {b["Name"] for b in c("s3").list_buckets()["Buckets"]},
        "AWS::S3::BucketPolicy": {
            f"{stack_outputs.STACK_NAME}-TrailBucketPolicy"
            for b in c("s3").list_buckets()["Buckets"]
            if _has_policy(target, b["Name"])
        },
        "AWS::Logs::LogGroup": set(groups),
        "AWS::Logs::LogStream": {
            s["logStreamName"] for g in groups for s in c("logs").describe_log_streams(logGroupName=g)["logStreams"]
        },
        "AWS::Logs::SubscriptionFilter": {
            f["filterName"]
            for g in groups
            for f in c("logs").describe_subscription_filters(logGroupName=g)["subscriptionFilters"]
        },
        "AWS::IAM::Role": {r["RoleName"] for r in c("iam").list_roles()["Roles"]},
        "AWS::Kinesis::Stream": set(c("kinesis").list_streams()["StreamNames"]),
        "AWS::SNS::Topic": {t["TopicArn"].rsplit(":", 1)[1] for t in c("sns").list_topics()["Topics"]},
        "AWS::KinesisFirehose::DeliveryStream": set(c("firehose").list_delivery_streams()["DeliveryStreamNames"]),
        "AWS::Glue::Database": {d["Name"] for d in c("glue").get_databases()["DatabaseList"]},
        "AWS::Glue::Table": {
            t["Name"]
            for d in c("glue").get_databases()["DatabaseList"]
            for t in c("glue").get_tables(DatabaseName=d["Name"])["TableList"]
        },
        "AWS::DynamoDB::Table": set(c("dynamodb").list_tables()["TableNames"]),
        "AWS::ECS::Cluster": {a.rsplit("/", 1)[1] for a in c("ecs").list_clusters()["clusterArns"]},
        "AWS::ECS::TaskDefinition": set(c("ecs").list_task_definition_families()["families"]),
        "AWS::ECS::Service": {
            a.rsplit("/", 1)[1]
            for cluster in c("ecs").list_clusters()["clusterArns"]
            for a in c("ecs").list_services(cluster=cluster)["serviceArns"]
        },
        "AWS::ApplicationAutoScaling::ScalableTarget": {
            t["ResourceId"]
            for t in c("application-autoscaling").describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
        },
        "AWS::ApplicationAutoScaling::ScalingPolicy": {
            p["PolicyName"]
            for p in c("application-autoscaling").describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
        },
        "AWS::CloudWatch::Alarm": {a["AlarmName"] for a in c("cloudwatch").describe_alarms()["MetricAlarms"]},
        "AWS::CloudWatch::Dashboard": {
            d["DashboardName"] for d in c("cloudwatch").list_dashboards()["DashboardEntries"]
        },
    }


def _has_policy(target: aws.Target, bucket: str) -> bool:
    try:
        target.client("s3").get_bucket_policy(Bucket=bucket)
    except Exception:
        return False
    return True


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRAILWARDEN_STATE_DIR", str(tmp_path))
    for name in ("AWS_ENDPOINT_URL", "LOCALSTACK_HOST", "TRAILWARDEN_TARGET"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_up_provisions_every_resource_up_twice_and_down(
    state_dir: Path, emulator_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = emu.free_port()
    target = aws.emulator(f"http://127.0.0.1:{port}")
    try:
        assert _run("up", "--port", str(port)) == 0
        first = emu.running()
        assert first is not None and first.port == port and first.healthy()
        outputs = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
        assert outputs["TrailStreamName"] == "trailwarden-trail"

        plan = stack_outputs.local_plan(target, stack_outputs.LOCAL_SERVICE)
        listed = _listed(target)
        expected = [r for r in plan.resources if r.enabled and r.type not in provision.SKIPPED]
        assert len(expected) >= 15 and "AWS::ECS::Service" in {r.type for r in expected}
        for resource in expected:
            assert resource.name in listed[resource.type], f"{resource.logical_id} ({resource.type}) not created"
        assert "trailwarden" not in {t["Name"] for t in target.client("cloudtrail").describe_trails()["trailList"]}

        # The second `up` reuses the same process and creates nothing.
        assert _run("up", "--port", str(port)) == 0
        err = capsys.readouterr().err
        assert f"already running: pid {first.pid}" in err and "0 created" in err
        assert emu.running().pid == first.pid  # type: ignore[union-attr]

        assert _run("status", "--port", str(port), "--json") == 0
        document: dict[str, Any] = json.loads(capsys.readouterr().out)
        states = {r["logical_id"]: r["state"] for r in document["resources"]}
        assert states["Trail"] == "skipped" and states["AlertEmailSubscription"] == "disabled"
        assert all(states[r.logical_id] == "present" for r in expected)
        assert document["emulator_pid"] == first.pid
    finally:
        assert _run("down", "--port", str(port)) == 0
    assert emu.port_free("127.0.0.1", port)
    assert not (state_dir / "emulator.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(first.pid, 0)
    # `down` stopped only its own process: the session's emulator still answers.
    assert emu.health(emulator_endpoint) is not None
    assert _run("down", "--port", str(port)) == 0
    assert _run("status", "--port", str(port)) == 1


def test_up_refuses_a_port_held_by_something_else(state_dir: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert _run("up", "--port", str(port)) == 1
        assert emu.running() is None
