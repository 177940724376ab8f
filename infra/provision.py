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
        "404", "NoSuchBucket", "NoSuchBucketPolicy", "NoSuchEntity", "ResourceNotFoundException",
        "EntityNotFoundException", "NotFound", "NotFoundException",
    )


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        if _missing(error):
            return False
        raise
    return True


class _Clients:
    def __init__(self, target: aws.Target) -> None:
        self.target = target
        self._cache: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._cache:
            self._cache[service] = self.target.client(service)
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
    plan = local_plan(resolved, parameters)
    clients = _Clients(resolved)
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
    return [_row(clients, resource) for resource in local_plan(resolved, parameters).resources]
