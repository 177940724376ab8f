"""Least privilege over infra/template.yaml: no `*` in any action, and every role grants exactly what its
principal calls. The consumer role is checked against the AWS API calls the consumers' code makes (found
statically, tests/reliability/iam.py) plus the KCL daemon's own documented calls; the operator policy
against the calls of `trailwarden replay` (its daemons included) and `backfill` plus the KCL's; the service
roles against what each AWS integration needs. `python -m tests.reliability.iam` prints action -> where it
is called."""

from __future__ import annotations

import ast
import copy
from typing import Any

import pytest

from infra import cfn
from tests.reliability import iam

# Who needs each statement of the consumer role: "code" (our Python), "kcl", "kcl-fanout" or "kms".
CONSUMER_STATEMENTS: dict[str, set[str]] = {
    "ReadStreams": {"kcl", "code"},
    "RouteKeyedFacts": {"code"},
    "EnhancedFanOut": {"kcl-fanout"},
    "KclLeaseTables": {"kcl"},
    "DedupeTable": {"code"},
    "StateSnapshots": {"code"},
    "ListStateSnapshots": {"code"},
    "PublishAlerts": {"code"},
    "ArchiveFindings": {"code"},
    "ReadStackOutputs": {"code"},
    "Metrics": {"kcl"},
    "StreamAndSinkKey": {"kms"},
}
# The same for the operator policy (replay starts its KCL daemons under the operator's credentials).
OPERATOR_STATEMENTS: dict[str, set[str]] = {
    "ReadStackOutputs": {"code"},
    "ReadTrailStream": {"kcl", "code"},
    "ReadLiveKeyedStream": {"code"},
    "ReplayKeyedStream": {"kcl", "code"},
    "ReplayKclTables": {"kcl", "code"},
    "DedupeTable": {"code"},
    "ReplaySnapshots": {"code"},
    "ListReplaySnapshots": {"code"},
    "ReplayDeadLetters": {"code"},
    "ReadTrailArchive": {"code"},
    "ListTrailArchive": {"code"},
    "PublishAlerts": {"code"},
    "ArchiveFindings": {"code"},
    "Metrics": {"kcl"},
    "StreamArchiveAndSinkKey": {"kms"},
}
# The only writes the operator may make to what is not a replay's own (named "-replay-"): the findings sinks,
# metrics, and the use (not the change) of the customer managed key.
OPERATOR_LIVE_WRITES = {
    ("DedupeTable", "dynamodb:PutItem"),
    ("PublishAlerts", "sns:Publish"),
    ("ArchiveFindings", "firehose:PutRecordBatch"),
    ("Metrics", "cloudwatch:PutMetricData"),
    ("StreamArchiveAndSinkKey", "kms:Decrypt"),
    ("StreamArchiveAndSinkKey", "kms:GenerateDataKey"),
}
# The same for the deliverer's role (`trailwarden deliver`): everything it calls is its own code's.
DELIVERER_STATEMENTS: dict[str, set[str]] = {
    "DestinationQueues": {"code"},
    "SubscribeQueues": {"code"},
    "DedupeTable": {"code"},
    "DestinationSecrets": {"code"},
    "DestinationParameters": {"code"},
    "SecurityHubFindings": {"code"},
    "EventBridgeEvents": {"code"},
    "ReadStackOutputs": {"code"},
    "DedupeTableKey": {"kms"},
}
# Calls the scan attributes to the deliverer that it never makes, each with the reason (the scan works per module
# and per class): checked to be in the scan still, so that a stale entry fails.
DELIVERER_NOT_CALLED = {
    "dynamodb:UpdateItem": "DedupeTable.count, stage 2's digest counter; the deliverer calls seen and mark",
    "sns:Publish": "the consumers.sinks package, loaded for its retry helpers; the deliverer publishes nothing",
    "firehose:PutRecordBatch": "the same package; the deliverer archives nothing",
}
READ_VERBS = ("Get", "Describe", "List", "Scan", "Query", "BatchGet")
# API calls that need no IAM permission (GetCallerIdentity works for any principal).
NO_PERMISSION = {"sts:GetCallerIdentity"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn.load(iam.REPO / "infra" / "template.yaml")


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else [repr(value)]


def needed_by_consumer() -> dict[str, set[str]]:
    code = {c.action for c in iam.consumer_calls()} - NO_PERMISSION
    return {
        "code": code,
        "kcl": set(iam.KCL_ACTIONS),
        "kcl-fanout": set(iam.KCL_FANOUT_ACTIONS),
        "kms": set(iam.KMS_ACTIONS),
    }


def consumer_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role = template["Resources"]["ConsumerRole"]["Properties"]
    return [s for policy in role["Policies"] for s in iam.statements(policy["PolicyDocument"])]


def _resources(statement: dict[str, Any]) -> list[Any]:
    value = statement["Resource"]
    return list(value) if isinstance(value, list) else [value]


def needed_by_operator() -> dict[str, set[str]]:
    code = {c.action for c in iam.operator_calls()} - NO_PERMISSION
    return {"code": code, "kcl": set(iam.KCL_ACTIONS), "kms": set(iam.KMS_ACTIONS)}


def operator_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return list(iam.statements(template["Resources"]["OperatorReplayPolicy"]["Properties"]["PolicyDocument"]))


def operator_check(template: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """(grants neither the code nor the KCL needs, calls no statement grants) of the operator policy."""
    needed = needed_by_operator()
    granted: set[str] = set()
    unused: list[str] = []
    for statement in operator_statements(template):
        sid = statement.get("Sid", "")
        if sid not in OPERATOR_STATEMENTS:
            unused.append(f"{sid or statement}: does not say who needs it")
            continue
        allowed = set().union(*(needed[who] for who in OPERATOR_STATEMENTS[sid]))
        for action in _listed(statement["Action"]):
            granted.add(action)
            if action not in allowed:
                unused.append(f"{sid}: {action}")
    calls = {c.action: c.where for c in iam.operator_calls()}
    missing = {a: calls.get(a, "KCL") for who in ("code", "kcl") for a in needed[who] if a not in granted}
    return unused, missing


def live_writes(template: dict[str, Any]) -> list[str]:
    """Operator grants that write or delete something not named as a replay's own, beyond the sinks."""
    found = []
    for statement in operator_statements(template):
        sid = statement.get("Sid", "")
        for action in _listed(statement["Action"]):
            if action.split(":", 1)[-1].startswith(READ_VERBS) or (sid, action) in OPERATOR_LIVE_WRITES:
                continue
            for resource in _listed(statement["Resource"]):
                if "-replay-" not in str(resource):
                    found.append(f"{sid}: {action} on {resource}")
    return found


def deliverer_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role = template["Resources"]["DelivererRole"]["Properties"]
    return [s for policy in role["Policies"] for s in iam.statements(policy["PolicyDocument"])]


def deliverer_check(template: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """(grants the deliverer does not need, calls no statement grants) of the deliverer's role."""
    calls = {c.action: c.where for c in iam.deliverer_calls()}
    needed = {"code": set(calls) - NO_PERMISSION - set(DELIVERER_NOT_CALLED), "kms": set(iam.KMS_ACTIONS)}
    granted: set[str] = set()
    unused: list[str] = []
    for statement in deliverer_statements(template):
        sid = statement.get("Sid", "")
        if sid not in DELIVERER_STATEMENTS:
            unused.append(f"{sid or statement}: does not say who needs it")
            continue
        allowed = set().union(*(needed[who] for who in DELIVERER_STATEMENTS[sid]))
        for action in _listed(statement["Action"]):
            granted.add(action)
            if action not in allowed:
                unused.append(f"{sid}: {action}")
    return unused, {a: calls[a] for a in needed["code"] if a not in granted}


def test_no_action_has_a_wildcard(template: dict[str, Any]) -> None:
    wild = sorted(a for a in iam.actions(template["Resources"]) if "*" in a)
    assert not wild
    assert not [s for s in iam.statements(template["Resources"]) if "NotAction" in s]


def test_the_scan_finds_the_calls_the_consumers_make() -> None:
    found = {c.action for c in iam.consumer_calls()}
    # The sinks, the keyed stream writer, snapshots and dead letters, child shards after a reshard.
    assert {
        "sns:Publish",
        "firehose:PutRecordBatch",
        "kinesis:PutRecords",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "kinesis:ListShards",
    } <= found
    # Operator and local-only code (provisioning, lease seeding, the findings queue of `run`) is not the consumer's.
    everything = {c.action for c in iam.calls()}
    assert {"kinesis:CreateStream", "sqs:ReceiveMessage", "logs:PutLogEvents"} <= everything - found
    assert not iam.unresolved(), "client calls whose service the scan cannot tell: " + ", ".join(iam.unresolved())


def test_the_scan_resolves_every_way_the_code_holds_a_client() -> None:
    source = """
class Sink:
    def send(self):
        self.client.publish_batch(TopicArn="t", PublishBatchRequestEntries=[])
        self.client.get_paginator("list_subscriptions_by_topic")
def f(target):
    ddb, kinesis = target.client("dynamodb"), target.client("kinesis")
    ddb.transact_write_items(TransactItems=[])
    kinesis.merge_shards(StreamName="s", ShardToMerge="a", AdjacentShardToMerge="b")
    target.client("s3").delete_objects(Bucket="b", Delete={})
    self.publisher.publish([])  # not a client: ignored
Sink(target.client("sns"))
"""
    scan = iam._Scan("example", iam._class_clients({"example": ast.parse(source)}), {"sns", "dynamodb", "s3"})
    scan.visit(ast.parse(source))
    assert sorted(c.action for c in scan.calls) == [
        "dynamodb:TransactWriteItems",
        "kinesis:MergeShards",
        "s3:DeleteObject",
        "sns:ListSubscriptionsByTopic",
        "sns:Publish",
    ]


def test_consumer_role_grants_only_what_the_code_and_the_kcl_call(template: dict[str, Any]) -> None:
    needed = needed_by_consumer()
    granted_by: dict[str, set[str]] = {}
    unused: list[str] = []
    for statement in consumer_statements(template):
        sid = statement.get("Sid", "")
        assert sid in CONSUMER_STATEMENTS, f"consumer statement {sid or statement} does not say who needs it"
        allowed = set().union(*(needed[who] for who in CONSUMER_STATEMENTS[sid]))
        for action in _listed(statement["Action"]):
            granted_by.setdefault(action, set()).add(sid)
            if action not in allowed:
                unused.append(f"{sid}: {action}")
    assert not unused, f"granted to the consumer role but called by neither the code nor the KCL: {unused}"
    calls = {c.action: c.where for c in iam.consumer_calls()}
    missing = {
        a: calls.get(a, "KCL") for who in ("code", "kcl", "kcl-fanout") for a in needed[who] if a not in granted_by
    }
    assert not missing, f"called but not granted to the consumer role: {missing}"


@pytest.mark.parametrize("role", sorted(iam.SERVICE_ROLES))
def test_service_roles_grant_what_their_service_needs(template: dict[str, Any], role: str) -> None:
    granted = iam.actions(template["Resources"][role]["Properties"])
    assert granted == set(iam.SERVICE_ROLES[role])


@pytest.mark.parametrize("policy", sorted(iam.BUCKET_POLICIES))
def test_bucket_policies_grant_what_the_service_needs(template: dict[str, Any], policy: str) -> None:
    assert iam.actions(template["Resources"][policy]["Properties"]) == set(iam.BUCKET_POLICIES[policy])


def test_every_role_and_policy_in_the_template_is_checked(template: dict[str, Any]) -> None:
    kinds = {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::KMS::Key",
    }
    holders = {name for name, r in template["Resources"].items() if r["Type"] in kinds}
    assert holders == {
        "ConsumerRole",
        "DelivererRole",
        "OperatorReplayPolicy",
        *iam.SERVICE_ROLES,
        *iam.BUCKET_POLICIES,
    }


def test_the_check_catches_an_unused_grant_and_a_missing_one(template: dict[str, Any]) -> None:
    statements = consumer_statements(template)
    dedupe = next(s for s in statements if s.get("Sid") == "DedupeTable")
    needed = needed_by_consumer()["code"]
    assert "dynamodb:DeleteTable" not in needed and "dynamodb:PutItem" in needed
    assert set(_listed(dedupe["Action"])) <= needed  # so adding DeleteTable, or dropping PutItem, would fail


def test_the_scan_finds_the_calls_replay_and_backfill_make() -> None:
    found = {c.action for c in iam.operator_calls()}
    # Replay's own keyed stream, tables and snapshots, removed at the end; backfill's archive reads; the sinks.
    assert {
        "kinesis:CreateStream",
        "kinesis:DeleteStream",
        "kinesis:PutRecord",
        "dynamodb:DeleteTable",
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:GetObject",
        "cloudformation:DescribeStacks",
        "firehose:PutRecordBatch",
        "sns:Publish",
        "dynamodb:BatchGetItem",
    } <= found
    where = {c.where.split(" ")[0].rsplit(":", 1)[0] for c in iam.operator_calls()}
    assert {"consumers/replay.py", "consumers/archive.py", "consumers/sinks/kinesis.py"} <= where
    # Local provisioning, the simulator and `run`'s findings queue are not replay's or backfill's.
    assert not {"kinesis:CreateStream", "kinesis:DeleteStream", "dynamodb:DeleteTable"} & {
        c.action for c in iam.consumer_calls()
    }
    assert not {"sqs:ReceiveMessage", "logs:PutLogEvents", "iam:CreateRole", "s3:CreateBucket"} & found


def test_operator_policy_grants_only_what_replay_backfill_and_the_kcl_call(template: dict[str, Any]) -> None:
    unused, missing = operator_check(template)
    assert not unused, f"granted to the operator but called by neither replay, backfill nor the KCL: {unused}"
    assert not missing, f"called by replay, backfill or the KCL but not granted to the operator: {missing}"


def test_operator_policy_writes_only_what_a_replay_owns_and_the_sinks(template: dict[str, Any]) -> None:
    assert not live_writes(template)
    statements = {s["Sid"]: s for s in operator_statements(template)}
    # The live applications' tables and snapshots are not reachable at all, not even to read them (the state
    # bucket itself only for ListBucket, under a prefix condition, below).
    for statement in statements.values():
        for resource in _resources(statement):
            named = str(resource.get("Fn::Sub", "")) if isinstance(resource, dict) else ""
            if "AppName" in named or "StateBucket" in named:
                assert "-replay-" in named, f"{statement['Sid']}: {resource}"
    # Of the live keyed stream, only its shape (to copy it) is read.
    live_keyed = [s["Sid"] for s in statements.values() if {"Fn::GetAtt": ["KeyedStream", "Arn"]} in _resources(s)]
    assert live_keyed == ["ReadLiveKeyedStream"]
    assert statements["ReadLiveKeyedStream"]["Action"] == "kinesis:DescribeStreamSummary"
    # Listing is limited by prefix: a replay's snapshots, the trail archive's AWSLogs/.
    assert "-replay-" in str(statements["ListReplaySnapshots"]["Condition"]["StringLike"]["s3:prefix"])
    assert statements["ListTrailArchive"]["Condition"]["StringLike"]["s3:prefix"] == "AWSLogs/*"


def test_the_operator_check_catches_an_unused_grant_a_missing_one_and_a_live_write(template: dict[str, Any]) -> None:
    def changed(sid: str, edit: Any) -> dict[str, Any]:
        broken = copy.deepcopy(template)
        for statement in operator_statements(broken):
            if statement.get("Sid") == sid:
                statement["Action"] = edit(_listed(statement["Action"]))
        return broken

    unused, _ = operator_check(changed("ReadTrailArchive", lambda a: [*a, "s3:PutObject"]))
    assert unused == []  # PutObject is called (snapshots), so only the resource check can tell ...
    assert live_writes(changed("ReadTrailArchive", lambda a: [*a, "s3:PutObject"]))  # ... and it does
    unused, _ = operator_check(changed("Metrics", lambda a: [*a, "logs:PutLogEvents"]))
    assert unused == ["Metrics: logs:PutLogEvents"]
    _, missing = operator_check(changed("ReplayKeyedStream", lambda a: [x for x in a if x != "kinesis:DeleteStream"]))
    assert missing == {
        "kinesis:DeleteStream": next(c.where for c in iam.operator_calls() if c.action == "kinesis:DeleteStream")
    }
    _, missing = operator_check(changed("ReplayKclTables", lambda a: [x for x in a if x != "dynamodb:Query"]))
    assert missing == {"dynamodb:Query": "KCL"}
    assert live_writes(changed("DedupeTable", lambda a: [*a, "dynamodb:DeleteTable"]))


def test_the_consumer_tasks_run_as_the_consumer_role_and_pull_as_the_execution_role(template: dict[str, Any]) -> None:
    definitions = {
        name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == "AWS::ECS::TaskDefinition"
    }
    assert set(definitions) == {"RouterTaskDefinition", "StatefulTaskDefinition", "DelivererTaskDefinition"}
    roles = {"RouterTaskDefinition": "ConsumerRole", "StatefulTaskDefinition": "ConsumerRole"}
    for name, properties in definitions.items():
        # The code and the KCL in the task call AWS as the consumer role (the deliverer as its own), checked above
        # against their calls ...
        assert properties["TaskRoleArn"] == {"Fn::GetAtt": [roles.get(name, "DelivererRole"), "Arn"]}, name
        # ... and only ECS itself (image pull, log driver) uses the execution role, checked as a service role.
        assert properties["ExecutionRoleArn"] == {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]}, name
    trust = template["Resources"]["ConsumerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert any("ecs-tasks.amazonaws.com" in _listed(s["Principal"]["Service"]) for s in trust)
    execution = iam.actions(template["Resources"]["TaskExecutionRole"]["Properties"])
    consumer = {a for s in consumer_statements(template) for a in _listed(s["Action"])}
    assert not {a for a in execution if a.startswith(("ecr:", "logs:"))} & consumer


def test_the_consumer_role_lets_a_stopped_task_give_its_leases_back(template: dict[str, Any]) -> None:
    """`trailwarden consume` runs as the task role and, after its daemon exits, writes the KCL's own tables
    (consumers.leases.release_worker): each call it makes there is granted on the applications' tables."""
    release = {"release_leases", "release_leader_lock", "forget_worker_metrics", "_scan"}
    used = {c.action for c in iam.calls() if c.module == "consumers.leases" and c.function in release}
    assert used == {"dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    tables = next(s for s in consumer_statements(template) if s.get("Sid") == "KclLeaseTables")
    assert used <= set(_listed(tables["Action"]))
    assert {"${RouterAppName}*", "${StatefulAppName}*"} <= {
        str(r.get("Fn::Sub", "")).rsplit("/", 1)[-1] for r in _resources(tables) if isinstance(r, dict)
    }


def test_the_scan_finds_the_calls_the_deliverer_makes() -> None:
    found = {c.action for c in iam.deliverer_calls()}
    # its queues (created, drained, dead-lettered), the dedupe marks, every destination type, the secrets
    assert {
        "sqs:CreateQueue",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "sns:Subscribe",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "securityhub:BatchImportFindings",
        "events:PutEvents",
        "secretsmanager:GetSecretValue",
        "ssm:GetParameter",
    } <= found
    assert set(DELIVERER_NOT_CALLED) <= found, "a call listed as not the deliverer's is no longer in its scan"
    # and nothing of the pipeline's streams, snapshots or lease tables
    assert not {a for a in found if a.startswith(("kinesis:", "s3:"))}


def test_deliverer_role_grants_only_what_the_deliverer_calls(template: dict[str, Any]) -> None:
    unused, missing = deliverer_check(template)
    assert not unused, f"granted to the deliverer but not called by it: {unused}"
    assert not missing, f"called by the deliverer but not granted to it: {missing}"


def test_the_deliverer_check_catches_an_unused_grant_and_a_missing_one(template: dict[str, Any]) -> None:
    def changed(sid: str, edit: Any) -> dict[str, Any]:
        broken = copy.deepcopy(template)
        for statement in deliverer_statements(broken):
            if statement.get("Sid") == sid:
                statement["Action"] = edit(_listed(statement["Action"]))
        return broken

    unused, _ = deliverer_check(changed("DedupeTable", lambda a: [*a, "dynamodb:UpdateItem"]))
    assert unused == ["DedupeTable: dynamodb:UpdateItem"]
    _, missing = deliverer_check(changed("DestinationQueues", lambda a: [x for x in a if x != "sqs:SendMessage"]))
    assert list(missing) == ["sqs:SendMessage"]


def test_the_deliverer_s_queues_and_secrets_are_the_ones_its_role_names() -> None:
    import fnmatch

    from infra import destination_queues

    plan = cfn.plan({}, account="111122223333", region="eu-west-1")
    role = plan.resource("DelivererRole").properties["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s["Resource"] for s in role if isinstance(s, dict) and "Sid" in s}
    queue = destination_queues.queue_name(plan.outputs["FindingsTopicArn"], "security-slack")
    for name in (queue, f"{queue}-dlq"):  # the names the deliverer creates, and only those
        assert fnmatch.fnmatch(f"arn:aws:sqs:eu-west-1:111122223333:{name}", by_sid["DestinationQueues"])
    assert not fnmatch.fnmatch("arn:aws:sqs:eu-west-1:111122223333:other-queue", by_sid["DestinationQueues"])
    assert by_sid["SubscribeQueues"] == plan.outputs["FindingsTopicArn"]
    secret = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:trailwarden/slack-webhook-AbCdEf"
    assert fnmatch.fnmatch(secret, by_sid["DestinationSecrets"])
    assert not fnmatch.fnmatch(secret.replace("trailwarden/", "prod/"), by_sid["DestinationSecrets"])
    assert by_sid["EventBridgeEvents"].endswith(":event-bus/default")
