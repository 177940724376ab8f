"""Provision the local stack from infra/template.yaml, so the emulator and AWS cannot drift.

The template is evaluated for the target's account and region (`infra.cfn.plan`), and every
resource the emulator can hold is created through that service's own API, in dependency order.
moto's CloudFormation is not used: for subscription filters, Firehose and Glue it reports
CREATE_COMPLETE while creating nothing (see docs/local-stack.md).

    outputs = provision(target)          # dict of the template's Outputs; existing resources are kept
    for row in status(target): ...       # (resource, state) for every template resource

`SKIPPED` is the one place that says which resource types are not created locally, and why; the
template's evaluation for the local stack (`local_plan`, `LOCAL_PARAMETERS`) is in `infra.outputs`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from infra import aws, cfn
from infra.outputs import local_plan, local_target

log = logging.getLogger(__name__)

SKIPPED: dict[str, str] = {
    "AWS::CloudTrail::Trail": (
        "no CloudTrail delivery locally: `trailwarden simulate` plays CloudTrail, writing events into the "
        "log group with PutLogEvents as CloudTrail does"
    ),
    "AWS::IAM::ManagedPolicy": (
        "the operator's replay/backfill policy is attached on AWS to the people or CI role that run them; "
        "the emulator enforces no IAM and has no one to attach it to"
    ),
}

# States reported by `status`.
PRESENT, MISSING, SKIPPED_STATE, DISABLED = "present", "missing", "skipped", "disabled"


def _missing(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or code in (
        "404",
        "NoSuchBucket",
        "NoSuchBucketPolicy",
        "NoSuchEntity",
        "ResourceNotFoundException",
        "EntityNotFoundException",
        "NotFound",
        "NotFoundException",
    )


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        if _missing(error):
            return False
        raise
    return True


_SERVICES = {"autoscaling": "application-autoscaling"}  # attribute names that are not boto3's service names


class _Clients:
    def __init__(self, target: aws.Target) -> None:
        self.target = target
        self._cache: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._cache:
            self._cache[service] = self.target.client(_SERVICES.get(service, service))
        return self._cache[service]


# --- one exists/create pair per resource type ------------------------------------------------


def _bucket_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.s3.head_bucket(Bucket=r.name))


def _bucket_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    kwargs: dict[str, Any] = {"Bucket": r.name}
    if c.target.region and c.target.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": c.target.region}
    c.s3.create_bucket(**kwargs)
    if "BucketEncryption" in p:
        rules = [
            {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            | {k: v for k, v in rule.items() if k == "BucketKeyEnabled"}
            for rule in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        c.s3.put_bucket_encryption(Bucket=r.name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in p:
        c.s3.put_public_access_block(Bucket=r.name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in p:
        c.s3.put_bucket_ownership_controls(Bucket=r.name, OwnershipControls=p["OwnershipControls"])
    if "LifecycleConfiguration" in p:
        rules = []
        for rule in p["LifecycleConfiguration"]["Rules"]:
            api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"]}
            api["Filter"] = {"Prefix": rule.get("Prefix", "")}
            if "ExpirationInDays" in rule:
                api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
            if "AbortIncompleteMultipartUpload" in rule:
                days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
                api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
            rules.append(api)
        c.s3.put_bucket_lifecycle_configuration(Bucket=r.name, LifecycleConfiguration={"Rules": rules})


def _bucket_policy_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.s3.get_bucket_policy(Bucket=r.properties["Bucket"]))


def _bucket_policy_create(c: _Clients, r: cfn.Resource) -> None:
    c.s3.put_bucket_policy(Bucket=r.properties["Bucket"], Policy=json.dumps(r.properties["PolicyDocument"]))


def _log_group_exists(c: _Clients, r: cfn.Resource) -> bool:
    groups = c.logs.describe_log_groups(logGroupNamePrefix=r.name).get("logGroups", [])
    return any(g.get("logGroupName") == r.name for g in groups)


def _log_group_create(c: _Clients, r: cfn.Resource) -> None:
    c.logs.create_log_group(logGroupName=r.name)
    if "RetentionInDays" in r.properties:
        c.logs.put_retention_policy(logGroupName=r.name, retentionInDays=int(r.properties["RetentionInDays"]))


def _log_stream_exists(c: _Clients, r: cfn.Resource) -> bool:
    group = r.properties["LogGroupName"]
    try:
        streams = c.logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=r.name).get("logStreams", [])
    except ClientError as error:
        if _missing(error):
            return False
        raise
    return any(s.get("logStreamName") == r.name for s in streams)


def _log_stream_create(c: _Clients, r: cfn.Resource) -> None:
    c.logs.create_log_stream(logGroupName=r.properties["LogGroupName"], logStreamName=r.name)


def _subscription_filter_exists(c: _Clients, r: cfn.Resource) -> bool:
    group = r.properties["LogGroupName"]
    try:
        filters = c.logs.describe_subscription_filters(logGroupName=group, filterNamePrefix=r.name)
    except ClientError as error:
        if _missing(error):
            return False
        raise
    return any(f.get("filterName") == r.name for f in filters.get("subscriptionFilters", []))


def _subscription_filter_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    kwargs: dict[str, Any] = {
        "logGroupName": p["LogGroupName"],
        "filterName": r.name,
        "filterPattern": p.get("FilterPattern", ""),
        "destinationArn": p["DestinationArn"],
    }
    if "RoleArn" in p:
        kwargs["roleArn"] = p["RoleArn"]
    if "Distribution" in p:
        kwargs["distribution"] = p["Distribution"]
    c.logs.put_subscription_filter(**kwargs)


def _role_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.iam.get_role(RoleName=r.name))


def _role_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    c.iam.create_role(
        RoleName=r.name,
        AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
        Description=p.get("Description", ""),
    )
    for policy in p.get("Policies", []):
        c.iam.put_role_policy(
            RoleName=r.name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
        )


def _stream_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.kinesis.describe_stream_summary(StreamName=r.name))


def _stream_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    kwargs: dict[str, Any] = {"StreamName": r.name}
    if "StreamModeDetails" in p:
        kwargs["StreamModeDetails"] = p["StreamModeDetails"]
    if "ShardCount" in p:
        kwargs["ShardCount"] = int(p["ShardCount"])
    c.kinesis.create_stream(**kwargs)
    c.kinesis.get_waiter("stream_exists").wait(StreamName=r.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    hours = int(p.get("RetentionPeriodHours", 24))
    if hours > 24:
        c.kinesis.increase_stream_retention_period(StreamName=r.name, RetentionPeriodHours=hours)
    encryption = p.get("StreamEncryption")
    if encryption:
        c.kinesis.start_stream_encryption(
            StreamName=r.name, EncryptionType=encryption["EncryptionType"], KeyId=encryption["KeyId"]
        )


def _topic_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.sns.get_topic_attributes(TopicArn=r.arn))


def _topic_create(c: _Clients, r: cfn.Resource) -> None:
    attributes = {k: str(r.properties[k]) for k in ("DisplayName", "KmsMasterKeyId") if k in r.properties}
    c.sns.create_topic(Name=r.name, Attributes=attributes)


def _subscription_exists(c: _Clients, r: cfn.Resource) -> bool:
    p = r.properties
    subscriptions = c.sns.list_subscriptions_by_topic(TopicArn=p["TopicArn"]).get("Subscriptions", [])
    return any(s.get("Protocol") == p["Protocol"] and s.get("Endpoint") == p["Endpoint"] for s in subscriptions)


def _subscription_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    attributes = {}
    if "FilterPolicy" in p:
        attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
    if "FilterPolicyScope" in p:
        attributes["FilterPolicyScope"] = p["FilterPolicyScope"]
    c.sns.subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"], Attributes=attributes)


def _delivery_stream_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.firehose.describe_delivery_stream(DeliveryStreamName=r.name))


def _delivery_stream_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    kwargs: dict[str, Any] = {"DeliveryStreamName": r.name}
    kwargs["DeliveryStreamType"] = p.get("DeliveryStreamType", "DirectPut")
    for key in ("ExtendedS3DestinationConfiguration", "DeliveryStreamEncryptionConfigurationInput"):
        if key in p:
            kwargs[key] = p[key]
    hints = kwargs.get("ExtendedS3DestinationConfiguration", {}).get("BufferingHints")
    if hints:
        hints.update({k: int(v) for k, v in hints.items()})
    c.firehose.create_delivery_stream(**kwargs)


def _database_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.glue.get_database(Name=r.name))


def _database_create(c: _Clients, r: cfn.Resource) -> None:
    c.glue.create_database(DatabaseInput=r.properties["DatabaseInput"])


def _table_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.glue.get_table(DatabaseName=r.properties["DatabaseName"], Name=r.name))


def _table_create(c: _Clients, r: cfn.Resource) -> None:
    c.glue.create_table(DatabaseName=r.properties["DatabaseName"], TableInput=r.properties["TableInput"])


def _dynamodb_exists(c: _Clients, r: cfn.Resource) -> bool:
    return _exists(lambda: c.dynamodb.describe_table(TableName=r.name))


def _dynamodb_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    kwargs: dict[str, Any] = {
        "TableName": r.name,
        "AttributeDefinitions": p["AttributeDefinitions"],
        "KeySchema": p["KeySchema"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    sse = p.get("SSESpecification")
    if sse:
        kwargs["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))} | {
            k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse
        }
    c.dynamodb.create_table(**kwargs)
    c.dynamodb.get_waiter("table_exists").wait(TableName=r.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ttl = p.get("TimeToLiveSpecification")
    if ttl:
        spec = {"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])}
        c.dynamodb.update_time_to_live(TableName=r.name, TimeToLiveSpecification=spec)


def _camel(node: Any, literal: tuple[str, ...] = ("Options",)) -> Any:
    """CloudFormation's property names as ECS's API spells them (Family -> family); the keys under
    `literal` (the log driver's options) are kept as they are."""
    if isinstance(node, list):
        return [_camel(item, literal) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key[:1].lower() + key[1:]: value if key in literal else _camel(value, literal) for key, value in node.items()
    }


def _cluster_exists(c: _Clients, r: cfn.Resource) -> bool:
    clusters = c.ecs.describe_clusters(clusters=[r.name]).get("clusters", [])
    return any(cluster.get("status") == "ACTIVE" for cluster in clusters)


def _cluster_create(c: _Clients, r: cfn.Resource) -> None:
    c.ecs.create_cluster(clusterName=r.name, settings=_camel(r.properties.get("ClusterSettings", [])))


def _task_definition_exists(c: _Clients, r: cfn.Resource) -> bool:
    try:
        c.ecs.describe_task_definition(taskDefinition=r.name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ClientException" or _missing(error):
            return False
        raise
    return True


def _task_definition_create(c: _Clients, r: cfn.Resource) -> None:
    p = _camel(r.properties)
    for container in p["containerDefinitions"]:
        if "stopTimeout" in container:
            container["stopTimeout"] = int(container["stopTimeout"])
    c.ecs.register_task_definition(**p)


def _service_exists(c: _Clients, r: cfn.Resource) -> bool:
    services = c.ecs.describe_services(cluster=r.properties["Cluster"], services=[r.name]).get("services", [])
    return any(service.get("status") == "ACTIVE" for service in services)


def _service_create(c: _Clients, r: cfn.Resource) -> None:
    p = _camel(r.properties)
    p["taskDefinition"] = p["taskDefinition"].rsplit("/", 1)[-1].split(":", 1)[0]  # the family: its latest revision
    p["cluster"] = p["cluster"].rsplit("/", 1)[-1]
    # CloudFormation's default for a new service (the scalable target owns it after); a parameter's value is a string
    p["desiredCount"] = int(p.get("desiredCount", 1))
    for key in ("maximumPercent", "minimumHealthyPercent"):
        if key in p.get("deploymentConfiguration", {}):
            p["deploymentConfiguration"][key] = int(p["deploymentConfiguration"][key])
    c.ecs.create_service(**p)


def _scalable_target_exists(c: _Clients, r: cfn.Resource) -> bool:
    p = r.properties
    targets = c.autoscaling.describe_scalable_targets(
        ServiceNamespace=p["ServiceNamespace"], ResourceIds=[p["ResourceId"]], ScalableDimension=p["ScalableDimension"]
    ).get("ScalableTargets", [])
    return bool(targets)


def _scalable_target_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    c.autoscaling.register_scalable_target(
        ServiceNamespace=p["ServiceNamespace"],
        ResourceId=p["ResourceId"],
        ScalableDimension=p["ScalableDimension"],
        MinCapacity=int(p["MinCapacity"]),
        MaxCapacity=int(p["MaxCapacity"]),
    )


def _scaling_target(c: _Clients, resource_id: str) -> dict[str, Any]:
    """The scalable target a policy's ScalingTargetId names (locally its ResourceId; see infra.cfn)."""
    for namespace in ("ecs",):
        found = c.autoscaling.describe_scalable_targets(ServiceNamespace=namespace, ResourceIds=[resource_id])
        if found.get("ScalableTargets"):
            return found["ScalableTargets"][0]
    raise cfn.TemplateError(f"no scalable target {resource_id}")


def _scaling_policies(c: _Clients, name: str) -> list[dict[str, Any]]:
    found = c.autoscaling.describe_scaling_policies(ServiceNamespace="ecs", PolicyNames=[name])["ScalingPolicies"]
    return [policy for policy in found if policy.get("PolicyName") == name]  # moto ignores PolicyNames


def _scaling_policy_exists(c: _Clients, r: cfn.Resource) -> bool:
    return bool(_scaling_policies(c, r.name))


def _scaling_policy_create(c: _Clients, r: cfn.Resource) -> None:
    p = r.properties
    target = _scaling_target(c, p["ScalingTargetId"])
    kwargs: dict[str, Any] = {
        "PolicyName": r.name,
        "PolicyType": p["PolicyType"],
        "ServiceNamespace": target["ServiceNamespace"],
        "ResourceId": target["ResourceId"],
        "ScalableDimension": target["ScalableDimension"],
    }
    tracking = p.get("TargetTrackingScalingPolicyConfiguration")
    if tracking:
        kwargs["TargetTrackingScalingPolicyConfiguration"] = tracking | {
            "TargetValue": float(tracking["TargetValue"]),
            **{k: int(tracking[k]) for k in ("ScaleInCooldown", "ScaleOutCooldown") if k in tracking},
        }
    steps = p.get("StepScalingPolicyConfiguration")
    if steps:
        kwargs["StepScalingPolicyConfiguration"] = steps | {
            "Cooldown": int(steps.get("Cooldown", 0)),
            "StepAdjustments": [
                {k: (int(v) if k == "ScalingAdjustment" else float(v)) for k, v in step.items()}
                for step in steps["StepAdjustments"]
            ],
        }
    c.autoscaling.put_scaling_policy(**kwargs)


def _action_arn(c: _Clients, arn: str) -> str:
    """An alarm action as it exists: a scaling policy's ARN is looked up by name (infra.cfn has a placeholder)."""
    marker = ":scalingPolicy:policyName/"
    if marker not in arn:
        return arn
    policies = _scaling_policies(c, arn.split(marker, 1)[1])
    if not policies:
        raise cfn.TemplateError(f"alarm action {arn}: no such scaling policy")
    return str(policies[0]["PolicyARN"])


def _alarm_exists(c: _Clients, r: cfn.Resource) -> bool:
    return bool(c.cloudwatch.describe_alarms(AlarmNames=[r.name]).get("MetricAlarms"))


def _alarm_create(c: _Clients, r: cfn.Resource) -> None:
    kwargs = dict(r.properties)
    kwargs["Threshold"] = float(kwargs["Threshold"])
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
        if key in kwargs:
            kwargs[key] = [_action_arn(c, arn) for arn in kwargs[key]]
    for query in kwargs.get("Metrics", []):
        if "Period" in query:
            query["Period"] = int(query["Period"])
        if "MetricStat" in query:
            query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
    c.cloudwatch.put_metric_alarm(**kwargs)


def _dashboard_exists(c: _Clients, r: cfn.Resource) -> bool:
    entries = c.cloudwatch.list_dashboards(DashboardNamePrefix=r.name).get("DashboardEntries", [])
    return any(entry.get("DashboardName") == r.name for entry in entries)


def _dashboard_create(c: _Clients, r: cfn.Resource) -> None:
    c.cloudwatch.put_dashboard(DashboardName=r.name, DashboardBody=r.properties["DashboardBody"])


_HANDLERS: dict[str, tuple[Callable[[_Clients, cfn.Resource], bool], Callable[[_Clients, cfn.Resource], None]]] = {
    "AWS::S3::Bucket": (_bucket_exists, _bucket_create),
    "AWS::S3::BucketPolicy": (_bucket_policy_exists, _bucket_policy_create),
    "AWS::Logs::LogGroup": (_log_group_exists, _log_group_create),
    "AWS::Logs::LogStream": (_log_stream_exists, _log_stream_create),
    "AWS::Logs::SubscriptionFilter": (_subscription_filter_exists, _subscription_filter_create),
    "AWS::IAM::Role": (_role_exists, _role_create),
    "AWS::Kinesis::Stream": (_stream_exists, _stream_create),
    "AWS::SNS::Topic": (_topic_exists, _topic_create),
    "AWS::SNS::Subscription": (_subscription_exists, _subscription_create),
    "AWS::KinesisFirehose::DeliveryStream": (_delivery_stream_exists, _delivery_stream_create),
    "AWS::Glue::Database": (_database_exists, _database_create),
    "AWS::Glue::Table": (_table_exists, _table_create),
    "AWS::DynamoDB::Table": (_dynamodb_exists, _dynamodb_create),
    "AWS::ECS::Cluster": (_cluster_exists, _cluster_create),
    "AWS::ECS::TaskDefinition": (_task_definition_exists, _task_definition_create),
    "AWS::ECS::Service": (_service_exists, _service_create),
    "AWS::ApplicationAutoScaling::ScalableTarget": (_scalable_target_exists, _scalable_target_create),
    "AWS::ApplicationAutoScaling::ScalingPolicy": (_scaling_policy_exists, _scaling_policy_create),
    "AWS::CloudWatch::Alarm": (_alarm_exists, _alarm_create),
    "AWS::CloudWatch::Dashboard": (_dashboard_exists, _dashboard_create),
}


# --- the public functions ---------------------------------------------------------------------


@dataclass
class Row:
    """One template resource and its state on the target."""

    resource: cfn.Resource
    state: str  # present | missing | skipped | disabled
    reason: str = ""


def provision(
    target: aws.Target | str | None = None,
    parameters: Mapping[str, Any] | None = None,
    on_resource: Callable[[Row, bool], None] | None = None,
) -> dict[str, str]:
    """Create every template resource the target lacks; returns the template's outputs.

    `on_resource(row, created)` is called for each resource (for progress output).
    """
    resolved = local_target(target)
    clients = _Clients(resolved)
    plan = local_plan(resolved, _with_network(clients, parameters))
    for resource in plan.resources:
        row = _row(clients, resource)
        created = False
        if row.state == MISSING:
            log.info("creating %s %s (%s)", resource.type, resource.name, resource.logical_id)
            _HANDLERS[resource.type][1](clients, resource)
            row, created = Row(resource, PRESENT), True
        if on_resource:
            on_resource(row, created)
    return plan.outputs


def _row(clients: _Clients, resource: cfn.Resource) -> Row:
    if not resource.enabled:
        return Row(resource, DISABLED, f"condition {resource.condition} is false")
    if resource.type in SKIPPED:
        return Row(resource, SKIPPED_STATE, SKIPPED[resource.type])
    handlers = _HANDLERS.get(resource.type)
    if handlers is None:
        raise cfn.TemplateError(f"{resource.logical_id}: no local handler for {resource.type}; add one or skip it")
    return Row(resource, PRESENT if handlers[0](clients, resource) else MISSING)


def status(target: aws.Target | str | None = None, parameters: Mapping[str, Any] | None = None) -> list[Row]:
    """Every template resource with its state on the target."""
    resolved = local_target(target)
    clients = _Clients(resolved)
    return [_row(clients, resource) for resource in local_plan(resolved, _with_network(clients, parameters)).resources]


def _with_network(clients: _Clients, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters, with the service's Subnets and SecurityGroups (unless given) from the emulator's default VPC:
    ECS checks that they exist."""
    given = dict(parameters or {})
    if not given.get("Image") or (given.get("Subnets") and given.get("SecurityGroups")):
        return given  # no service, or its network given
    ec2 = clients.ec2
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}]).get("Vpcs", [])
    if not vpcs:
        return given
    vpc = [{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=vpc)["Subnets"]][:2]
    groups = ec2.describe_security_groups(Filters=[*vpc, {"Name": "group-name", "Values": ["default"]}])
    given.setdefault("Subnets", ",".join(subnets))
    given.setdefault("SecurityGroups", ",".join(g["GroupId"] for g in groups["SecurityGroups"]))
    return given
