"""The consumer service as `trailwarden stack up` provisions it on the emulator (with LOCAL_SERVICE): ECS,
Application Auto Scaling and CloudWatch resources exist, read back through their own APIs, and are wired to each
other as the template says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import aws, provision
from infra.outputs import LOCAL_SERVICE, local_plan

pytestmark = pytest.mark.slow

STAGES = ("router", "stateful")
# The consumers' own metrics (EMF, namespace MetricsNamespace, dimensions Application and Stage).
OWN_METRICS = {
    "RecordsIn",
    "EventsIn",
    "FindingsOut",
    "DeadLetters",
    "RuleErrors",
    "SinkRetries",
    "SinkWaitSeconds",
    "DedupeHits",
    "KeyedFactsOut",
    "TrackedKeys",
    "WatermarkLagSeconds",
    "SnapshotBytes",
    "SnapshotMillis",
}


@pytest.fixture(scope="module")
def stack(module_target: aws.Target) -> dict[str, Any]:
    outputs = provision.provision(module_target, LOCAL_SERVICE)
    plan = local_plan(module_target, LOCAL_SERVICE)
    return {"target": module_target, "outputs": outputs, "plan": plan}


def _alarm(target: aws.Target, name: str) -> dict[str, Any]:
    alarms = target.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert len(alarms) == 1, f"alarm {name} missing"
    return alarms[0]


def test_one_fargate_service_per_stage_runs_the_consumer_role(stack: dict[str, Any]) -> None:
    target, outputs = stack["target"], stack["outputs"]
    ecs = target.client("ecs")
    cluster = ecs.describe_clusters(clusters=[outputs["ClusterName"]], include=["SETTINGS"])["clusters"][0]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]
    consumer_role = outputs["ConsumerRoleArn"]
    execution_role = target.client("iam").get_role(RoleName=stack["plan"].resource("TaskExecutionRole").name)
    groups = target.client("logs").describe_log_groups(logGroupNamePrefix=outputs["ConsumerLogGroupName"])
    assert groups["logGroups"][0]["retentionInDays"] == 30
    for stage in STAGES:
        name = outputs[f"{stage.capitalize()}ServiceName"]
        service = ecs.describe_services(cluster=outputs["ClusterName"], services=[name])["services"][0]
        assert service["launchType"] == "FARGATE"
        # moto keeps no deploymentConfiguration: the circuit breaker is read from the evaluated template.
        config = stack["plan"].resource(f"{stage.capitalize()}Service").properties["DeploymentConfiguration"]
        assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        assert definition["taskRoleArn"] == consumer_role != execution_role["Role"]["Arn"]
        assert definition["executionRoleArn"] == execution_role["Role"]["Arn"]
        assert definition["requiresCompatibilities"] == ["FARGATE"] and definition["networkMode"] == "awsvpc"
        (container,) = definition["containerDefinitions"]
        assert container["command"] == [stage]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["TRAILWARDEN_TARGET"] == "aws" and env["TRAILWARDEN_RETRIEVAL_MODE"] == "POLLING"
        resources = json.loads(env["TRAILWARDEN_RESOURCES"])
        assert {k: outputs[k] for k in resources} == resources  # the stack's own names, nothing made up
        assert container["logConfiguration"]["options"]["awslogs-group"] == outputs["ConsumerLogGroupName"]


def test_each_service_scales_on_cpu_and_steps_on_its_iterator_age_alarm(stack: dict[str, Any]) -> None:
    target, outputs = stack["target"], stack["outputs"]
    scaling = target.client("application-autoscaling")
    targets = {t["ResourceId"]: t for t in scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]}
    policies = scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    for stage in STAGES:
        resource_id = f"service/{outputs['ClusterName']}/{outputs[f'{stage.capitalize()}ServiceName']}"
        assert (targets[resource_id]["MinCapacity"], targets[resource_id]["MaxCapacity"]) == (1, 4)
        mine = {p["PolicyType"]: p for p in policies if p["ResourceId"] == resource_id}
        tracking = mine["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
        steps = mine["StepScaling"]["StepScalingPolicyConfiguration"]
        assert [s["ScalingAdjustment"] for s in steps["StepAdjustments"]] == [1, 2]
        alarm = _alarm(target, f"trailwarden-{stage}-iterator-age")
        app = outputs[f"{stage.capitalize()}AppName"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (app, "MillisBehindLatest", "Maximum")
        assert alarm["Dimensions"] == [{"Name": "Operation", "Value": "ProcessTask"}]
        assert alarm["Threshold"] == 300000
        # The alarm's actions are the operations topic and this stage's step policy, by its real ARN.
        assert alarm["AlarmActions"] == [outputs["OperationsTopicArn"], mine["StepScaling"]["PolicyARN"]]


@pytest.mark.parametrize(
    ("name", "metric", "stage"),
    [
        ("router-dead-letters", "DeadLetters", "router"),
        ("stateful-dead-letters", "DeadLetters", "stateful"),
        ("router-rule-errors", "RuleErrors", "router"),
        ("stateful-rule-errors", "RuleErrors", "stateful"),
    ],
)
def test_alarms_on_the_consumers_own_metrics(stack: dict[str, Any], name: str, metric: str, stage: str) -> None:
    outputs = stack["outputs"]
    alarm = _alarm(stack["target"], f"trailwarden-{name}")
    assert (alarm["Namespace"], alarm["MetricName"]) == (outputs["MetricsNamespace"], metric)
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "Application": outputs[f"{stage.capitalize()}AppName"],
        "Stage": stage,
    }
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [outputs["OperationsTopicArn"]]


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_held_by_a_sink_alarms_on_its_own_sink_waits(stack: dict[str, Any], stage: str) -> None:
    """The processors write SinkWaitSeconds every interval while a sink holds their batch (the KCL's
    MillisBehindLatest, written when a batch ends, may then be missing): the worst processor's wait."""
    outputs = stack["outputs"]
    alarm = _alarm(stack["target"], f"trailwarden-{stage}-sink-waits")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        outputs["MetricsNamespace"],
        "SinkWaitSeconds",
        "Maximum",
    )
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "Application": outputs[f"{stage.capitalize()}AppName"],
        "Stage": stage,
    }
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]) == (300, 2, 45)
    assert alarm["AlarmActions"] == alarm["OKActions"] == [outputs["OperationsTopicArn"]]


def test_the_watermark_alarm_takes_the_largest_lag_over_the_stateful_shards(stack: dict[str, Any]) -> None:
    outputs = stack["outputs"]
    alarm = _alarm(stack["target"], "trailwarden-stateful-watermark-lag")
    (query,) = alarm["Metrics"]  # WatermarkLagSeconds is written per shard only: a Metrics Insights query
    assert query["Expression"].startswith("SELECT MAX(WatermarkLagSeconds) FROM SCHEMA(")
    assert f'"{outputs["MetricsNamespace"]}", Application, ShardId, Stage' in query["Expression"]
    assert f"Application = '{outputs['StatefulAppName']}' AND Stage = 'stateful'" in query["Expression"]
    assert alarm["Threshold"] == 900 and alarm["AlarmActions"] == [outputs["OperationsTopicArn"]]


def test_tasks_below_desired_and_firehose_failures_alarm(stack: dict[str, Any]) -> None:
    target, outputs = stack["target"], stack["outputs"]
    for stage in STAGES:
        alarm = _alarm(target, f"trailwarden-{stage}-tasks-below-desired")
        queries = {q["Id"]: q for q in alarm["Metrics"]}
        assert queries["missing"]["Expression"] == "desired - running"
        for query, metric in (("desired", "DesiredTaskCount"), ("running", "RunningTaskCount")):
            stat = queries[query]["MetricStat"]["Metric"]
            assert (stat["Namespace"], stat["MetricName"]) == ("ECS/ContainerInsights", metric)
            assert {d["Value"] for d in stat["Dimensions"]} == {
                outputs["ClusterName"],
                outputs[f"{stage.capitalize()}ServiceName"],
            }
        assert alarm["AlarmActions"] == [outputs["OperationsTopicArn"]]
    firehose = _alarm(target, "trailwarden-findings-delivery-failures")
    assert (firehose["Namespace"], firehose["MetricName"]) == ("AWS/Firehose", "DeliveryToS3.Success")
    assert firehose["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": outputs["FindingsDeliveryStreamName"]}]
    assert firehose["AlarmActions"] == [outputs["OperationsTopicArn"]]


def test_the_dashboard_shows_every_metric_of_both_stages(stack: dict[str, Any]) -> None:
    target, outputs = stack["target"], stack["outputs"]
    dashboard = target.client("cloudwatch").get_dashboard(DashboardName=outputs["DashboardName"])
    body = json.loads(dashboard["DashboardBody"])
    shown: set[str] = set()
    applications: set[str] = set()
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            names = [cell for cell in row if isinstance(cell, str)]
            expressions = [cell["expression"] for cell in row if isinstance(cell, dict) and "expression" in cell]
            if names:
                shown.add(names[1])
                applications.update(names)
            for expression in expressions:  # SELECT MAX(<metric>) FROM SCHEMA(...) WHERE Application = '<app>' ...
                shown.add(expression.split("(", 2)[1].split(")")[0])
                applications.add(expression.split("Application = '")[1].split("'")[0])
    assert OWN_METRICS - {"EventsIn"} <= shown | {"EventsIn"} and "EventsIn" in shown
    assert {"MillisBehindLatest", "GetRecords.IteratorAgeMilliseconds", "RunningTaskCount", "CPUUtilization"} <= shown
    assert {outputs["RouterAppName"], outputs["StatefulAppName"]} <= applications
