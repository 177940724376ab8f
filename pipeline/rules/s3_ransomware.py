"""S3 ransomware and destruction: is someone locking objects under a key the account does not own,
removing the safety nets (versioning, MFA delete, default encryption), setting buckets to expire their
objects within days, deleting objects en masse, or leaving a ransom note?"""

from __future__ import annotations

import re
from typing import Any

from pipeline.cases import ACCOUNT, at, call, role_session, service_linked
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import OTHER_ACCOUNT, account_of, actor, by_aws_service, foreign
from pipeline.rules.change_common import by_person, change_hit, matches_any
from pipeline.rules.forms import with_denied
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold

S3 = "s3.amazonaws.com"
WRITES = ["CopyObject", "PutObject", "CreateMultipartUpload"]
RANSOM_RUNBOOK = (
    "Treat it as ransomware in progress until shown otherwise: identify the principal and revoke its sessions "
    "and keys at once, re-enable versioning (and MFA delete) on the buckets it touched, block its source "
    "addresses, and restore objects from versions, replicas or backups; keep the events for the investigation."
)


def _object(
    name: str, bucket: str = "customer-data", key: str = "invoices/2024/0001.pdf", **headers: Any
) -> dict[str, Any]:
    request = {"bucketName": bucket, "key": key, "Host": f"{bucket}.s3.us-east-1.amazonaws.com", **headers}
    if name == "CopyObject":
        request["x-amz-copy-source"] = f"{bucket}/{key}"
    return call(
        S3,
        name,
        request,
        managementEvent=False,
        eventCategory="Data",
        readOnly=False,
        resources=[
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
    )


FOREIGN_KEY = f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def _kms_key(e: Event) -> str:
    return text(e.request.get("x-amz-server-side-encryption-aws-kms-key-id"))


@match(
    id="s3-object-encrypted-with-foreign-kms-key",
    title="S3 object encrypted with another account's KMS key",
    severity="high",
    attack="T1486",
    events={S3: WRITES},
    params={"allowed_accounts": [], "include_failed": False},
    dedup="1h",
    runbook=RANSOM_RUNBOOK,
    cases=[
        *with_denied(
            "object re-encrypted in place with a foreign key",
            _object(
                "CopyObject",
                **{
                    "x-amz-server-side-encryption": "aws:kms",
                    "x-amz-server-side-encryption-aws-kms-key-id": FOREIGN_KEY,
                },
            ),
            failed_expect=0,
            failed_why="the object is unchanged",
        ),
        Case(
            "upload under a foreign key",
            _object(
                "PutObject",
                **{
                    "x-amz-server-side-encryption": "aws:kms",
                    "x-amz-server-side-encryption-aws-kms-key-id": FOREIGN_KEY,
                },
            ),
            expect=1,
        ),
        Case(
            "the account's own key",
            _object(
                "CopyObject",
                **{"x-amz-server-side-encryption-aws-kms-key-id": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k1"},
            ),
            expect=0,
        ),
        Case(
            "a key alias (resolved in the account)",
            _object("PutObject", **{"x-amz-server-side-encryption-aws-kms-key-id": "alias/app"}),
            expect=0,
        ),
        Case(
            "the central security account's key",
            _object("PutObject", **{"x-amz-server-side-encryption-aws-kms-key-id": FOREIGN_KEY}),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
    ],
)
def s3_object_encrypted_with_foreign_kms_key(e: Event, p: Params) -> Hit | None:
    """CopyObject, PutObject or CreateMultipartUpload asking for SSE-KMS with a key ARN of an account other
    than the bucket's (and not in `allowed_accounts`): whoever owns the key decides whether the object can
    ever be read again, the cloud form of ransomware encryption. Key ids and aliases resolve in the account
    and are not findings. Only successful calls count by default; calls AWS makes itself are not findings."""
    key = _kms_key(e)
    if not key.startswith("arn:") or not foreign(account_of(key), e, p.allowed_accounts):
        return None
    if not by_person(e, p.include_failed):
        return None
    bucket = e.text("requestParameters", "bucketName")
    return change_hit(
        e,
        f"Objects of bucket {bucket} encrypted with KMS key",
        key,
        key=f"{actor(e)}|{bucket}|{key}",
        resources=(bucket, key),
        bucket=bucket,
        object_key=e.text("requestParameters", "key"),
    )


SSE_C = {"x-amz-server-side-encryption-customer-algorithm": "AES256"}


def _sse_c(i: int, minutes: float, **fields: Any) -> dict[str, Any]:
    return {**_object("CopyObject", key=f"invoices/2024/{i:04d}.pdf", **SSE_C), "eventTime": at(minutes), **fields}


@threshold(
    id="s3-objects-encrypted-with-customer-keys",
    title="Many S3 objects rewritten with customer-provided encryption keys (SSE-C)",
    severity="high",
    attack="T1486",
    events={S3: WRITES},
    params={"objects": 20, "window": "10m"},
    threshold="objects",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=RANSOM_RUNBOOK,
    cases=[
        Case("twenty objects rewritten with SSE-C", [_sse_c(i, i * 0.2) for i in range(20)], expect=1),
        Case(
            "twenty denied rewrites (nothing encrypted)",
            [_sse_c(i, i * 0.2, errorCode="AccessDenied") for i in range(20)],
            expect=0,
        ),
        Case("an application storing a few SSE-C objects", [_sse_c(i, i * 3) for i in range(5)], expect=0),
        Case("the same object rewritten again and again", [_sse_c(0, i * 0.1) for i in range(30)], expect=0),
        Case(
            "twenty objects with ordinary encryption",
            [
                {**_object("CopyObject", key=f"k{i}", **{"x-amz-server-side-encryption": "AES256"}), "eventTime": at(i)}
                for i in range(20)
            ],
            expect=0,
        ),
    ],
)
def s3_objects_encrypted_with_customer_keys(e: Event, p: Params) -> Step | None:
    """At least `objects` distinct objects written or copied with a customer-provided key (SSE-C) by one
    principal within `window`: the object can only be read with the key the caller kept, so a bulk rewrite
    is ransomware encryption. Only successful calls count; calls AWS makes itself are not findings."""
    if not e.text("requestParameters", "x-amz-server-side-encryption-customer-algorithm"):
        return None
    if not e.succeeded or by_aws_service(e):
        return None
    bucket, key = e.text("requestParameters", "bucketName"), e.text("requestParameters", "key")
    return Step(actor(e), value=f"{bucket}/{key}")


def _versioning(status: str = "Suspended", mfa: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/", "Status": status}
    if mfa is not None:
        config["MfaDelete"] = mfa
    return call(
        S3,
        "PutBucketVersioning",
        {
            "bucketName": "customer-data",
            "VersioningConfiguration": config,
            "versioning": "",
            "Host": "customer-data.s3.amazonaws.com",
        },
    )


@match(
    id="s3-versioning-or-mfa-delete-suspended",
    title="S3 bucket versioning suspended or MFA delete disabled",
    severity="high",
    attack=("T1490", "T1485"),
    events={S3: ["PutBucketVersioning"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=RANSOM_RUNBOOK,
    cases=[
        *with_denied(
            "versioning suspended",
            _versioning(),
            failed_expect=1,
            failed_why="trying to remove the recovery path is the behaviour",
        ),
        Case("MFA delete disabled", _versioning("Enabled", "Disabled"), expect=1),
        Case("versioning enabled", _versioning("Enabled"), expect=0),
        Case("versioning enabled with MFA delete", _versioning("Enabled", "Enabled"), expect=0),
    ],
)
def s3_versioning_or_mfa_delete_suspended(e: Event, p: Params) -> Hit | None:
    """PutBucketVersioning suspending versioning or disabling MFA delete: overwritten and deleted objects then
    leave no version to restore, the step before ransomware deletes or encrypts them. Denied attempts count
    by default (`include_failed`); calls AWS makes itself are not findings."""
    config = mapping(e.request.get("VersioningConfiguration"))
    changes = [
        what
        for what, field, value in (
            ("versioning suspended", "Status", "Suspended"),
            ("MFA delete disabled", "MfaDelete", "Disabled"),
        )
        if text(config.get(field)) == value
    ]
    if not changes or not by_person(e, p.include_failed):
        return None
    return change_hit(
        e, f"{' and '.join(changes).capitalize()} on bucket", e.text("requestParameters", "bucketName"), changes=changes
    )


@match(
    id="s3-default-encryption-removed",
    title="S3 bucket default encryption configuration deleted",
    severity="medium",
    attack=("T1562", "T1486"),
    events={S3: ["DeleteBucketEncryption"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "New objects now get only S3's own SSE-S3 encryption instead of the bucket's KMS key (and its key policy "
        "and audit). Ask the principal's owner; if unplanned, restore the configuration from infrastructure code "
        "and check what else the principal changed on the bucket."
    ),
    cases=[
        *with_denied(
            "default encryption deleted",
            call(S3, "DeleteBucketEncryption", {"bucketName": "customer-data", "encryption": ""}),
            failed_expect=0,
            failed_why="the configuration stays",
        ),
        Case("default encryption set", call(S3, "PutBucketEncryption", {"bucketName": "customer-data"}), expect=0),
    ],
)
def s3_default_encryption_removed(e: Event, p: Params) -> Hit | None:
    """DeleteBucketEncryption: the bucket's default encryption (usually SSE-KMS with the team's key) is
    removed and new objects fall back to S3-managed keys. Only successful calls count by default; calls AWS
    makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Default encryption removed from bucket", e.text("requestParameters", "bucketName"))


AUDIT_BUCKETS = ["*cloudtrail*", "*trail-log*", "*audit*", "aws-controltower-logs-*", "*access-log*"]


def _days(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if type(value) is str and value.isdigit() else None


def short_expiry(e: Event, max_days: int) -> int | None:
    """The shortest expiration (current or noncurrent versions) of the enabled lifecycle rules a
    PutBucketLifecycle sets, when it is at most `max_days` days; else None."""
    config = mapping(e.request.get("LifecycleConfiguration"))
    rules = config.get("Rule")
    shortest: int | None = None
    for rule in (items(rules) or [rules])[:100]:
        rule = mapping(rule)
        if text(rule.get("Status")) != "Enabled":
            continue
        for days in (
            _days(mapping(rule.get("Expiration")).get("Days")),
            _days(mapping(rule.get("NoncurrentVersionExpiration")).get("NoncurrentDays")),
        ):
            if days is not None and days <= max_days and (shortest is None or days < shortest):
                shortest = days
    return shortest


def _lifecycle(bucket: str, days: int = 1, status: str = "Enabled", **fields: Any) -> dict[str, Any]:
    return call(
        S3,
        "PutBucketLifecycle",
        {
            "bucketName": bucket,
            "lifecycle": "",
            "LifecycleConfiguration": {
                "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
                "Rule": [
                    {
                        "ID": "cleanup",
                        "Status": status,
                        "Filter": {"Prefix": ""},
                        "Expiration": {"Days": days},
                        "NoncurrentVersionExpiration": {"NoncurrentDays": days},
                    }
                ],
            },
        },
        **fields,
    )


@match(
    id="s3-lifecycle-short-expiration-on-audit-bucket",
    title="Lifecycle rule expiring an audit log bucket's objects within days",
    severity="high",
    attack=("T1562.008", "T1485"),
    events={S3: ["PutBucketLifecycle"]},
    params={"audit_buckets": AUDIT_BUCKETS, "max_days": 7, "include_failed": True},
    dedup="1h",
    runbook=(
        "A lifecycle rule that expires audit logs within days erases the evidence quietly. Remove the rule "
        "(restore the lifecycle from infrastructure code), check that log objects are still present (versions "
        "if versioning is on) and investigate the principal."
    ),
    cases=[
        *with_denied(
            "trail bucket set to expire after a day",
            _lifecycle("org-cloudtrail-logs-111122223333"),
            failed_expect=1,
            failed_why="trying to erase the logs is the behaviour",
        ),
        Case(
            "a team's own log bucket name",
            _lifecycle("sec-evidence"),
            expect=1,
            params={"audit_buckets": ["sec-evidence"]},
        ),
        Case("ninety-day retention on the trail bucket", _lifecycle("org-cloudtrail-logs", 90), expect=0),
        Case("disabled rule", _lifecycle("org-cloudtrail-logs", 1, "Disabled"), expect=0),
        Case("scratch bucket cleaned daily", _lifecycle("build-scratch", 1), expect=0),
    ],
)
def s3_lifecycle_short_expiration_on_audit_bucket(e: Event, p: Params) -> Hit | None:
    """PutBucketLifecycle on a bucket matching `audit_buckets` (shell patterns for CloudTrail, access log
    and audit buckets) with an enabled rule that expires current or noncurrent objects within `max_days`
    days. Denied attempts count by default; calls AWS makes itself are not findings."""
    bucket = e.text("requestParameters", "bucketName")
    if not bucket or not matches_any(bucket, p.audit_buckets):
        return None
    days = short_expiry(e, p.max_days)
    if days is None or not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Audit bucket", bucket, f"set to expire objects after {days} day(s)", days=days)


@threshold(
    id="s3-short-expiration-on-many-buckets",
    title="Lifecycle rules expiring objects within days set on many buckets",
    severity="high",
    attack="T1485",
    events={S3: ["PutBucketLifecycle"]},
    params={"buckets": 3, "window": "1h", "max_days": 7},
    threshold="buckets",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=RANSOM_RUNBOOK,
    cases=[
        Case(
            "three buckets set to expire in a day",
            [{**_lifecycle(f"data-{i}"), "eventTime": at(i * 5)} for i in range(3)],
            expect=1,
        ),
        Case(
            "three buckets, denied (nothing will expire)",
            [{**_lifecycle(f"data-{i}", errorCode="AccessDenied"), "eventTime": at(i * 5)} for i in range(3)],
            expect=0,
        ),
        Case("two scratch buckets", [{**_lifecycle(f"scratch-{i}"), "eventTime": at(i)} for i in range(2)], expect=0),
        Case(
            "three buckets with a year's retention",
            [{**_lifecycle(f"data-{i}", 365), "eventTime": at(i)} for i in range(3)],
            expect=0,
        ),
    ],
)
def s3_short_expiration_on_many_buckets(e: Event, p: Params) -> Step | None:
    """Enabled lifecycle rules expiring objects within `max_days` days set on at least `buckets` distinct
    buckets by one principal within `window`: deletion by lifecycle (S3 deletes the data itself, with no
    DeleteObject in the trail). Only successful calls count; calls AWS makes itself are not findings."""
    if not e.succeeded or by_aws_service(e) or short_expiry(e, p.max_days) is None:
        return None
    bucket = e.text("requestParameters", "bucketName")
    return Step(actor(e), value=bucket) if bucket else None


def _delete(i: int, minutes: float, batch: bool = False, **fields: Any) -> dict[str, Any]:
    if batch:
        ev = call(
            S3,
            "DeleteObjects",
            {"bucketName": "customer-data", "delete": "", "Host": "customer-data.s3"},
            managementEvent=False,
            eventCategory="Data",
        )
    else:
        ev = _object("DeleteObject", key=f"invoices/{i:05d}.pdf")
    return {**ev, "eventTime": at(minutes), **fields}


@threshold(
    id="s3-mass-object-deletion",
    title="Mass deletion of S3 objects by one principal",
    severity="high",
    attack="T1485",
    events={S3: ["DeleteObject", "DeleteObjects"]},
    params={"objects": 100, "window": "10m", "batch_weight": 25},
    threshold="objects",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=RANSOM_RUNBOOK,
    cases=[
        Case("a hundred objects deleted one by one", [_delete(i, i * 0.05) for i in range(100)], expect=1),
        Case("four batch deletions", [_delete(i, i, batch=True) for i in range(4)], expect=1),
        Case(
            "denied deletions (nothing deleted)",
            [_delete(i, i * 0.05, errorCode="AccessDenied") for i in range(100)],
            expect=0,
        ),
        Case("a cleanup of ninety objects", [_delete(i, i * 0.05) for i in range(90)], expect=0),
        Case("three batch deletions", [_delete(i, i, batch=True) for i in range(3)], expect=0),
        Case(
            "lifecycle expiry by S3 itself",
            [
                _delete(i, i * 0.05, userIdentity={"type": "AWSService", "invokedBy": "s3.amazonaws.com"})
                for i in range(100)
            ],
            expect=0,
        ),
    ],
)
def s3_mass_object_deletion(e: Event, p: Params) -> list[Step] | None:
    """At least `objects` objects deleted by one principal (the role behind a session) within `window`.
    DeleteObject names its object; a DeleteObjects batch (up to 1,000 keys, which CloudTrail does not list)
    counts as `batch_weight` objects. Only successful calls count; S3 expiring objects itself is not a
    finding. Cleanup jobs that delete in bulk belong in the rule's allowlist."""
    if not e.succeeded or by_aws_service(e):
        return None
    who = actor(e)
    bucket = e.text("requestParameters", "bucketName")
    if e.name == "DeleteObjects":
        weight = max(1, min(int(p.batch_weight), 1000))
        return [Step(who, value=f"{e.event_id}#{i}") for i in range(weight)]
    return [Step(who, value=f"{bucket}/{e.text('requestParameters', 'key')}")]


RANSOM_NOTE = re.compile(
    r"ransom"
    r"|(decrypt|restore|recover|unlock)[\w .-]{0,20}(files|data|instructions?)"
    r"|(how|read[_ -]?me)[\w .-]{0,20}(decrypt|restore|recover|unlock)"
    r"|(files|data)[\w .-]{0,20}(were|are|been)[\w .-]{0,5}(encrypted|locked)",
    re.IGNORECASE,
)
NOTE_SUFFIXES = (".txt", ".html", ".htm", ".md", ".hta", ".rtf")


def ransom_note_name(key: str) -> str:
    """The file name of an object key when it reads like a ransom note, else ""."""
    name = key.rpartition("/")[2]
    if len(name) > 200 or not name.lower().endswith(NOTE_SUFFIXES):
        return ""
    return name if RANSOM_NOTE.search(name) else ""


@match(
    id="s3-ransom-note-uploaded",
    title="Object that reads like a ransom note uploaded to S3",
    severity="high",
    attack="T1486",
    events={S3: ["PutObject", "CopyObject"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=RANSOM_RUNBOOK,
    cases=[
        *with_denied(
            "note uploaded",
            _object("PutObject", key="README_TO_DECRYPT_YOUR_FILES.txt"),
            failed_expect=0,
            failed_why="no note was left",
        ),
        Case("note beside the data", _object("PutObject", key="exports/HOW-TO-RESTORE-FILES.html"), expect=1),
        Case("recovery instructions", _object("PutObject", key="Ransom_Note.txt"), expect=1),
        Case("a project README", _object("PutObject", key="docs/README.md"), expect=0),
        Case("a decryption library", _object("PutObject", key="libs/decrypt-utils.tar.gz"), expect=0),
        Case("a report", _object("PutObject", key="reports/restore-test-results.csv"), expect=0),
    ],
)
def s3_ransom_note_uploaded(e: Event, p: Params) -> Hit | None:
    """PutObject or CopyObject of a text or HTML file whose name reads like a ransom note (telling the owner
    how to decrypt, restore or recover files, or that they are encrypted). A name is a weak signal alone,
    so the finding names the key for a quick look. Only successful calls count by default; calls AWS makes
    itself are not findings."""
    name = ransom_note_name(text(e.request.get("key")))  # runs on every object write: the cheapest read
    if not name or not by_person(e, p.include_failed):
        return None
    bucket = e.text("requestParameters", "bucketName")
    return change_hit(
        e,
        f"Possible ransom note {name} uploaded to bucket",
        bucket,
        key=f"{actor(e)}|{bucket}",
        object_key=e.text("requestParameters", "key"),
    )


@match(
    id="s3-bucket-deleted",
    title="S3 bucket deleted",
    severity="info",
    attack="T1485",
    events={S3: ["DeleteBucket"]},
    params={"include_failed": False},
    dedup="1h",
    runbook="A record of the deletion. Check it matches a decommissioning; many deletions in a row deserve a look.",
    cases=[
        *with_denied(
            "bucket deleted",
            call(S3, "DeleteBucket", {"bucketName": "old-exports"}),
            failed_expect=0,
            failed_why="the bucket stays",
        ),
        Case(
            "S3's own lifecycle cleanup",
            {
                **call(S3, "DeleteBucket", {"bucketName": "b"}),
                "userIdentity": service_linked("s3", "AWSServiceRoleForS3"),
            },
            expect=0,
        ),
        Case("bucket listed", call(S3, "ListBuckets"), expect=0),
        Case(
            "a role deleting",
            call(S3, "DeleteBucket", {"bucketName": "tmp"}, userIdentity=role_session("ci")),
            expect=1,
        ),
    ],
)
def s3_bucket_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteBucket succeeded: a change worth a record (compliance evidence). Only successful calls count by
    default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Bucket deleted:", e.text("requestParameters", "bucketName"))
