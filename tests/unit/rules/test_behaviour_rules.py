"""The rules for the behaviours a security team expects (issue 17, section 3): their metadata, a decided
denied form for each, who a resource policy lets in, and counting several values of one event."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pipeline.cases import ACCOUNT, call
from pipeline.event import Event
from pipeline.rule import Rule
from pipeline.rules import builtin_rules
from pipeline.rules.attack_common import OTHER_ACCOUNT
from pipeline.rules.policy_exposure import ANYONE, recipients
from pipeline.ruletest import complete_record, run_events
from pipeline.stateful.facts import Fact
from pipeline.stateful.state import seen_digest

MODULES = (
    "account_settings",
    "credential_controls",
    "discovery_bursts",
    "ec2_data_movement",
    "ec2_destruction",
    "iam_changes",
    "logging_controls",
    "rds_access",
    "rds_protection",
    "resource_exposure",
    "root_account",
    "s3_data_movement",
    "s3_ransomware",
    "security_tooling",
    "session_credentials",
    "vpc_endpoint_activity",
)
PACK = {r.id: r for r in builtin_rules()}
ATTACK_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
# Rules whose events have no denied form: a sign-in's failure is its own event, judged by other rules.
NO_DENIED_FORM = {"root-console-sign-in", "root-console-sign-in-failures", "console-sign-in-mfa-failures"}


def module_of(rule: Rule) -> str:
    fn = getattr(rule, "check", None) or getattr(rule, "extract", None)
    return fn.__module__.rsplit(".", 1)[-1] if fn else ""


NEW = [r for r in PACK.values() if module_of(r) in MODULES]


def test_the_new_rules_are_many_and_fully_described() -> None:
    assert len(NEW) >= 70
    for rule in NEW:
        assert rule.title and rule.description and rule.runbook, rule.id
        assert all(ATTACK_ID.match(t) for t in rule.attack), (rule.id, rule.attack)
        assert rule.dedup > 0, rule.id
        assert not rule.id.startswith("cis-"), rule.id


@pytest.mark.parametrize("rule", [r for r in NEW if r.id not in NO_DENIED_FORM], ids=lambda r: r.id)
def test_each_rule_decides_what_a_denied_call_means(rule: Rule) -> None:
    """A case whose every call failed, with the rule's decision as its expectation."""
    denied = [c for c in rule.cases if c.events and all(e.get("errorCode") for e in c.events)]
    assert denied, f"{rule.id}: no case says what a denied call means"


def _policy_event(statement: dict[str, Any]) -> Event:
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", **statement}],
    }
    event = Event.from_record(
        complete_record(call("s3.amazonaws.com", "PutBucketPolicy", {"bucketName": "b", "bucketPolicy": doc}))
    )
    assert isinstance(event, Event)
    return event


def _who(statement: dict[str, Any], allowed: tuple[str, ...] = (), orgs: tuple[str, ...] = ()) -> list[str]:
    event = _policy_event(statement)
    return recipients(event, [event.request["bucketPolicy"]], allowed, orgs)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Principal": "*"}, [ANYONE]),
        ({"Principal": {"AWS": "*"}}, [ANYONE]),
        ({"NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}, [ANYONE]),
        (
            {"Principal": {"AWS": [f"arn:aws:iam::{OTHER_ACCOUNT}:role/x", f"arn:aws:iam::{ACCOUNT}:role/y"]}},
            [f"arn:aws:iam::{OTHER_ACCOUNT}:role/x"],
        ),
        ({"Principal": {"AWS": OTHER_ACCOUNT}}, [OTHER_ACCOUNT]),
        ({"Principal": {"Service": "cloudfront.amazonaws.com"}}, []),
        ({"Principal": {"CanonicalUser": "abc"}}, []),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}, []),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:SourceAccount": OTHER_ACCOUNT}}}, [OTHER_ACCOUNT]),
        ({"Principal": "*", "Condition": {"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}}, [ANYONE]),
        ({"Principal": "*", "Condition": {"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc"}}}, [ANYONE]),
        ({"Principal": "*", "Condition": {"ForAllValues:StringEquals": {"aws:PrincipalOrgID": ["o-abc"]}}}, [ANYONE]),
        ({"Principal": "*", "Condition": {"StringLike": {"aws:PrincipalOrgID": "o-*"}}}, [ANYONE]),
        ({"Principal": "*", "Condition": {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/app"}}}, [ANYONE]),
        ({"Principal": "*", "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:sns:*:{ACCOUNT}:*"}}}, []),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}}, [ANYONE]),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}}, []),
        ({"Principal": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}, [ANYONE]),
        ({"Principal": "*", "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": "x"}}}, []),
        ({"Effect": "Deny", "Principal": "*"}, []),
    ],
)
def test_who_a_resource_policy_lets_in(statement: dict[str, Any], expected: list[str]) -> None:
    assert _who(statement) == expected


def test_allowed_accounts_and_organizations() -> None:
    assert _who({"Principal": {"AWS": OTHER_ACCOUNT}}, allowed=(OTHER_ACCOUNT,)) == []
    pinned = {"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-other"}}}
    assert _who(pinned) == []
    assert _who(pinned, orgs=("o-mine",)) == ["o-other"]
    assert _who(pinned, orgs=("o-other",)) == []


def test_policy_text_shapes_and_junk_are_read_safely() -> None:
    rule = PACK["resource-policy-public-or-cross-account"]
    public = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*"}]})
    shapes = [
        {"attributes": {"Policy": public}},
        {"attributes": {"Policy": public.replace('"', "%22")}},
        {"policy": {"policy": public}},
        {"patchOperations": [{"op": "replace", "path": "/policy", "value": public}]},
    ]
    for request in shapes:
        assert len(run_events(rule, [call("sqs.amazonaws.com", "SetQueueAttributes", request)])) == 1, request
    deep: Any = public
    for _ in range(50):
        deep = [deep]
    for junk in ({"attributes": {"Policy": "{"}}, {"attributes": [None, 1, {"Statement": 7}]}, {"x": deep}):
        run_events(rule, [call("sqs.amazonaws.com", "SetQueueAttributes", junk)])


def test_one_event_counts_several_distinct_values_for_one_key() -> None:
    """One TerminateInstances of ten instances is ten facts for the same key: they must not collapse."""
    facts = [Fact("r", "key", "event-1", 0.0, "", f"i-{n}", nth=n) for n in range(10)]
    assert len({seen_digest(f) for f in facts}) == 10
    assert seen_digest(Fact("r", "key", "event-1", 0.0, "", "i-1", nth=1)) == seen_digest(facts[1])
    rule = PACK["ec2-instances-stopped-or-terminated-in-bulk"]
    ten = call(
        "ec2.amazonaws.com",
        "TerminateInstances",
        {"instancesSet": {"items": [{"instanceId": f"i-0{n:016x}"} for n in range(10)]}},
    )
    assert len(run_events(rule, [ten])) == 1
    nine = call(
        "ec2.amazonaws.com",
        "TerminateInstances",
        {"instancesSet": {"items": [{"instanceId": f"i-0{n:016x}"} for n in range(9)]}},
    )
    assert run_events(rule, [nine, nine]) == []  # the same nine again are not new instances


def test_summaries_name_the_actor_and_the_target() -> None:
    removal = call("s3.amazonaws.com", "DeleteBucketPublicAccessBlock", {"bucketName": "customer-exports"})
    found = run_events(PACK["s3-block-public-access-removed"], [removal])
    assert len(found) == 1
    assert "bucket customer-exports" in found[0].summary and "arn:aws:iam::111122223333:user/alice" in found[0].summary
    assert found[0].context["actor"] and found[0].context["succeeded"] is True
