"""S3 data leaving the account: are objects being copied into a bucket another account owns, or is a
bucket being replicated to one?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, call
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import OTHER_ACCOUNT, actor, foreign
from pipeline.rules.change_common import by_person, change_hit
from pipeline.rules.forms import with_denied

S3 = "s3.amazonaws.com"
EXFIL_RUNBOOK = (
    "Identify the destination account. If it is not one of the organization's (allowed_accounts): stop the "
    "transfer (remove the replication rule, revoke the principal's sessions and keys), list what was copied, "
    "treat that data as disclosed and investigate how the principal got its access."
)


def bucket_owner(e: Event, bucket: str) -> str:
    """The account CloudTrail names as the owner of `bucket` in the event's resources, else ""."""
    suffix = f":::{bucket}"
    for resource in items(e.raw.get("resources"))[:20]:
        resource = mapping(resource)
        arn = text(resource.get("ARN")) or text(resource.get("arn"))
        if text(resource.get("type")) == "AWS::S3::Bucket" and arn.endswith(suffix):
            return text(resource.get("accountId"))
    return ""


def _copy(dest_owner: str, source: str = "customer-data", dest: str = "exfil-drop-7731") -> dict[str, Any]:
    key = "exports/customers.csv"
    return call(
        S3,
        "CopyObject",
        {"bucketName": dest, "key": key, "x-amz-copy-source": f"{source}/{key}", "Host": f"{dest}.s3.amazonaws.com"},
        managementEvent=False,
        eventCategory="Data",
        resources=[
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{dest}/{key}"},
            {"accountId": dest_owner, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{dest}"},
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{source}/{key}"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{source}"},
        ],
    )


@match(
    id="s3-object-copied-to-external-bucket",
    title="S3 object copied into a bucket of another account",
    severity="critical",
    attack="T1537",
    events={S3: ["CopyObject", "UploadPartCopy"]},
    params={"allowed_accounts": [], "include_failed": False},
    dedup="1h",
    runbook=EXFIL_RUNBOOK,
    cases=[
        *with_denied(
            "copy into an outside bucket", _copy(OTHER_ACCOUNT), failed_expect=0, failed_why="nothing was copied"
        ),
        Case(
            "copy into the backup account", _copy(OTHER_ACCOUNT), expect=0, params={"allowed_accounts": [OTHER_ACCOUNT]}
        ),
        Case("copy within the account", _copy(ACCOUNT, dest="customer-archive"), expect=0),
        Case(
            "copy from an outside bucket into the account's own",
            {
                **_copy(ACCOUNT),
                "resources": [
                    {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::exfil-drop-7731"},
                    {"accountId": OTHER_ACCOUNT, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::customer-data"},
                ],
            },
            expect=0,
        ),
    ],
)
def s3_object_copied_to_external_bucket(e: Event, p: Params) -> Hit | None:
    """CopyObject (or UploadPartCopy) whose destination bucket CloudTrail lists as owned by an account other
    than the caller's and not in `allowed_accounts`: data copied straight out of the account. Copies into
    the account from outside are not findings. Only successful calls count by default; calls AWS makes
    itself are not findings."""
    dest = e.text("requestParameters", "bucketName")
    owner = bucket_owner(e, dest) if dest else ""
    if not foreign(owner, e, p.allowed_accounts) or not by_person(e, p.include_failed):
        return None
    source = e.text("requestParameters", "x-amz-copy-source")
    return change_hit(
        e,
        f"Object {source} copied to bucket",
        dest,
        f"of account {owner}",
        key=f"{actor(e)}|{dest}",
        resources=(source, dest),
        destination_account=owner,
    )


def _replication(account: str | None, bucket: str = "arn:aws:s3:::offsite-7731") -> dict[str, Any]:
    destination: dict[str, Any] = {"Bucket": bucket, "StorageClass": "STANDARD"}
    if account:
        destination |= {"Account": account, "AccessControlTranslation": {"Owner": "Destination"}}
    return call(
        S3,
        "PutBucketReplication",
        {
            "bucketName": "customer-data",
            "replication": "",
            "ReplicationConfiguration": {
                "Role": f"arn:aws:iam::{ACCOUNT}:role/s3-replication",
                "Rule": {
                    "ID": "all",
                    "Status": "Enabled",
                    "Priority": 1,
                    "Filter": {"Prefix": ""},
                    "Destination": destination,
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                },
            },
        },
    )


@match(
    id="s3-replication-to-external-account",
    title="S3 bucket replicated to another account",
    severity="critical",
    attack="T1537",
    events={S3: ["PutBucketReplication"]},
    params={"allowed_accounts": [], "include_failed": False},
    dedup="1h",
    runbook=EXFIL_RUNBOOK,
    cases=[
        *with_denied(
            "replication to an outside account",
            _replication(OTHER_ACCOUNT),
            failed_expect=0,
            failed_why="no replication is set up",
        ),
        Case(
            "replication to the organization's backup account",
            _replication(OTHER_ACCOUNT),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
        Case("replication within the account", _replication(None), expect=0),
        Case("replication naming the account itself", _replication(ACCOUNT), expect=0),
    ],
)
def s3_replication_to_external_account(e: Event, p: Params) -> Hit | None:
    """PutBucketReplication with an enabled rule whose destination names an account other than the
    caller's and not in `allowed_accounts`: every new object is copied out from then on. CloudTrail shows
    the destination account only when the rule names it (it must, to hand over object ownership); rules
    without it are not judged. Only successful calls count by default; calls AWS makes itself are not
    findings."""
    if not by_person(e, p.include_failed):
        return None
    rules = mapping(e.request.get("ReplicationConfiguration")).get("Rule")
    outside: list[str] = []
    for rule in (items(rules) or [rules])[:100]:
        rule = mapping(rule)
        destination = mapping(rule.get("Destination"))
        account = text(destination.get("Account"))
        if text(rule.get("Status")) == "Enabled" and foreign(account, e, p.allowed_accounts):
            outside.append(f"{account}:{text(destination.get('Bucket'))}")
    if not outside:
        return None
    bucket = e.text("requestParameters", "bucketName")
    return change_hit(
        e,
        f"Bucket {bucket} replicated to",
        ", ".join(outside),
        key=f"{bucket}|{','.join(outside)}",
        resources=(bucket,),
        destinations=outside,
    )
