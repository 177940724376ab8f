"""Least privilege over infra/template.yaml: no `*` in any action, and every role grants exactly what its
principal calls. The consumer role is checked against the AWS API calls the consumers' code makes (found
statically, tests/reliability/iam.py) plus the KCL daemon's own documented calls; the service roles against
what each AWS integration needs. `python -m tests.reliability.iam` prints action -> where it is called."""

from __future__ import annotations

import ast
from typing import Any

import pytest
from reliability import iam

from infra import cfn

# Who needs each statement of the consumer role: "code" (our Python), "kcl", "kcl-fanout" or "kms".
CONSUMER_STATEMENTS: dict[str, set[str]] = {
    "ReadStreams": {"kcl", "code"}, "RouteKeyedFacts": {"code"}, "EnhancedFanOut": {"kcl-fanout"},
    "KclLeaseTables": {"kcl"}, "DedupeTable": {"code"}, "StateSnapshots": {"code"}, "ListStateSnapshots": {"code"},
    "PublishAlerts": {"code"}, "ArchiveFindings": {"code"}, "ReadStackOutputs": {"code"}, "Metrics": {"kcl"},
    "StreamAndSinkKey": {"kms"},
}
# API calls that need no IAM permission (GetCallerIdentity works for any principal).
NO_PERMISSION = {"sts:GetCallerIdentity"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn.load(iam.REPO / "infra" / "template.yaml")


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else [repr(value)]


def needed_by_consumer() -> dict[str, set[str]]:
    code = {c.action for c in iam.consumer_calls()} - NO_PERMISSION
    return {"code": code, "kcl": set(iam.KCL_ACTIONS), "kcl-fanout": set(iam.KCL_FANOUT_ACTIONS),
            "kms": set(iam.KMS_ACTIONS)}


def consumer_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role = template["Resources"]["ConsumerRole"]["Properties"]
    return [s for policy in role["Policies"] for s in iam.statements(policy["PolicyDocument"])]


def test_no_action_has_a_wildcard(template: dict[str, Any]) -> None:
    wild = sorted(a for a in iam.actions(template["Resources"]) if "*" in a)
    assert not wild
    assert not [s for s in iam.statements(template["Resources"]) if "NotAction" in s]


def test_the_scan_finds_the_calls_the_consumers_make() -> None:
    found = {c.action for c in iam.consumer_calls()}
    # The sinks, the keyed stream writer, snapshots and dead letters, child shards after a reshard.
    assert {"sns:Publish", "firehose:PutRecordBatch", "kinesis:PutRecords", "dynamodb:BatchGetItem",
            "dynamodb:PutItem", "s3:GetObject", "s3:PutObject", "s3:ListBucket", "kinesis:ListShards"} <= found
    # Operator and local-only code (provisioning, lease seeding, the findings queue of `run`) is not the consumer's.
    everything = {c.action for c in iam.calls()}
    assert {"kinesis:CreateStream", "sqs:ReceiveMessage", "logs:PutLogEvents"} <= everything - found
    assert not iam.unresolved(), "client calls whose service the scan cannot tell: " + ", ".join(iam.unresolved())


def test_the_scan_resolves_every_way_the_code_holds_a_client() -> None:
    source = '''
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
'''
    scan = iam._Scan("example", iam._class_clients({"example": ast.parse(source)}), {"sns", "dynamodb", "s3"})
    scan.visit(ast.parse(source))
    assert sorted(c.action for c in scan.calls) == ["dynamodb:TransactWriteItems", "kinesis:MergeShards",
                                                     "s3:DeleteObject", "sns:ListSubscriptionsByTopic",
                                                     "sns:Publish"]


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
    missing = {a: calls.get(a, "KCL") for who in ("code", "kcl", "kcl-fanout") for a in needed[who]
               if a not in granted_by}
    assert not missing, f"called but not granted to the consumer role: {missing}"


@pytest.mark.parametrize("role", sorted(iam.SERVICE_ROLES))
def test_service_roles_grant_what_their_service_needs(template: dict[str, Any], role: str) -> None:
    granted = iam.actions(template["Resources"][role]["Properties"])
    assert granted == set(iam.SERVICE_ROLES[role])


@pytest.mark.parametrize("policy", sorted(iam.BUCKET_POLICIES))
def test_bucket_policies_grant_what_the_service_needs(template: dict[str, Any], policy: str) -> None:
    assert iam.actions(template["Resources"][policy]["Properties"]) == set(iam.BUCKET_POLICIES[policy])


def test_every_role_and_policy_in_the_template_is_checked(template: dict[str, Any]) -> None:
    kinds = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy",
             "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy", "AWS::KMS::Key"}
    holders = {name for name, r in template["Resources"].items() if r["Type"] in kinds}
    assert holders == {"ConsumerRole", *iam.SERVICE_ROLES, *iam.BUCKET_POLICIES}


def test_the_check_catches_an_unused_grant_and_a_missing_one(template: dict[str, Any]) -> None:
    statements = consumer_statements(template)
    dedupe = next(s for s in statements if s.get("Sid") == "DedupeTable")
    needed = needed_by_consumer()["code"]
    assert "dynamodb:DeleteTable" not in needed and "dynamodb:PutItem" in needed
    assert set(_listed(dedupe["Action"])) <= needed  # so adding DeleteTable, or dropping PutItem, would fail
