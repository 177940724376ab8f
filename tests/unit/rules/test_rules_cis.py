"""The CIS AWS Foundations 4.x monitoring rules: exact filter semantics, exclusions, dedup, real records."""

from __future__ import annotations

import json

import pytest

from pipeline.cases import role_session, root_identity
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.rule import ANY, REGISTRY
from pipeline.rules import builtin_rules
from pipeline.ruletest import complete_record, run_events
from tests.support.corpus import STRATUS

RULES = builtin_rules()


def rule(rule_id: str):
    return REGISTRY[rule_id]


def count(rule_id: str, *partials: dict, params: dict | None = None) -> int:
    return len({f.id for f in run_events(rule(rule_id), list(partials), params=params)})


def call(source: str, name: str, **fields) -> dict:
    return {"eventSource": source, "eventName": name, **fields}


# --- the filters' event lists, exactly ----------------------------------------------------------------

CIS_EVENTS = {
    "cis-iam-policy-changes": (
        ANY,
        {
            "DeleteGroupPolicy",
            "DeleteRolePolicy",
            "DeleteUserPolicy",
            "PutGroupPolicy",
            "PutRolePolicy",
            "PutUserPolicy",
            "CreatePolicy",
            "DeletePolicy",
            "CreatePolicyVersion",
            "DeletePolicyVersion",
            "AttachRolePolicy",
            "DetachRolePolicy",
            "AttachUserPolicy",
            "DetachUserPolicy",
            "AttachGroupPolicy",
            "DetachGroupPolicy",
        },
    ),
    "cis-cloudtrail-config-changes": (
        ANY,
        {"CreateTrail", "UpdateTrail", "DeleteTrail", "StartLogging", "StopLogging"},
    ),
    "cis-kms-cmk-disabled-or-deleted": ("kms.amazonaws.com", {"DisableKey", "ScheduleKeyDeletion"}),
    "cis-s3-bucket-policy-changes": (
        "s3.amazonaws.com",
        {
            "PutBucketAcl",
            "PutBucketPolicy",
            "PutBucketCors",
            "PutBucketLifecycle",
            "PutBucketReplication",
            "DeleteBucketPolicy",
            "DeleteBucketCors",
            "DeleteBucketLifecycle",
            "DeleteBucketReplication",
        },
    ),
    "cis-aws-config-changes": (
        "config.amazonaws.com",
        {"StopConfigurationRecorder", "DeleteDeliveryChannel", "PutDeliveryChannel", "PutConfigurationRecorder"},
    ),
    "cis-security-group-changes": (
        ANY,
        {
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "CreateSecurityGroup",
            "DeleteSecurityGroup",
        },
    ),
    "cis-nacl-changes": (
        ANY,
        {
            "CreateNetworkAcl",
            "CreateNetworkAclEntry",
            "DeleteNetworkAcl",
            "DeleteNetworkAclEntry",
            "ReplaceNetworkAclEntry",
            "ReplaceNetworkAclAssociation",
        },
    ),
    "cis-network-gateway-changes": (
        ANY,
        {
            "CreateCustomerGateway",
            "DeleteCustomerGateway",
            "AttachInternetGateway",
            "CreateInternetGateway",
            "DeleteInternetGateway",
            "DetachInternetGateway",
        },
    ),
    "cis-route-table-changes": (
        ANY,
        {
            "CreateRoute",
            "CreateRouteTable",
            "ReplaceRoute",
            "ReplaceRouteTableAssociation",
            "DeleteRouteTable",
            "DeleteRoute",
            "DisassociateRouteTable",
        },
    ),
    "cis-vpc-changes": (
        ANY,
        {
            "CreateVpc",
            "DeleteVpc",
            "ModifyVpcAttribute",
            "AcceptVpcPeeringConnection",
            "CreateVpcPeeringConnection",
            "DeleteVpcPeeringConnection",
            "RejectVpcPeeringConnection",
            "AttachClassicLinkVpc",
            "DetachClassicLinkVpc",
            "DisableVpcClassicLink",
            "EnableVpcClassicLink",
        },
    ),
    "cis-organizations-changes": (
        "organizations.amazonaws.com",
        {
            "AcceptHandshake",
            "AttachPolicy",
            "CreateAccount",
            "CreateOrganizationalUnit",
            "CreatePolicy",
            "DeclineHandshake",
            "DeleteOrganization",
            "DeleteOrganizationalUnit",
            "DeletePolicy",
            "DetachPolicy",
            "DisablePolicyType",
            "EnablePolicyType",
            "InviteAccountToOrganization",
            "LeaveOrganization",
            "MoveAccount",
            "RemoveAccountFromOrganization",
            "UpdatePolicy",
            "UpdateOrganizationalUnit",
        },
    ),
    "console-login-without-mfa": (ANY, {"ConsoleLogin"}),
    "cis-console-authentication-failures": (ANY, {"ConsoleLogin"}),
    "cis-unauthorized-api-calls": (ANY, None),
    "cis-root-account-usage": (ANY, None),
}


@pytest.mark.parametrize("rule_id", sorted(CIS_EVENTS))
def test_declared_events_are_the_cis_filter_lists(rule_id):
    source, names = CIS_EVENTS[rule_id]
    assert rule(rule_id).events == {source: None if names is None else frozenset(names)}


def test_fifteen_cis_controls_with_their_numbers_in_the_titles():
    titled = {r.title.rsplit("(CIS ", 1)[1].rstrip(")") for r in RULES if "(CIS 4." in r.title}
    assert titled == {f"4.{n}" for n in range(1, 16)}
    for r in RULES:
        if "(CIS 4." in r.title:
            assert r.id.startswith("cis-") or r.id == "console-login-without-mfa"


CHANGE_MONITORS = sorted(k for k, (_, names) in CIS_EVENTS.items() if names is not None and "ConsoleLogin" not in names)


@pytest.mark.parametrize("rule_id", CHANGE_MONITORS)
def test_change_monitors_fire_on_every_listed_name(rule_id):
    source, names = CIS_EVENTS[rule_id]
    src = "ec2.amazonaws.com" if source == ANY else source
    events = [call(src, name, requestParameters={"name": f"target-{i}"}) for i, name in enumerate(sorted(names))]
    assert count(rule_id, *events) == len(names)


# --- 4.1 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, expected",
    [
        ("Client.UnauthorizedOperation", 1),
        ("UnauthorizedOperation", 1),
        ("AccessDenied", 1),
        ("AccessDeniedException", 1),
        ("AccessDeniedForDependencyException", 1),
        ("ThrottlingException", 0),
        ("Client.RequestLimitExceeded", 0),
        ("NoSuchEntity", 0),
        ("accessdenied", 0),
        ("UnauthorizedOperationX", 0),
        ("XAccessDenied", 0),
        ("", 0),
    ],
)
def test_unauthorized_wildcards(code, expected):
    assert (
        count("cis-unauthorized-api-calls", call("sts.amazonaws.com", "GetCallerIdentity", errorCode=code)) == expected
    )


@pytest.mark.parametrize("bad", [None, 403, ["AccessDenied"], {"code": "AccessDenied"}, True])
def test_unauthorized_ignores_non_string_error_codes(bad):
    assert count("cis-unauthorized-api-calls", call("s3.amazonaws.com", "GetObject", errorCode=bad)) == 0


def test_unauthorized_matches_any_source_and_dedups_per_caller_per_hour():
    denied = {"errorCode": "AccessDenied"}
    same_role = [
        call(src, "Anything", userIdentity=role_session("app", f"s{i}"), **denied)
        for i, src in enumerate(["bedrock.amazonaws.com", "s3.amazonaws.com", "made-up.example.com"])
    ]
    assert count("cis-unauthorized-api-calls", *same_role) == 1
    other_role = call("s3.amazonaws.com", "GetObject", userIdentity=role_session("other"), **denied)
    assert count("cis-unauthorized-api-calls", *same_role, other_role) == 2
    next_hour = call(
        "s3.amazonaws.com", "GetObject", userIdentity=role_session("app"), eventTime="2024-07-01T15:30:00Z", **denied
    )
    assert count("cis-unauthorized-api-calls", same_role[0], next_hour) == 2


def test_unauthorized_v15_exclusions():
    assert count("cis-unauthorized-api-calls", call("s3.amazonaws.com", "HeadBucket", errorCode="AccessDenied")) == 0
    assert (
        count(
            "cis-unauthorized-api-calls",
            call(
                "s3.amazonaws.com", "PutObject", errorCode="AccessDenied", sourceIPAddress="delivery.logs.amazonaws.com"
            ),
        )
        == 0
    )


# --- 4.2 ----------------------------------------------------------------------------------------------


def login(mfa="No", outcome="Success", identity=None, **fields) -> dict:
    fields = {"responseElements": {"ConsoleLogin": outcome}, "additionalEventData": {"MFAUsed": mfa}, **fields}
    record = call("signin.amazonaws.com", "ConsoleLogin", **fields)
    if identity is not None:
        record["userIdentity"] = identity
    return record


@pytest.mark.parametrize(
    "record, expected",
    [
        (login("No"), 1),
        (login("Yes"), 0),
        (login("no"), 1),  # only exactly "Yes" counts as MFA, as in the filter
        (login("No", outcome="Failure", errorMessage="Failed authentication"), 0),
        (login("No", identity=role_session("AWSReservedSSO_ReadOnly_0123", "bob")), 0),
        (login("No", identity=root_identity()), 0),
        (
            login(
                "No",
                identity={"type": "IAMUser", "userName": "x", "arn": "arn:aws:iam::1:user/x"},
                responseElements=None,
            ),
            0,
        ),
        (login("No", additionalEventData=None), 1),
    ],
)
def test_console_login_without_mfa_variant(record, expected):
    assert count("console-login-without-mfa", record) == expected


def test_console_login_corpus():
    events = corpus_events("aws.initial-access.console-login-without-mfa.json")
    found = Detector(rules=[rule("console-login-without-mfa")], config=Config.from_dict())
    findings = [f for e in events for f in found.process(e)]
    assert len(findings) == 1
    assert "without MFA" in findings[0].summary


# --- 4.3 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identity, fields, expected",
    [
        (root_identity(), {}, 1),
        (root_identity(), {"errorCode": "AccessDenied"}, 1),
        (root_identity(), {"eventType": "AwsConsoleAction"}, 1),
        (root_identity(invokedBy="support.amazonaws.com"), {}, 0),
        (root_identity(invokedBy=None), {}, 0),  # the key exists, so NOT EXISTS is false
        (root_identity(), {"eventType": "AwsServiceEvent"}, 0),
        ({"type": "root", "arn": "arn:aws:iam::1:root"}, {}, 0),  # the filter compares exactly
        (role_session(), {}, 0),
        ({"type": "IAMUser", "userName": "root"}, {}, 0),
    ],
)
def test_root_usage_exclusions(identity, fields, expected):
    assert (
        count("cis-root-account-usage", call("iam.amazonaws.com", "ListUsers", userIdentity=identity, **fields))
        == expected
    )


def test_root_usage_one_finding_per_account_and_hour():
    calls = [call("iam.amazonaws.com", n, userIdentity=root_identity()) for n in ("ListUsers", "CreateUser")]
    other = call(
        "iam.amazonaws.com", "ListUsers", userIdentity=root_identity("444455556666"), recipientAccountId="444455556666"
    )
    assert count("cis-root-account-usage", *calls) == 1
    assert count("cis-root-account-usage", *calls, other) == 2


# --- 4.6 and the change monitors ------------------------------------------------------------------


def test_console_failures_keyed_by_user_and_address():
    fail = {"errorMessage": "Failed authentication"}
    a = login("No", outcome="Failure", **fail)
    b = login("No", outcome="Failure", sourceIPAddress="203.0.113.9", **fail)
    assert count("cis-console-authentication-failures", a, a, b) == 2


def test_change_monitor_reports_failed_attempts_and_targets():
    stop = call(
        "cloudtrail.amazonaws.com", "StopLogging", requestParameters={"name": "org-trail"}, errorCode="AccessDenied"
    )
    [finding] = run_events(rule("cis-cloudtrail-config-changes"), [stop])
    assert "failed: AccessDenied" in finding.summary
    assert finding.resources == ("org-trail",)
    assert finding.context["cis_control"] == "CIS 4.5"


def test_iam_policy_changes_name_role_and_policy():
    attach = call(
        "iam.amazonaws.com",
        "AttachRolePolicy",
        requestParameters={"roleName": "app", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )
    [finding] = run_events(rule("cis-iam-policy-changes"), [attach])
    assert finding.resources == ("arn:aws:iam::aws:policy/AdministratorAccess", "app")


def test_iam_policy_filter_has_no_event_source_so_organizations_create_policy_matches():
    # Documented: the CIS 4.4 filter names no eventSource; an SCP created in Organizations trips it as well.
    assert count("cis-iam-policy-changes", call("organizations.amazonaws.com", "CreatePolicy")) == 1


def test_source_restricted_filters_ignore_other_sources():
    assert count("cis-kms-cmk-disabled-or-deleted", call("example.amazonaws.com", "DisableKey")) == 0
    assert count("cis-s3-bucket-policy-changes", call("s3control.amazonaws.com", "PutBucketPolicy")) == 0
    assert count("cis-organizations-changes", call("iam.amazonaws.com", "CreatePolicy")) == 0


# --- real records ---------------------------------------------------------------------------------


def corpus_events(name: str) -> list[Event]:
    records = json.loads((STRATUS / name).read_text())
    events = [Event.from_record(r, name) for r in records]
    assert all(isinstance(e, Event) for e in events)
    return events  # type: ignore[return-value]


@pytest.mark.parametrize(
    "file, rule_id",
    [
        ("aws.defense-evasion.cloudtrail-stop.json", "cis-cloudtrail-config-changes"),
        ("aws.defense-evasion.cloudtrail-delete.json", "cis-cloudtrail-config-changes"),
        ("aws.defense-evasion.organizations-leave.json", "cis-organizations-changes"),
        ("aws.defense-evasion.organizations-leave.json", "cis-unauthorized-api-calls"),
        ("aws.credential-access.ec2-get-password-data.json", "cis-unauthorized-api-calls"),
        ("aws.persistence.iam-create-admin-user.json", "cis-iam-policy-changes"),
        ("aws.persistence.iam-create-backdoor-role.json", "cis-iam-policy-changes"),
        ("aws.exfiltration.ec2-security-group-open-port-22-ingress.json", "cis-security-group-changes"),
    ],
)
def test_corpus_records(file, rule_id):
    detector = Detector(rules=[rule(rule_id)], config=Config.from_dict())
    findings = [f for e in corpus_events(file) for f in detector.process(e)]
    assert findings and {f.rule_id for f in findings} == {rule_id}
    assert detector.stats.rule_errors == {}


def test_cis_rules_are_quiet_on_unrelated_corpus_files():
    detector = Detector(
        rules=[rule("cis-root-account-usage"), rule("console-login-without-mfa")], config=Config.from_dict()
    )
    for path in sorted(STRATUS.glob("*.json")):
        if "console-login" in path.name:
            continue
        for event in corpus_events(path.name):
            assert detector.process(event) == [], path.name


# --- hostile input --------------------------------------------------------------------------------

HOSTILE = [None, 0, -1, True, "", "x" * 10_000, [], [None], {}, {"items": None}, {"type": "Root"}]
FIELDS = [
    "userIdentity",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "eventType",
    "sourceIPAddress",
    "recipientAccountId",
]


def test_cis_rules_never_raise_on_wrong_types():
    cis = [r for r in RULES if r.id.startswith("cis-") or r.id == "console-login-without-mfa"]
    detector = Detector(rules=cis, config=Config.from_dict())
    names = [*sorted({n for r in cis for names in r.events.values() for n in names or ()}), "Anything"]
    index = 0
    for name in names:
        for field in FIELDS:
            for value in HOSTILE:
                record = complete_record(call("ec2.amazonaws.com", name, **{field: value}), index, "hostile")
                event = Event.from_record(record)
                assert isinstance(event, Event)
                detector.process(event)
                index += 1
    assert detector.stats.rule_errors == {}, detector.stats.last_errors
