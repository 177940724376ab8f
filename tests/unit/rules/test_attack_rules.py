"""Attack-technique rules: benign lookalikes stay quiet, evasive variants still fire, configuration
narrows them, and hostile field types never make a rule raise.

Each lookalike test runs the attack first (it must fire), then the same call made benign in one way
(an AWS service acting, an allowed account, a console session ...) which must not: a negative only
means something when its positive twin fires.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.cases import ACCOUNT, call, console, iam_user, role_session, service_linked, via_service
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.rule import MatchRule, Rule
from pipeline.rules import builtin_rules
from pipeline.rules.attack_common import OTHER_ACCOUNT, by_aws_service
from pipeline.ruletest import complete_record, run_events, run_rules
from tests.support.corpus import STRATUS

RULES_DIR = Path(__file__).resolve().parents[3] / "pipeline" / "rules"
ATTACK_MODULES = (
    "credential_access",
    "defense_evasion",
    "discovery",
    "execution",
    "exfiltration",
    "impact",
    "lateral_movement",
    "persistence",
    "privilege_escalation",
)
ATTACK_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
PUBLIC_IP = "81.2.69.142"
PACK = {r.id: r for r in builtin_rules()}


def attack_rules() -> list[Rule]:
    return [
        r for r in PACK.values() if isinstance(r, MatchRule) and r.check.__module__.rsplit(".", 1)[-1] in ATTACK_MODULES
    ]


def fires(
    rule_id: str, partial: dict[str, Any], params: dict[str, Any] | None = None, config: Config | None = None
) -> int:
    return len(run_events(PACK[rule_id], [partial], params=params, config=config))


def trust_doc(principal: Any, condition: dict[str, Any] | None = None) -> str:
    stmt: dict[str, Any] = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal}
    if condition:
        stmt["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


def instance_identity(**context: Any) -> dict[str, Any]:
    return role_session("web-role", "i-0123456789abcdef0", ec2RoleDelivery="2.0", **context)


def benign_service(partial: dict[str, Any]) -> dict[str, Any]:
    """The same call made by a service with the caller's credentials (invokedBy)."""
    return {**partial, **via_service("cloudformation", partial.get("userIdentity"))}


def benign_service_linked(service: str, role: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The same call made by a service's service-linked role (the service acting on its own)."""
    return lambda partial: {
        **partial,
        "userIdentity": service_linked(service, role),
        "sourceIPAddress": f"{service}.amazonaws.com",
    }


def benign_aws_service_principal(partial: dict[str, Any]) -> dict[str, Any]:
    return {
        **partial,
        "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
        "sourceIPAddress": "ec2.amazonaws.com",
    }


def benign_console(partial: dict[str, Any]) -> dict[str, Any]:
    return {**partial, **console()}


EC2 = "ec2.amazonaws.com"
ATTACKS: dict[str, dict[str, Any]] = {
    "ec2-password-data-retrieved": call(EC2, "GetPasswordData", {"instanceId": "i-0abc"}),
    "ec2-instance-user-data-read": call(
        EC2, "DescribeInstanceAttribute", {"attribute": "userData", "instanceId": "i-0abc"}
    ),
    "ec2-unusual-instance-type-launched": call(EC2, "RunInstances", {"instanceType": "p4d.24xlarge"}),
    "cloudtrail-logging-stopped": call("cloudtrail.amazonaws.com", "StopLogging", {"name": "org-trail"}),
    "ebs-snapshot-shared-externally": call(
        EC2,
        "ModifySnapshotAttribute",
        {"snapshotId": "snap-0abc", "createVolumePermission": {"add": {"items": [{"userId": OTHER_ACCOUNT}]}}},
    ),
    "iam-role-trust-policy-opened-to-external-account": call(
        "iam.amazonaws.com",
        "CreateRole",
        {"roleName": "x", "assumeRolePolicyDocument": trust_doc({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"})},
    ),
    "secretsmanager-mass-secret-retrieval": call(
        "secretsmanager.amazonaws.com", "BatchGetSecretValue", {"filters": [{"key": "name", "values": ["prod"]}]}
    ),
    "ssm-send-command-to-instances": call(
        "ssm.amazonaws.com", "SendCommand", {"documentName": "AWS-RunShellScript", "instanceIds": ["i-0abc"]}
    ),
    "lambda-function-code-updated": call(
        "lambda.amazonaws.com", "UpdateFunctionCode20150331v2", {"functionName": "api"}
    ),
    "ec2-instance-credentials-used-outside-instance": call(
        "sts.amazonaws.com", "GetCallerIdentity", userIdentity=instance_identity(), sourceIPAddress=PUBLIC_IP
    ),
}

LOOKALIKES: list[tuple[str, str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    (
        "ec2-instance-user-data-read",
        "AWS Config's service-linked role",
        benign_service_linked("config", "AWSServiceRoleForConfig"),
    ),
    ("ec2-unusual-instance-type-launched", "AWS service principal", benign_aws_service_principal),
    (
        "cloudtrail-logging-stopped",
        "Control Tower service-linked role",
        benign_service_linked("controltower", "AWSServiceRoleForAWSControlTower"),
    ),
    ("ebs-snapshot-shared-externally", "AWS Backup cross-account copy", lambda p: {**p, **via_service("backup")}),
    (
        "ssm-send-command-to-instances",
        "SSM's service-linked role (maintenance window)",
        benign_service_linked("ssm", "AWSServiceRoleForAmazonSSM"),
    ),
    (
        "ec2-instance-credentials-used-outside-instance",
        "a service acting for the instance",
        lambda p: {**p, **via_service("ssm", p.get("userIdentity"))},
    ),
]


@pytest.mark.parametrize(("rule_id", "how", "make_benign"), LOOKALIKES, ids=[f"{r}:{h}" for r, h, _ in LOOKALIKES])
def test_benign_lookalike_is_quiet(rule_id: str, how: str, make_benign: Callable[..., dict[str, Any]]) -> None:
    attack = ATTACKS[rule_id]
    assert fires(rule_id, attack) == 1, f"{rule_id}: the attack itself must fire"
    assert fires(rule_id, make_benign(copy.deepcopy(attack))) == 0, f"{rule_id}: fired on {how}"


# A person acting in the console or through a service (a stack, a scaling group, an Automation runbook) is
# still the person.
THROUGH_A_SERVICE = [
    ("ec2-password-data-retrieved", "an SSO user in the console", benign_console),
    ("ec2-instance-user-data-read", "an SSO user in the console", benign_console),
    ("cloudtrail-logging-stopped", "a stack update", benign_service),
    ("iam-role-trust-policy-opened-to-external-account", "a stack creating the role", benign_service),
    ("secretsmanager-mass-secret-retrieval", "a service with the caller's credentials", benign_service),
    ("ssm-send-command-to-instances", "an Automation runbook", lambda p: {**p, **via_service("ssm")}),
    ("lambda-function-code-updated", "a SAM deployment", benign_service),
    (
        "ec2-unusual-instance-type-launched",
        "Auto Scaling's service-linked role",
        lambda p: {**p, "userIdentity": service_linked(), "sourceIPAddress": "autoscaling.amazonaws.com"},
    ),
]


@pytest.mark.parametrize(
    ("rule_id", "how", "make_variant"), THROUGH_A_SERVICE, ids=[f"{r}:{h}" for r, h, _ in THROUGH_A_SERVICE]
)
def test_acting_through_a_service_still_fires(
    rule_id: str, how: str, make_variant: Callable[..., dict[str, Any]]
) -> None:
    assert fires(rule_id, make_variant(copy.deepcopy(ATTACKS[rule_id]))) == 1, f"{rule_id}: silent on {how}"


CONSOLE_UPDATE_LOGIN_PROFILE = {
    "eventSource": "iam.amazonaws.com",
    "eventName": "UpdateLoginProfile",
    "sourceIPAddress": "AWS Internal",
    "userAgent": "AWS Internal",
    "sessionCredentialFromConsole": "true",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEALICE",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLECONSOLE12",
        "userName": "alice",
        "sessionContext": {"attributes": {"creationDate": "2024-07-01T13:50:00Z", "mfaAuthenticated": "false"}},
    },
    "requestParameters": {"userName": "bob"},
    "responseElements": None,
}


def test_a_console_call_is_the_person_not_aws() -> None:
    """Regression: "AWS Internal" as source address and user agent is the console, where a person acts."""
    assert fires("iam-login-profile-updated-for-another-user", CONSOLE_UPDATE_LOGIN_PROFILE) == 1


@pytest.mark.parametrize(
    ("fields", "aws_acted"),
    [
        ({"userIdentity": {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"}}, True),
        ({"userIdentity": service_linked("config", "AWSServiceRoleForConfig")}, True),
        ({"userIdentity": service_linked("controltower", "AWSServiceRoleForAWSControlTower")}, True),
        (
            via_service("backup", role_session("AWSBackupDefaultServiceRole", "AWSBackup-AWSBackupDefaultServiceRole")),
            True,
        ),
        (via_service("dlm", role_session("AWSDataLifecycleManagerDefaultRole", "DLM")), True),
        ({"userIdentity": service_linked(), "sourceIPAddress": "autoscaling.amazonaws.com"}, False),
        (via_service("cloudformation"), False),
        (via_service("ssm"), False),
        (
            {
                "userIdentity": iam_user(),
                "sourceIPAddress": "AWS Internal",
                "userAgent": "AWS Internal",
                "sessionCredentialFromConsole": "true",
            },
            False,
        ),
        ({"userIdentity": iam_user(), "sourceIPAddress": "AWS Internal"}, False),
        ({"userIdentity": {**iam_user(), "invokedBy": "AWS Internal"}}, False),
        (
            {
                "userIdentity": {
                    "type": "Root",
                    "arn": f"arn:aws:iam::{ACCOUNT}:root",
                    "accountId": ACCOUNT,
                    "invokedBy": "signin.amazonaws.com",
                },
                "sourceIPAddress": "81.2.69.142",
            },
            False,
        ),
        ({"userIdentity": iam_user()}, False),
    ],
    ids=[
        "service principal",
        "Config service-linked role",
        "Control Tower service-linked role",
        "AWS Backup",
        "Data Lifecycle Manager",
        "Auto Scaling service-linked role",
        "CloudFormation",
        "SSM Automation",
        "console",
        "AWS Internal source",
        "AWS Internal invokedBy",
        "root in the console",
        "CLI",
    ],
)
def test_who_acted(fields: dict[str, Any], aws_acted: bool) -> None:
    record = complete_record({"eventSource": "iam.amazonaws.com", "eventName": "CreateRole", **fields})
    event = Event.from_record(record)
    assert not isinstance(event, str)
    assert by_aws_service(event) is aws_acted


def test_every_attack_rule_ignores_aws_service_principals() -> None:
    """Whatever the call, a record whose caller is an AWS service principal raises no attack finding."""
    corpus = [r for p in sorted(STRATUS.glob("*.json")) for r in json.loads(p.read_text())]
    detector = Detector(rules=attack_rules())
    fired = []
    for record in corpus:
        record = benign_aws_service_principal(record)
        event = Event.from_record(record)
        assert not isinstance(event, str)
        fired.extend(f.rule_id for f in detector.process(event))
    assert not fired, fired
    assert not detector.stats.rule_errors


# --- allowed accounts, through the configuration file's shape --------------------------------------------


@pytest.mark.parametrize(
    "rule_id", ["ebs-snapshot-shared-externally", "iam-role-trust-policy-opened-to-external-account"]
)
def test_allowed_accounts_from_configuration(rule_id: str) -> None:
    allowed = Config.from_dict({"rules": {rule_id: {"allowed_accounts": [OTHER_ACCOUNT]}}})
    assert fires(rule_id, ATTACKS[rule_id]) == 1
    assert fires(rule_id, ATTACKS[rule_id], config=allowed) == 0
    other = Config.from_dict({"rules": {rule_id: {"allowed_accounts": ["999988887777"]}}})
    assert fires(rule_id, ATTACKS[rule_id], config=other) == 1


def test_instance_networks_from_configuration() -> None:
    rule_id = "ec2-instance-credentials-used-outside-instance"
    nat = Config.from_dict({"rules": {rule_id: {"instance_networks": ["81.2.69.0/24"]}}})
    assert fires(rule_id, ATTACKS[rule_id], config=nat) == 0
    elsewhere = {**ATTACKS[rule_id], "sourceIPAddress": "5.6.7.8"}
    assert fires(rule_id, elsewhere, config=nat) == 1


@pytest.mark.parametrize("source", ["10.0.1.25", "AWS Internal", "ec2.amazonaws.com", "not-an-ip", ""])
def test_instance_credentials_from_inside_or_unknown_source_are_quiet(source: str) -> None:
    partial = {**ATTACKS["ec2-instance-credentials-used-outside-instance"], "sourceIPAddress": source}
    assert fires("ec2-instance-credentials-used-outside-instance", partial) == 0


def test_instance_credentials_ignore_ordinary_and_lambda_sessions() -> None:
    rule_id = "ec2-instance-credentials-used-outside-instance"
    for identity in (role_session("deploy", "i-am-a-person"), role_session("fn", "my-function"), iam_user()):
        assert fires(rule_id, {**ATTACKS[rule_id], "userIdentity": identity}) == 0


# --- evasive variants still fire -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "principal",
    [
        {"AWS": OTHER_ACCOUNT},
        {"AWS": [f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{OTHER_ACCOUNT}:user/x"]},
        {"AWS": "*"},
        "*",
    ],
)
def test_trust_policy_principal_shapes(principal: Any) -> None:
    doc = trust_doc(principal)
    for text_form in (doc, urllib.parse.quote(doc)):
        update = call("iam.amazonaws.com", "UpdateAssumeRolePolicy", {"roleName": "r", "policyDocument": text_form})
        assert fires("iam-role-trust-policy-opened-to-external-account", update) == 1


def test_trust_policy_deny_statement_is_not_a_grant() -> None:
    doc = json.dumps({"Statement": [{"Effect": "Deny", "Principal": {"AWS": OTHER_ACCOUNT}, "Action": "sts:*"}]})
    update = call("iam.amazonaws.com", "UpdateAssumeRolePolicy", {"roleName": "r", "policyDocument": doc})
    assert fires("iam-role-trust-policy-opened-to-external-account", update) == 0


def test_lambda_permission_for_account_arn() -> None:
    record = call(
        "lambda.amazonaws.com",
        "AddPermission20150331",
        {"functionName": "f", "principal": f"arn:aws:iam::{OTHER_ACCOUNT}:root", "action": "lambda:*"},
    )
    assert fires("lambda-function-policy-opened-externally", record) == 1
    same = copy.deepcopy(record)
    same["requestParameters"]["principal"] = ACCOUNT
    assert fires("lambda-function-policy-opened-externally", same) == 0


def test_public_ami_and_rds_shares() -> None:
    ami = call(EC2, "ModifyImageAttribute", {"imageId": "ami-1", "launchPermission": {"add": [{"group": "all"}]}})
    assert fires("ec2-ami-shared-publicly-or-externally", ami) == 1
    rds = call(
        "rds.amazonaws.com",
        "ModifyDBSnapshotAttribute",
        {"attributeName": "restore", "dBSnapshotIdentifier": "s", "valuesToAdd": ["All"]},
    )
    findings = run_events(PACK["rds-snapshot-shared-externally"], [rds])
    assert len(findings) == 1 and findings[0].context["public"] is True
    own = copy.deepcopy(rds)
    own["requestParameters"]["valuesToAdd"] = [ACCOUNT]
    assert fires("rds-snapshot-shared-externally", own) == 0


def test_org_share_flagged_only_outside_configured_organizations() -> None:
    org = f"arn:aws:organizations::{OTHER_ACCOUNT}:organization/o-evil"
    ami = call(
        EC2,
        "ModifyImageAttribute",
        {"imageId": "ami-1", "launchPermission": {"add": {"items": [{"organizationArn": org}]}}},
    )
    assert fires("ec2-ami-shared-publicly-or-externally", ami) == 0
    ours = {"allowed_organizations": [f"arn:aws:organizations::{ACCOUNT}:organization/o-good"]}
    assert fires("ec2-ami-shared-publicly-or-externally", ami, params=ours) == 1


def test_bulk_secret_retrieval_needs_many_ids_or_a_filter() -> None:
    def batch(n: int) -> dict[str, Any]:
        return call(
            "secretsmanager.amazonaws.com", "BatchGetSecretValue", {"secretIdList": [f"s{i}" for i in range(n)]}
        )

    assert fires("secretsmanager-mass-secret-retrieval", batch(9)) == 0
    assert fires("secretsmanager-mass-secret-retrieval", batch(10)) == 1
    assert fires("secretsmanager-mass-secret-retrieval", batch(5), params={"min_secret_ids": 5}) == 1


def test_long_term_key_secret_reads_only() -> None:
    read = call("secretsmanager.amazonaws.com", "GetSecretValue", {"secretId": "prod/db"})
    assert fires("secretsmanager-secret-read-with-long-term-key", read) == 1
    root = {
        **read,
        "userIdentity": {
            "type": "Root",
            "arn": f"arn:aws:iam::{ACCOUNT}:root",
            "accountId": ACCOUNT,
            "principalId": ACCOUNT,
            "accessKeyId": "AKIAROOTKEY",
        },
    }
    assert fires("secretsmanager-secret-read-with-long-term-key", root) == 1
    temporary = {**read, "userIdentity": iam_user(key="ASIATEMPORARYKEY")}
    assert fires("secretsmanager-secret-read-with-long-term-key", temporary) == 0


def test_selectors_keeping_write_management_events_are_quiet() -> None:
    record = call(
        "cloudtrail.amazonaws.com",
        "PutEventSelectors",
        {"trailName": "t", "eventSelectors": [{"includeManagementEvents": True, "readWriteType": "WriteOnly"}]},
    )
    assert fires("cloudtrail-event-selectors-reduce-logging", record) == 0
    record["requestParameters"]["eventSelectors"][0]["readWriteType"] = "ReadOnly"
    assert fires("cloudtrail-event-selectors-reduce-logging", record) == 1


def test_send_command_targets_by_tag_and_custom_shell_documents() -> None:
    record = call(
        "ssm.amazonaws.com",
        "SendCommand",
        {"documentName": "AWS-RunPowerShellScript", "targets": [{"key": "tag:Role", "values": ["web"]}]},
    )
    findings = run_events(PACK["ssm-send-command-to-instances"], [record])
    assert len(findings) == 1 and findings[0].resources == ("tag:Role=web",)
    custom = copy.deepcopy(record)
    custom["requestParameters"]["documentName"] = "Ops-RestartNginx"
    assert fires("ssm-send-command-to-instances", custom) == 0
    assert fires("ssm-send-command-to-instances", custom, params={"command_documents": ["Ops-RestartNginx"]}) == 1


def test_credential_changes_on_oneself_are_quiet() -> None:
    for rule_id, name in (
        ("iam-access-key-created-for-another-user", "CreateAccessKey"),
        ("iam-login-profile-created-for-another-user", "CreateLoginProfile"),
        ("iam-login-profile-updated-for-another-user", "UpdateLoginProfile"),
    ):
        own = call("iam.amazonaws.com", name, {"userName": "bob"}, userIdentity=iam_user("bob"))
        other = call("iam.amazonaws.com", name, {"userName": "carol"}, userIdentity=iam_user("bob"))
        assert fires(rule_id, own) == 0, rule_id
        assert fires(rule_id, other) == 1, rule_id


# --- robustness and hygiene ------------------------------------------------------------------------------

HOSTILE = [None, 7, -1.5, True, "x" * 300, "", [], [None, 3, {"a": None}], {}, {"items": "nope"}, {"add": 1}]


def test_hostile_field_types_never_raise() -> None:
    """Every corpus record the attack rules read, with each request/response/identity field replaced by
    values of the wrong type: no rule raises."""
    rules = attack_rules()
    wanted = {(src, name) for r in rules for src, names in r.events.items() for name in (names or ())}
    detector = Detector(rules=rules)
    corpus = [r for p in sorted(STRATUS.glob("*.json")) for r in json.loads(p.read_text())]
    samples = {(r["eventSource"], r["eventName"]): r for r in corpus if (r["eventSource"], r["eventName"]) in wanted}
    samples.update({(a["eventSource"], a["eventName"]): complete_record(a) for a in ATTACKS.values()})
    count = 0
    for record in samples.values():
        for section in ("requestParameters", "responseElements", "userIdentity", "additionalEventData"):
            base = record.get(section)
            keys = list(base) if isinstance(base, dict) else []
            for value in HOSTILE:
                variants = [{**record, section: value}]
                variants += [{**record, section: {**base, k: value}} for k in keys]
                for variant in variants:
                    event = Event.from_record(variant)
                    assert not isinstance(event, str)
                    detector.process(event)
                    count += 1
    assert count > 1000
    assert not detector.stats.rule_errors, detector.stats.last_errors[:5]


# Attack rules whose question is about the caller, not the call, so they run on every event.
EVERY_EVENT = {"ec2-instance-credentials-used-outside-instance"}


def test_attack_rule_metadata_and_own_cases() -> None:
    rules = attack_rules()
    assert len(rules) >= 33
    for rule in rules:
        assert rule.description and rule.runbook and rule.title, rule.id
        assert all(ATTACK_ID.match(t) for t in rule.attack), (rule.id, rule.attack)
        if rule.id not in EVERY_EVENT:
            assert "*" not in rule.events and all(names for names in rule.events.values()), f"{rule.id}: wildcard"
        assert not rule.id.startswith("cis-")
    report = run_rules(rules)
    assert not report.problems, report.problems
    failures = [(r.rule_id, r.case, r.expected, r.got, r.error) for r in report.failures]
    assert not failures, failures


def test_rules_do_not_key_on_the_corpus() -> None:
    """No rule source names the red-team tool, its tags, or the corpus' fake accounts and regions."""
    corpus_accounts = set()
    corpus_regions = set()
    for path in STRATUS.glob("*.json"):
        for record in json.loads(path.read_text()):
            corpus_accounts.add(record.get("recipientAccountId"))
            corpus_regions.add(record.get("awsRegion"))
    for module in (*ATTACK_MODULES, "attack_common", "credential_harvesting"):
        source = (RULES_DIR / f"{module}.py").read_text()
        assert "stratus" not in source.lower(), module
        leaked = {a for a in corpus_accounts | corpus_regions if a and a in source}
        assert not leaked, (module, leaked)


def test_secret_harvesting_counts_across_sessions_of_one_role() -> None:
    """Fresh sessions of the same role do not reset the count: the key is the role, not the session."""
    from pipeline.cases import at

    reads = [
        call(
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            {"secretId": f"prod/s{i}"},
            eventTime=at(i * 0.3),
            userIdentity=role_session("stolen", f"session-{i}"),
        )
        for i in range(10)
    ]
    assert len(run_events(PACK["secretsmanager-secret-harvesting"], reads)) == 1
    assert len(run_events(PACK["secretsmanager-secret-harvesting"], reads[:9])) == 0


@pytest.mark.parametrize(
    ("condition", "opened"),
    [
        ({"StringEquals": {"sts:ExternalId": "x"}}, True),
        ({"StringLike": {"aws:PrincipalArn": "*"}}, True),
        ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/deploy"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/?i"}}, True),
        ({"StringNotEquals": {"aws:PrincipalAccount": OTHER_ACCOUNT}}, True),
        ({"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc"}}, True),
        ({"ForAllValues:StringEquals": {"aws:PrincipalOrgID": "o-abc"}}, True),
        ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, True),
        ({"StringEquals": {"aws:PrincipalOrgID": []}}, True),
        ({"StringEquals": {"aws:PrincipalAccount": OTHER_ACCOUNT}}, True),
        ({"StringEquals": {"AWS:PrincipalOrgId": "o-abc"}}, False),
        ({"stringequals": {"aws:SourceAccount": ACCOUNT}}, False),
        ({"StringEquals": {"aws:PrincipalAccount": [ACCOUNT]}, "IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}, False),
        ({"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/ci"}}, False),
    ],
    ids=[
        "external id only",
        "ARN like *",
        "ARN with an account wildcard",
        "ARN with ?",
        "negation",
        "IfExists",
        "ForAllValues",
        "source address",
        "no values",
        "foreign account pinned",
        "organization (key case)",
        "own source account",
        "own account and any address",
        "own role",
    ],
)
def test_trust_policy_open_to_anyone_unless_a_condition_pins_the_caller(
    condition: dict[str, Any], opened: bool
) -> None:
    update = call(
        "iam.amazonaws.com",
        "UpdateAssumeRolePolicy",
        {"roleName": "r", "policyDocument": trust_doc({"AWS": "*"}, condition)},
    )
    assert fires("iam-role-trust-policy-opened-to-external-account", update) == int(opened)
