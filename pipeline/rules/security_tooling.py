"""Security tooling: did someone turn off or blind GuardDuty, Security Hub, Macie, IAM Access Analyzer,
Inspector or a WAF web ACL, silence their findings, or disable the EventBridge rules that act on them?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, call, service_linked
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.change_common import by_person, change_hit, first_text
from pipeline.rules.forms import with_denied

GUARDDUTY = "guardduty.amazonaws.com"
SECURITYHUB = "securityhub.amazonaws.com"
MACIE = "macie2.amazonaws.com"
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"
TOOL_RUNBOOK = (
    "Security tooling was turned off or told to ignore something. Ask the principal's owner at once; if not "
    "planned, turn it back on (or remove the filter, list or rule), review the findings it would have shown "
    "since the change, and treat the principal as compromised: disabling detection usually comes just before "
    "the real action."
)
TOOL_PARAMS = {"include_failed": True}


def mentions(value: Any, words: frozenset[str], depth: int = 0) -> str:
    """The first string of a request (however nested) equal to one of `words` (case-insensitive), else ""."""
    if type(value) is str:
        return value if value.upper() in words else ""
    if depth > 6:
        return ""
    children = list(value.values())[:50] if type(value) is dict else items(value)[:100]
    for child in children:
        found = mentions(child, words, depth + 1)
        if found:
            return found
    return ""


def _off(e: Event, p: Params, what: str, *fields: str) -> Hit | None:
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, f"{what} ({e.name}):", first_text(e, *fields) or e.region)


def _detector_off(e: Event) -> bool:
    """UpdateDetector that disables the detector or one of its protections (data sources or features)."""
    request = e.request
    if request.get("enable") is False:
        return True
    sources = mapping(request.get("dataSources"))
    if any(mapping(v).get("enable") is False for v in sources.values()) or mentions(sources, frozenset({"DISABLED"})):
        return True
    return any(text(mapping(f).get("status")) == "DISABLED" for f in items(request.get("features"))[:20])


@match(
    id="guardduty-detector-disabled",
    title="GuardDuty detector deleted, suspended or cut off from its administrator",
    severity="high",
    attack="T1562.001",
    events={
        GUARDDUTY: [
            "DeleteDetector",
            "UpdateDetector",
            "DisassociateFromMasterAccount",
            "DisassociateFromAdministratorAccount",
            "DeleteMembers",
            "DisassociateMembers",
            "StopMonitoringMembers",
        ]
    },
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "detector deleted",
            call(GUARDDUTY, "DeleteDetector", {"detectorId": DETECTOR}),
            failed_expect=1,
            failed_why="trying to blind detection is the behaviour",
        ),
        Case(
            "detector suspended", call(GUARDDUTY, "UpdateDetector", {"detectorId": DETECTOR, "enable": False}), expect=1
        ),
        Case(
            "S3 protection turned off",
            call(
                GUARDDUTY,
                "UpdateDetector",
                {"detectorId": DETECTOR, "features": [{"name": "S3_DATA_EVENTS", "status": "DISABLED"}]},
            ),
            expect=1,
        ),
        Case(
            "member account leaves its administrator",
            call(GUARDDUTY, "DisassociateFromAdministratorAccount", {"detectorId": DETECTOR}),
            expect=1,
        ),
        Case(
            "publishing frequency changed",
            call(
                GUARDDUTY,
                "UpdateDetector",
                {"detectorId": DETECTOR, "enable": True, "findingPublishingFrequency": "SIX_HOURS"},
            ),
            expect=0,
        ),
        Case("detector listed", call(GUARDDUTY, "ListDetectors"), expect=0),
    ],
)
def guardduty_detector_disabled(e: Event, p: Params) -> Hit | None:
    """GuardDuty's detector deleted or suspended (UpdateDetector enable false), one of its protections turned
    off, a member disassociated from (or by) its administrator, or members no longer monitored. Denied
    attempts count by default; calls AWS makes itself are not findings."""
    if e.name == "UpdateDetector" and not _detector_off(e):
        return None
    return _off(e, p, "GuardDuty turned off", "detectorId")


@match(
    id="guardduty-trusted-ip-or-threat-list-changed",
    title="GuardDuty trusted IP list or threat list changed",
    severity="high",
    attack="T1562.001",
    events={GUARDDUTY: ["CreateIPSet", "UpdateIPSet", "UpdateThreatIntelSet", "DeleteThreatIntelSet"]},
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "trusted IP list added",
            call(
                GUARDDUTY,
                "CreateIPSet",
                {
                    "detectorId": DETECTOR,
                    "name": "office",
                    "format": "TXT",
                    "activate": True,
                    "location": "https://s3.amazonaws.com/ip-lists-x1/trusted.txt",
                },
                {"ipSetId": "0cb0141ab9fbde177613ab9436212e90"},
            ),
            failed_expect=1,
            failed_why="trying to whitelist addresses is the behaviour",
        ),
        Case(
            "threat list deleted",
            call(GUARDDUTY, "DeleteThreatIntelSet", {"detectorId": DETECTOR, "threatIntelSetId": "0ab"}),
            expect=1,
        ),
        Case(
            "threat list added",
            call(GUARDDUTY, "CreateThreatIntelSet", {"detectorId": DETECTOR, "name": "feeds"}),
            expect=0,
        ),
    ],
)
def guardduty_trusted_ip_or_threat_list_changed(e: Event, p: Params) -> Hit | None:
    """A GuardDuty trusted IP list created or changed (GuardDuty raises no finding for traffic from trusted
    addresses, so an attacker adds their own), or a threat list changed or deleted. Adding a threat list is
    not a finding. Denied attempts count by default; calls AWS makes itself are not findings."""
    return _off(e, p, "GuardDuty list changed", "name", "ipSetId", "threatIntelSetId", "detectorId")


ARCHIVE = frozenset({"ARCHIVE", "ARCHIVED", "SUPPRESSED", "DISABLED"})


@match(
    id="guardduty-findings-suppressed",
    title="GuardDuty findings archived or auto-archived by a filter",
    severity="medium",
    attack="T1562.001",
    events={GUARDDUTY: ["ArchiveFindings", "CreateFilter", "UpdateFilter"]},
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "auto-archive filter created",
            call(
                GUARDDUTY,
                "CreateFilter",
                {
                    "detectorId": DETECTOR,
                    "name": "quiet",
                    "action": "ARCHIVE",
                    "findingCriteria": {"criterion": {"severity": {"gte": 1}}},
                },
            ),
            failed_expect=1,
            failed_why="trying to hide findings is the behaviour",
        ),
        Case(
            "findings archived",
            call(GUARDDUTY, "ArchiveFindings", {"detectorId": DETECTOR, "findingIds": ["a", "b", "c"]}),
            expect=1,
        ),
        Case(
            "filter that only labels findings",
            call(GUARDDUTY, "CreateFilter", {"detectorId": DETECTOR, "name": "tag", "action": "NOOP"}),
            expect=0,
        ),
    ],
)
def guardduty_findings_suppressed(e: Event, p: Params) -> Hit | None:
    """ArchiveFindings, or a filter created or changed with the ARCHIVE action (future matching findings
    are archived as they arrive). Analysts archive findings they have handled, hence medium. Denied attempts
    count by default; calls AWS makes itself are not findings."""
    if e.name != "ArchiveFindings" and text(e.request.get("action")).upper() != "ARCHIVE":
        return None
    return _off(e, p, "GuardDuty findings suppressed", "name", "detectorId")


@match(
    id="securityhub-disabled",
    title="Security Hub disabled, standards disabled or cut off from its administrator",
    severity="high",
    attack="T1562.001",
    events={
        SECURITYHUB: [
            "DisableSecurityHub",
            "BatchDisableStandards",
            "DisableImportFindingsForProduct",
            "DisassociateFromAdministratorAccount",
            "DisassociateFromMasterAccount",
            "DisassociateMembers",
            "DeleteMembers",
        ]
    },
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "Security Hub disabled",
            call(SECURITYHUB, "DisableSecurityHub"),
            failed_expect=1,
            failed_why="trying to blind detection is the behaviour",
        ),
        Case(
            "standards disabled",
            call(
                SECURITYHUB,
                "BatchDisableStandards",
                {
                    "StandardsSubscriptionArns": [
                        f"arn:aws:securityhub:us-east-1:{ACCOUNT}:subscription/cis-aws-foundations-benchmark/v/1.4.0"
                    ]
                },
            ),
            expect=1,
        ),
        Case(
            "GuardDuty findings no longer imported",
            call(
                SECURITYHUB,
                "DisableImportFindingsForProduct",
                {
                    "ProductSubscriptionArn": (
                        f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product-subscription/aws/guardduty"
                    )
                },
            ),
            expect=1,
        ),
        Case("Security Hub enabled", call(SECURITYHUB, "EnableSecurityHub"), expect=0),
    ],
)
def securityhub_disabled(e: Event, p: Params) -> Hit | None:
    """Security Hub disabled, its standards disabled, a product's findings (GuardDuty, Inspector ...) no
    longer imported, or an account disassociated from its administrator. Denied attempts count by default;
    calls AWS makes itself are not findings."""
    return _off(e, p, "Security Hub turned off", "ProductSubscriptionArn")


@match(
    id="securityhub-findings-suppressed",
    title="Security Hub findings suppressed, archived or a control disabled",
    severity="medium",
    attack="T1562.001",
    events={
        SECURITYHUB: [
            "BatchUpdateFindings",
            "UpdateFindings",
            "CreateAutomationRule",
            "BatchUpdateAutomationRules",
            "UpdateStandardsControl",
            "BatchUpdateStandardsControlAssociations",
        ]
    },
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "findings suppressed",
            call(
                SECURITYHUB,
                "BatchUpdateFindings",
                {
                    "FindingIdentifiers": [{"Id": "arn:aws:securityhub:us-east-1::finding/1", "ProductArn": "p"}],
                    "Workflow": {"Status": "SUPPRESSED"},
                },
            ),
            failed_expect=1,
            failed_why="trying to hide findings is the behaviour",
        ),
        Case(
            "automation rule suppressing everything",
            call(
                SECURITYHUB,
                "CreateAutomationRule",
                {
                    "RuleName": "quiet",
                    "RuleStatus": "ENABLED",
                    "Criteria": {},
                    "Actions": [
                        {"Type": "FINDING_FIELDS_UPDATE", "FindingFieldsUpdate": {"Workflow": {"Status": "SUPPRESSED"}}}
                    ],
                },
            ),
            expect=1,
        ),
        Case(
            "control disabled",
            call(
                SECURITYHUB,
                "UpdateStandardsControl",
                {"StandardsControlArn": "arn:aws:securityhub:...:control/cis/1.1", "ControlStatus": "DISABLED"},
            ),
            expect=1,
        ),
        Case(
            "finding marked notified",
            call(
                SECURITYHUB,
                "BatchUpdateFindings",
                {"FindingIdentifiers": [{"Id": "f1"}], "Workflow": {"Status": "NOTIFIED"}},
            ),
            expect=0,
        ),
    ],
)
def securityhub_findings_suppressed(e: Event, p: Params) -> Hit | None:
    """Findings set to SUPPRESSED (by hand or by an automation rule that will keep doing it), archived
    (UpdateFindings RecordState ARCHIVED), or a control disabled. Triage marks findings NOTIFIED or
    RESOLVED, which is not a finding. Denied attempts count by default; calls AWS makes itself are not
    findings."""
    what = mentions(e.raw.get("requestParameters"), ARCHIVE)
    if not what:
        return None
    return _off(e, p, f"Security Hub findings or controls set to {what.upper()}", "RuleName", "StandardsControlArn")


MACIE_EVENTS = [
    "DisableMacie",
    "UpdateMacieSession",
    "DisassociateFromAdministratorAccount",
    "DisassociateFromMasterAccount",
    "DeleteMember",
    "DisassociateMember",
    "DisableOrganizationAdminAccount",
    "CreateFindingsFilter",
    "UpdateFindingsFilter",
    "UpdateClassificationJob",
    "ArchiveFindings",
]


def _macie_weakened(e: Event) -> bool:
    request = e.request
    if e.name == "UpdateMacieSession":
        return text(request.get("status")).upper() == "PAUSED"
    if e.name in ("CreateFindingsFilter", "UpdateFindingsFilter"):
        return text(request.get("action")).upper() == "ARCHIVE"
    if e.name == "UpdateClassificationJob":
        return text(request.get("jobStatus")).upper() in ("CANCELLED", "USER_PAUSED")
    return True


@match(
    id="macie-disabled-or-findings-suppressed",
    title="Macie disabled, paused or its findings suppressed",
    severity="high",
    attack="T1562.001",
    events={MACIE: MACIE_EVENTS, "macie.amazonaws.com": MACIE_EVENTS},
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "Macie disabled",
            call(MACIE, "DisableMacie"),
            failed_expect=1,
            failed_why="trying to blind detection is the behaviour",
        ),
        Case("Macie paused", call(MACIE, "UpdateMacieSession", {"status": "PAUSED"}), expect=1),
        Case("archive filter", call(MACIE, "CreateFindingsFilter", {"name": "quiet", "action": "ARCHIVE"}), expect=1),
        Case(
            "discovery job cancelled",
            call(
                MACIE,
                "UpdateClassificationJob",
                {"jobId": "3ce05dbb7ec5505def334104bf113c4d", "jobStatus": "CANCELLED"},
            ),
            expect=1,
        ),
        Case(
            "publishing frequency changed",
            call(MACIE, "UpdateMacieSession", {"findingPublishingFrequency": "SIX_HOURS", "status": "ENABLED"}),
            expect=0,
        ),
        Case("members listed", call(MACIE, "ListMembers"), expect=0),
    ],
)
def macie_disabled_or_findings_suppressed(e: Event, p: Params) -> Hit | None:
    """Macie disabled or paused, an account cut off from its Macie administrator, an archive filter
    created or changed, a sensitive-data discovery job cancelled or paused, or findings archived. Denied
    attempts count by default; calls AWS makes itself are not findings."""
    if not _macie_weakened(e):
        return None
    return _off(e, p, "Macie turned off or silenced", "name", "jobId", "accountId")


@match(
    id="access-analyzer-deleted",
    title="IAM Access Analyzer deleted",
    severity="high",
    attack="T1562.001",
    events={"access-analyzer.amazonaws.com": ["DeleteAnalyzer"]},
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "analyzer deleted",
            call("access-analyzer.amazonaws.com", "DeleteAnalyzer", {"analyzerName": "org-analyzer"}),
            failed_expect=1,
            failed_why="trying to blind detection is the behaviour",
        ),
        Case(
            "analyzer created", call("access-analyzer.amazonaws.com", "CreateAnalyzer", {"analyzerName": "a"}), expect=0
        ),
    ],
)
def access_analyzer_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteAnalyzer: IAM Access Analyzer stops reporting resources shared outside the account or
    organization. Denied attempts count by default; calls AWS makes itself are not findings."""
    return _off(e, p, "Access Analyzer deleted", "analyzerName")


@match(
    id="inspector-disabled",
    title="Amazon Inspector disabled",
    severity="high",
    attack="T1562.001",
    events={"inspector2.amazonaws.com": ["Disable", "DisableDelegatedAdminAccount", "DisassociateMember"]},
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=TOOL_RUNBOOK,
    cases=[
        *with_denied(
            "scanning disabled",
            call(
                "inspector2.amazonaws.com",
                "Disable",
                {"accountIds": [ACCOUNT], "resourceTypes": ["EC2", "ECR", "LAMBDA"]},
            ),
            failed_expect=1,
            failed_why="trying to blind detection is the behaviour",
        ),
        Case("scanning enabled", call("inspector2.amazonaws.com", "Enable", {"resourceTypes": ["EC2"]}), expect=0),
    ],
)
def inspector_disabled(e: Event, p: Params) -> Hit | None:
    """Amazon Inspector (v2) scanning disabled for resource types or accounts, its delegated administrator
    removed, or a member disassociated. Denied attempts count by default; calls AWS makes itself are not
    findings."""
    return _off(e, p, "Inspector turned off", "delegatedAdminAccountId", "accountId")


WAF_EVENTS = ["DisassociateWebACL", "DeleteWebACL"]


@match(
    id="waf-web-acl-disassociated-or-deleted",
    title="WAF web ACL disassociated from a resource or deleted",
    severity="high",
    attack="T1562.001",
    events={
        "wafv2.amazonaws.com": WAF_EVENTS,
        "waf-regional.amazonaws.com": WAF_EVENTS,
        "waf.amazonaws.com": ["DeleteWebACL"],
    },
    params=TOOL_PARAMS,
    dedup="1h",
    runbook=(
        "The application behind the web ACL is now exposed without its filtering. Re-associate the web ACL (or "
        "restore it from infrastructure code), check the application's logs since, and ask the principal's owner."
    ),
    cases=[
        *with_denied(
            "web ACL removed from a load balancer",
            call(
                "wafv2.amazonaws.com",
                "DisassociateWebACL",
                {
                    "resourceArn": (
                        f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/app/web/84dc5457e450dba5"
                    )
                },
            ),
            failed_expect=1,
            failed_why="trying to drop the protection is the behaviour",
        ),
        Case(
            "web ACL deleted",
            call("wafv2.amazonaws.com", "DeleteWebACL", {"name": "web", "scope": "REGIONAL", "id": "a1b2"}),
            expect=1,
        ),
        Case(
            "Firewall Manager managing the association",
            {
                **call("wafv2.amazonaws.com", "DisassociateWebACL", {"resourceArn": "arn"}),
                "userIdentity": service_linked("fms", "AWSServiceRoleForFMS"),
            },
            expect=0,
        ),
        Case("web ACLs listed", call("wafv2.amazonaws.com", "ListWebACLs", {"scope": "REGIONAL"}), expect=0),
    ],
)
def waf_web_acl_disassociated_or_deleted(e: Event, p: Params) -> Hit | None:
    """A WAF web ACL disassociated from a load balancer, API or distribution, or deleted (WAFv2, WAF
    Regional and classic WAF). Denied attempts count by default; Firewall Manager and other AWS services
    acting themselves are not findings."""
    return _off(e, p, "WAF protection removed", "resourceArn", "ResourceArn", "name", "webACLId")


@match(
    id="eventbridge-rule-disabled-or-deleted",
    title="EventBridge rule disabled or deleted",
    severity="low",
    attack="T1562.001",
    events={"events.amazonaws.com": ["DisableRule", "DeleteRule"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "EventBridge rules route security findings and trigger automated responses. Check the rule's purpose; "
        "if it fed alerting or remediation, restore it and review what it would have caught."
    ),
    cases=[
        *with_denied(
            "rule disabled",
            call("events.amazonaws.com", "DisableRule", {"name": "guardduty-to-pagerduty"}),
            failed_expect=0,
            failed_why="the rule still runs",
        ),
        Case("rule deleted", call("events.amazonaws.com", "DeleteRule", {"name": "config-remediation"}), expect=1),
        Case("rule enabled", call("events.amazonaws.com", "EnableRule", {"name": "x"}), expect=0),
    ],
)
def eventbridge_rule_disabled_or_deleted(e: Event, p: Params) -> Hit | None:
    """DisableRule or DeleteRule on EventBridge: deployments do this routinely (hence low), but a rule that
    forwards findings or triggers remediation is part of the detection path. Only successful calls count
    by default; calls AWS makes itself are not findings."""
    return _off(e, p, "EventBridge rule off", "name")
