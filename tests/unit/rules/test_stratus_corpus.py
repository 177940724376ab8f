"""Every Stratus Red Team technique (the corpus in tests/fixtures/stratus-red-team) is found by its rule.

The whole built-in pack runs over each file (real CloudTrail from real detonations). A technique only
counts as detected when the rule written for that behaviour fires, not a catch-all change-monitoring
rule. The same files with the tool's names and user agent rewritten must give the same result, so no
rule depends on the corpus rather than on the behaviour.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.rules import builtin_rules
from tests.support.corpus import STRATUS

# technique (file name without .json) -> the rule meant to detect it
EXPECTED: dict[str, str] = {
    "aws.credential-access.ec2-get-password-data": "ec2-password-data-retrieved",
    "aws.credential-access.ec2-steal-instance-credentials": "ec2-instance-credentials-used-outside-instance",
    "aws.credential-access.secretsmanager-batch-retrieve-secrets": "secretsmanager-mass-secret-retrieval",
    "aws.credential-access.secretsmanager-retrieve-secrets": "secretsmanager-secret-harvesting",
    "aws.credential-access.ssm-retrieve-securestring-parameters": "ssm-bulk-securestring-parameter-retrieval",
    "aws.defense-evasion.cloudtrail-delete": "cloudtrail-trail-deleted",
    "aws.defense-evasion.cloudtrail-event-selectors": "cloudtrail-event-selectors-reduce-logging",
    "aws.defense-evasion.cloudtrail-stop": "cloudtrail-logging-stopped",
    "aws.defense-evasion.dns-delete-logs": "route53-resolver-query-logging-deleted",
    "aws.defense-evasion.organizations-leave": "organizations-leave-attempted",
    "aws.defense-evasion.vpc-remove-flow-logs": "vpc-flow-logs-deleted",
    "aws.discovery.ec2-download-user-data": "ec2-instance-user-data-read",
    "aws.execution.ec2-launch-unusual-instances": "ec2-unusual-instance-type-launched",
    "aws.execution.ec2-user-data": "ec2-instance-user-data-modified",
    "aws.execution.ssm-send-command": "ssm-send-command-to-instances",
    "aws.execution.ssm-start-session": "ssm-session-started",
    "aws.exfiltration.ec2-security-group-open-port-22-ingress": "ec2-security-group-open-to-internet",
    "aws.exfiltration.ec2-share-ami": "ec2-ami-shared-publicly-or-externally",
    "aws.exfiltration.ec2-share-ebs-snapshot": "ebs-snapshot-shared-externally",
    "aws.exfiltration.rds-share-snapshot": "rds-snapshot-shared-externally",
    "aws.impact.bedrock-invoke-model": "bedrock-model-access-enabled",
    "aws.initial-access.console-login-without-mfa": "console-login-without-mfa",
    "aws.lateral-movement.ec2-instance-connect": "ec2-instance-connect-ssh-key-pushed",
    "aws.lateral-movement.ec2-serial-console-send-ssh-public-key": "ec2-serial-console-access",
    "aws.persistence.iam-backdoor-role": "iam-role-trust-policy-opened-to-external-account",
    "aws.persistence.iam-backdoor-user": "iam-access-key-created-for-another-user",
    "aws.persistence.iam-create-admin-user": "iam-admin-policy-attached",
    "aws.persistence.iam-create-backdoor-role": "iam-role-trust-policy-opened-to-external-account",
    "aws.persistence.iam-create-user-login-profile": "iam-login-profile-created-for-another-user",
    "aws.persistence.lambda-backdoor-function": "lambda-function-policy-opened-externally",
    "aws.persistence.lambda-layer-extension": "lambda-layer-added-to-function",
    "aws.persistence.lambda-overwrite-code": "lambda-function-code-updated",
    "aws.persistence.rolesanywhere-create-trust-anchor": "iam-roles-anywhere-trust-anchor-created",
    "aws.persistence.sts-federation-token": "sts-federation-token-created",
    "aws.privilege-escalation.iam-update-user-login-profile": "iam-login-profile-updated-for-another-user",
}

# What the tool leaves in names and user agents, and neutral replacements (same length class, no hint).
REWRITES = (
    ("stratus-red-team", "acme-payments-prod"),
    ("stratus_red_team", "acme_payments"),
    ("StratusRedTeam", "CostCenter"),
    ("malicious", "nightly"),
    ("backdoor", "frontend"),
)
CLI_AGENT = "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.11.9"


def load(technique: str) -> list[dict[str, Any]]:
    records = json.loads((STRATUS / f"{technique}.json").read_text())
    assert isinstance(records, list) and records, f"{technique}: not a non-empty JSON array"
    return records


def disguise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records with the tool's names and user agent replaced by ordinary ones."""
    raw = json.dumps(records)
    for old, new in REWRITES:
        raw = raw.replace(old, new)
    out = json.loads(raw)
    for record in out:
        record["userAgent"] = CLI_AGENT
    return out


def scan(records: list[dict[str, Any]]) -> tuple[list[Finding], Detector]:
    detector = Detector()
    findings: list[Finding] = []
    for index, record in enumerate(records):
        event = Event.from_record(record, f"record {index}")
        assert not isinstance(event, str), f"record {index} is not usable: {event}"
        findings.extend(detector.process(event))
    findings.extend(detector.finish())
    return findings, detector


@pytest.fixture(scope="module")
def pack_ids() -> set[str]:
    return {r.id for r in builtin_rules()}


def test_corpus_is_present_and_fully_mapped() -> None:
    files = {p.stem for p in STRATUS.glob("*.json")}
    assert len(files) == 35, f"expected 35 technique files in {STRATUS}, found {len(files)}"
    assert files == set(EXPECTED), f"unmapped: {sorted(files - set(EXPECTED))}; stale: {sorted(set(EXPECTED) - files)}"


def test_meant_rules_are_specific_and_in_the_pack(pack_ids: set[str]) -> None:
    assert not [r for r in EXPECTED.values() if r.startswith("cis-")], "a CIS catch-all is not a technique rule"
    missing = sorted(set(EXPECTED.values()) - pack_ids)
    assert not missing, f"rules missing from the built-in pack: {missing}"


@pytest.mark.parametrize("technique", sorted(EXPECTED))
def test_technique_detected_by_its_rule(technique: str) -> None:
    findings, detector = scan(load(technique))
    fired = {f.rule_id for f in findings}
    assert EXPECTED[technique] in fired, f"{technique}: {EXPECTED[technique]} did not fire; fired: {sorted(fired)}"
    assert not detector.stats.rule_errors, detector.stats.last_errors


@pytest.mark.parametrize("technique", sorted(EXPECTED))
def test_detection_does_not_depend_on_tool_names(technique: str) -> None:
    records = disguise(load(technique))
    assert "stratus" not in json.dumps(records).lower()
    findings, detector = scan(records)
    assert EXPECTED[technique] in {f.rule_id for f in findings}
    assert not detector.stats.rule_errors, detector.stats.last_errors


def test_meant_finding_names_the_actor_and_event() -> None:
    findings, _ = scan(load("aws.exfiltration.ec2-share-ebs-snapshot"))
    (finding,) = [f for f in findings if f.rule_id == "ebs-snapshot-shared-externally"]
    record = load("aws.exfiltration.ec2-share-ebs-snapshot")[0]
    assert finding.event_ids == (record["eventID"],)
    assert finding.principal == record["userIdentity"]["arn"]
    assert finding.resources == (record["requestParameters"]["snapshotId"],)
    assert finding.context["recipients"] == ["098797384747"]
