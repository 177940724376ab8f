"""Logging controls beyond the trail itself: did someone turn off S3 server access logging, delete or
shorten the CloudWatch Logs group the trail writes to (or its subscription, this pipeline's feed),
delete Bedrock's model invocation logging, or delete a Bedrock guardrail?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, call
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.change_common import by_person, change_hit, matches_any
from pipeline.rules.forms import with_denied

S3 = "s3.amazonaws.com"
LOGS = "logs.amazonaws.com"
BEDROCK = "bedrock.amazonaws.com"
LOGGING_RUNBOOK = (
    "Confirm with the principal's owner whether the change was planned. If not: restore the logging from "
    "infrastructure code at once, treat the principal as compromised (revoke sessions, deactivate keys) and "
    "review what happened during the gap in the records that remain."
)


def _bucket_logging(enabled: bool) -> dict[str, Any]:
    status: dict[str, Any] = {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"}
    if enabled:
        status["LoggingEnabled"] = {"TargetBucket": "access-logs-111122223333", "TargetPrefix": "customer-data/"}
    return call(S3, "PutBucketLogging", {"bucketName": "customer-data", "BucketLoggingStatus": status, "logging": ""})


@match(
    id="s3-server-access-logging-disabled",
    title="S3 server access logging turned off for a bucket",
    severity="medium",
    attack="T1562.008",
    events={S3: ["PutBucketLogging"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=LOGGING_RUNBOOK,
    cases=[
        *with_denied(
            "access logging turned off",
            _bucket_logging(False),
            failed_expect=1,
            failed_why="trying to stop the logs is the behaviour",
        ),
        Case("access logging turned on", _bucket_logging(True), expect=0),
    ],
)
def s3_server_access_logging_disabled(e: Event, p: Params) -> Hit | None:
    """PutBucketLogging with no LoggingEnabled element: the bucket's server access logs (every request,
    including the object-level ones a trail may not record) stop. Denied attempts count by default; calls
    AWS makes itself are not findings."""
    status = e.request.get("BucketLoggingStatus")
    if type(status) is not dict or "LoggingEnabled" in status or not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Server access logging turned off for bucket", e.text("requestParameters", "bucketName"))


TRAIL_LOG_GROUPS = ["*cloudtrail*", "aws-controltower/CloudTrailLogs"]


def _log_group(name: str, group: str = "aws-cloudtrail-logs-111122223333-org", **request: Any) -> dict[str, Any]:
    return call(LOGS, name, {"logGroupName": group, **request})


@match(
    id="trail-log-group-deleted-or-retention-cut",
    title="CloudWatch Logs group of the trail deleted, its retention cut or its subscription removed",
    severity="high",
    attack="T1562.008",
    events={LOGS: ["DeleteLogGroup", "PutRetentionPolicy", "DeleteSubscriptionFilter"]},
    params={"trail_log_groups": TRAIL_LOG_GROUPS, "min_retention_days": 30, "include_failed": True},
    dedup="1h",
    runbook=LOGGING_RUNBOOK,
    cases=[
        *with_denied(
            "trail log group deleted",
            _log_group("DeleteLogGroup"),
            failed_expect=1,
            failed_why="trying to erase the logs is the behaviour",
        ),
        Case("retention cut to a day", _log_group("PutRetentionPolicy", retentionInDays=1), expect=1),
        Case(
            "subscription feeding detection removed",
            _log_group("DeleteSubscriptionFilter", filterName="trailwarden"),
            expect=1,
        ),
        Case(
            "a team's own trail log group name",
            _log_group("DeleteLogGroup", "org-audit/api"),
            expect=1,
            params={"trail_log_groups": ["org-audit/*"]},
        ),
        Case("retention set to a year", _log_group("PutRetentionPolicy", retentionInDays=365), expect=0),
        Case("an application's log group deleted", _log_group("DeleteLogGroup", "/aws/lambda/thumbnailer"), expect=0),
    ],
)
def trail_log_group_deleted_or_retention_cut(e: Event, p: Params) -> Hit | None:
    """On a log group matching `trail_log_groups` (shell patterns; the group a trail delivers to, e.g.
    aws-cloudtrail-logs-*): DeleteLogGroup, PutRetentionPolicy below `min_retention_days`, or
    DeleteSubscriptionFilter, which also cuts the subscription that feeds this pipeline. Denied attempts
    count by default; calls AWS makes itself are not findings."""
    group = e.text("requestParameters", "logGroupName")
    if not group or not matches_any(group, p.trail_log_groups):
        return None
    days = e.get("requestParameters", "retentionInDays")
    detail = ""
    if e.name == "PutRetentionPolicy":
        if not isinstance(days, int) or isinstance(days, bool) or days >= p.min_retention_days:
            return None
        detail = f"(retention {days} day(s))"
    elif e.name == "DeleteSubscriptionFilter":
        detail = f"(subscription {e.text('requestParameters', 'filterName')} removed)"
    if not by_person(e, p.include_failed):
        return None
    return change_hit(
        e, f"{e.name} on trail log group", group, detail, retention_days=days if type(days) is int else None
    )


@match(
    id="bedrock-invocation-logging-deleted",
    title="Bedrock model invocation logging deleted",
    severity="high",
    attack=("T1562.008", "T1496.004"),
    events={BEDROCK: ["DeleteModelInvocationLoggingConfiguration"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=LOGGING_RUNBOOK + " Check Bedrock usage and costs in every region: this often precedes LLMjacking.",
    cases=[
        *with_denied(
            "invocation logging deleted",
            call(BEDROCK, "DeleteModelInvocationLoggingConfiguration"),
            failed_expect=1,
            failed_why="trying to stop the logs is the behaviour",
        ),
        Case(
            "invocation logging configured",
            call(
                BEDROCK, "PutModelInvocationLoggingConfiguration", {"loggingConfig": {"textDataDeliveryEnabled": True}}
            ),
            expect=0,
        ),
    ],
)
def bedrock_invocation_logging_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteModelInvocationLoggingConfiguration: Bedrock stops logging prompts and responses, so model abuse
    goes unrecorded. Denied attempts count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Bedrock invocation logging deleted in", e.region, key=f"{e.account}|{e.region}")


@match(
    id="bedrock-guardrail-deleted",
    title="Bedrock guardrail deleted",
    severity="medium",
    attack="T1562.001",
    events={BEDROCK: ["DeleteGuardrail"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "A guardrail filters what models accept and answer. Check it was retired on purpose; if not, restore it "
        "from infrastructure code and review the applications that used it."
    ),
    cases=[
        *with_denied(
            "guardrail deleted",
            call(
                BEDROCK,
                "DeleteGuardrail",
                {"guardrailIdentifier": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:guardrail/abc123def456"},
            ),
            failed_expect=0,
            failed_why="the guardrail stays",
        ),
        Case("guardrail updated", call(BEDROCK, "UpdateGuardrail", {"guardrailIdentifier": "g"}), expect=0),
    ],
)
def bedrock_guardrail_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteGuardrail: the content filters applications rely on are gone. Updates are routine and not
    findings. Only successful calls count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Bedrock guardrail deleted:", e.text("requestParameters", "guardrailIdentifier"))
