"""AWS Security Hub: findings as ASFF through BatchImportFindings, Id = the finding id.

A digest re-imports the same Id (a later UpdatedAt, the count in ProductFields); a resolution re-imports it
with Workflow.Status RESOLVED and RecordState ARCHIVED. Types come from the ATT&CK tactics of the rule's
techniques. Every text is bounded to ASFF's limits (Title 256, Description 1024, ProductFields values 2048,
at most 32 resources and 50 product fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consumers.destinations.base import RESOLVED, DeliveryError, occurrences, status, strings, text, updated_at
from consumers.sinks.retry import error_code, is_transient
from pipeline.attack import tactic

_LABEL = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW", "info": "INFORMATIONAL"}
_EFFECTS = {
    "T1485": "Data Destruction",
    "T1486": "Data Destruction",
    "T1490": "Data Destruction",
    "T1496": "Resource Consumption",
}  # other Impact techniques: Denial of Service
_TTP_TACTICS = {
    "Initial Access",
    "Execution",
    "Persistence",
    "Privilege Escalation",
    "Defense Evasion",
    "Credential Access",
    "Discovery",
    "Lateral Movement",
    "Collection",
    "Command and Control",
}


def finding_types(techniques: list[str]) -> list[str]:
    """ASFF Types: "TTPs/<tactic>/<technique>", or "Effects/<effect>/<technique>" for exfiltration and impact."""
    out: list[str] = []
    for technique in techniques:
        found = tactic(technique)
        if found is None:
            continue
        _, name = found
        if name in _TTP_TACTICS:
            kind = f"TTPs/{name}"
        elif name == "Exfiltration":
            kind = "Effects/Data Exfiltration"
        else:
            kind = "Effects/" + _EFFECTS.get(technique.split(".")[0], "Denial of Service")
        value = f"{kind}/{technique}"
        if value not in out:
            out.append(value)
    return out[:50] or ["Unusual Behaviors/User"]


def resource(value: str, region: str) -> dict[str, Any]:
    kind = (
        "AwsIamUser"
        if ":user/" in value
        else "AwsIamRole"
        if ":role/" in value
        else "AwsS3Bucket"
        if value.startswith("arn:aws:s3:::")
        else "AwsEc2Instance"
        if value.startswith("i-")
        else "Other"
    )
    out: dict[str, Any] = {"Type": kind, "Id": text(value, 512) or "unknown"}
    if region:
        out["Region"] = region
    return out


def asff(finding: dict[str, Any], product_account: str, product_region: str) -> dict[str, Any]:
    """The ASFF document of this delivery of the finding."""
    account = text(finding.get("account", ""), 12) or product_account
    region = text(finding.get("region", ""), 30) or product_region
    resolved = status(finding) == RESOLVED
    resources = [resource(r, region) for r in strings(finding.get("resources"), 512, 32)]
    fields = {
        "trailwarden/rule_id": text(finding.get("rule_id", ""), 2048),
        "trailwarden/principal": text(finding.get("principal", ""), 2048),
        "trailwarden/source_ip": text(finding.get("source_ip", ""), 2048),
        "trailwarden/occurrences": str(occurrences(finding)),
        "trailwarden/status": status(finding),
        "trailwarden/event_ids": text(",".join(strings(finding.get("event_ids"), 100, 20)), 2048),
    }
    if resolved:
        fields["trailwarden/resolution"] = text(finding.get("resolution", ""), 2048)
    return {
        "SchemaVersion": "2018-10-08",
        "Id": text(finding.get("id", ""), 512),
        "ProductArn": f"arn:aws:securityhub:{product_region}:{product_account}:product/{product_account}/default",
        "GeneratorId": text(f"trailwarden/{text(finding.get('rule_id', ''), 400)}", 512),
        "AwsAccountId": account,
        "Region": region,
        "Types": finding_types(strings(finding.get("attack"), 20, 50)),
        "FirstObservedAt": text(finding.get("event_time", ""), 32),
        "CreatedAt": text(finding.get("detected_at", "") or updated_at(finding), 32),
        "UpdatedAt": updated_at(finding),
        "Severity": {"Label": _LABEL.get(str(finding.get("severity")), "MEDIUM")},
        "Title": text(finding.get("title", ""), 256) or "trailwarden finding",
        "Description": text(finding.get("summary", "") or finding.get("title", ""), 1024) or "trailwarden finding",
        "Resources": resources or [{"Type": "AwsAccount", "Id": f"AWS::::Account:{account}"}],
        "ProductFields": {k: v for k, v in fields.items() if v},
        "Workflow": {"Status": "RESOLVED" if resolved else "NEW"},
        "RecordState": "ARCHIVED" if resolved else "ACTIVE",
    }


class SecurityHubDestination:
    """`account`: where the product ARN lives; if empty, `account_of()` is asked at the first send."""

    def __init__(
        self, name: str, client: Any, account: str, region: str, account_of: Callable[[], str] | None = None
    ) -> None:
        self.name = name
        self.client = client
        self.account = account
        self.region = region
        self._account_of = account_of

    def send(self, finding: dict[str, Any]) -> None:
        try:
            if not self.account and self._account_of is not None:
                self.account = self._account_of()
            response = self.client.batch_import_findings(Findings=[asff(finding, self.account, self.region)])
        except Exception as exc:  # botocore's errors: throttling and 5xx are transient
            raise DeliveryError(
                f"securityhub destination {self.name!r}: {error_code(exc) or type(exc).__name__}",
                transient=is_transient(exc),
            ) from None
        if response.get("FailedCount"):
            failed = (response.get("FailedFindings") or [{}])[0]
            raise DeliveryError(
                f"securityhub destination {self.name!r}: {text(failed.get('ErrorCode'), 100)}",
                transient="Throttl" in str(failed.get("ErrorCode")),
            )
