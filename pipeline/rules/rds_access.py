"""RDS access and data: who reset a master password, gave a database an IAM role, rebooted or failed it
over, downloaded its logs, snapshotted it, looked for public snapshots, exported a snapshot to S3 or
copied one to another region or under another account's key?"""

from __future__ import annotations

from pipeline.cases import ACCOUNT, call
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import OTHER_ACCOUNT, account_of, actor, foreign, from_console
from pipeline.rules.change_common import by_person, change_hit
from pipeline.rules.forms import with_denied
from pipeline.rules.rds_protection import RDS, database

EXPORT_RUNBOOK = (
    "Find where the data went (bucket, region, key) and whether that place belongs to the organization. If "
    "not: cancel the task or delete the copy, remove the principal's access, and treat the database's data as "
    "disclosed."
)


def _password_reset(**fields: object) -> dict[str, object]:
    return call(
        RDS,
        "ModifyDBInstance",
        {"dBInstanceIdentifier": "orders-prod", "applyImmediately": True, "masterUserPassword": "****"},
        {"dBInstanceIdentifier": "orders-prod", "pendingModifiedValues": {"masterUserPassword": "****"}},
        **fields,
    )


@match(
    id="rds-master-password-changed",
    title="RDS master user password changed",
    severity="medium",
    attack=("T1098", "T1078"),
    events={RDS: ["ModifyDBInstance", "ModifyDBCluster"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "Whoever sets the master password owns the database's data. Ask the database owner; if unplanned, set a "
        "new password kept in the team's secret store, check connections since the change, and investigate the "
        "principal."
    ),
    cases=[
        *with_denied("master password reset", _password_reset(), failed_expect=0, failed_why="the password stays"),
        Case(
            "cluster password reset",
            call(RDS, "ModifyDBCluster", {"dBClusterIdentifier": "orders-aurora", "masterUserPassword": "****"}),
            expect=1,
        ),
        Case(
            "storage change",
            call(RDS, "ModifyDBInstance", {"dBInstanceIdentifier": "orders-prod", "allocatedStorage": 200}),
            expect=0,
        ),
    ],
)
def rds_master_password_changed(e: Event, p: Params) -> Hit | None:
    """ModifyDBInstance or ModifyDBCluster setting the master user password (CloudTrail masks it as "****"
    in the request and in pendingModifiedValues): a way into the data that bypasses IAM. Only successful
    calls count by default; calls AWS makes itself are not findings."""
    changed = (
        e.get("requestParameters", "masterUserPassword") is not None
        or e.get("responseElements", "pendingModifiedValues", "masterUserPassword") is not None
    )
    if not changed or not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Master password changed on", database(e))


@match(
    id="rds-iam-role-added",
    title="IAM role associated with an RDS database",
    severity="medium",
    attack=("T1098", "T1537"),
    events={RDS: ["AddRoleToDBInstance", "AddRoleToDBCluster"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "A role lets the database itself call AWS (S3 import/export, Lambda). Check the role's permissions and "
        "that the association was planned; if not, remove it and look for SELECT INTO OUTFILE S3 or aws_s3 "
        "export calls in the database's logs."
    ),
    cases=[
        *with_denied(
            "role for S3 export",
            call(
                RDS,
                "AddRoleToDBCluster",
                {
                    "dBClusterIdentifier": "orders-aurora",
                    "roleArn": f"arn:aws:iam::{ACCOUNT}:role/aurora-s3",
                    "featureName": "s3Export",
                },
            ),
            failed_expect=0,
            failed_why="no role is associated",
        ),
        Case(
            "role removed", call(RDS, "RemoveRoleFromDBCluster", {"dBClusterIdentifier": "c", "roleArn": "r"}), expect=0
        ),
    ],
)
def rds_iam_role_added(e: Event, p: Params) -> Hit | None:
    """AddRoleToDBInstance or AddRoleToDBCluster: the database gets an IAM role to reach S3 or Lambda, a
    path to move data out from inside the database. Only successful calls count by default; calls AWS
    makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    role = e.text("requestParameters", "roleArn")
    return change_hit(
        e,
        f"Role {role} added to",
        database(e),
        resources=(database(e), role),
        feature=e.text("requestParameters", "featureName"),
    )


@match(
    id="rds-database-rebooted-or-failed-over",
    title="RDS database rebooted or failed over",
    severity="low",
    attack="T1499",
    events={
        RDS: ["RebootDBInstance", "RebootDBCluster", "RebootDBShardGroup", "FailoverDBCluster", "FailoverGlobalCluster"]
    },
    params={"include_failed": False},
    dedup="1h",
    runbook="Check the reboot or failover matches a maintenance or incident; repeated ones disrupt the service.",
    cases=[
        *with_denied(
            "cluster failed over",
            call(RDS, "FailoverDBCluster", {"dBClusterIdentifier": "orders-aurora"}),
            failed_expect=0,
            failed_why="nothing restarted",
        ),
        Case(
            "instance rebooted with failover",
            call(RDS, "RebootDBInstance", {"dBInstanceIdentifier": "orders-prod", "forceFailover": True}),
            expect=1,
        ),
        Case("instance described", call(RDS, "DescribeDBInstances"), expect=0),
    ],
)
def rds_database_rebooted_or_failed_over(e: Event, p: Params) -> Hit | None:
    """A database instance, cluster or shard group rebooted, or a cluster failed over: an outage for its
    clients (hygiene: a record to match against maintenance). Only successful calls count by default; AWS's
    own maintenance is not a finding."""
    if not by_person(e, p.include_failed):
        return None
    target = (
        database(e)
        or e.text("requestParameters", "globalClusterIdentifier")
        or e.text("requestParameters", "dBShardGroupIdentifier")
    )
    return change_hit(e, f"{e.name}:", target)


@match(
    id="rds-log-file-downloaded",
    title="RDS log file downloaded",
    severity="low",
    attack="T1552.001",
    events={RDS: ["DownloadDBLogFilePortion", "DownloadCompleteDBLogFile"]},
    params={"include_failed": False},
    dedup="1h",
    runbook="Database logs can hold queries with credentials and data. Check the reader should have them.",
    cases=[
        *with_denied(
            "error log downloaded",
            call(
                RDS,
                "DownloadDBLogFilePortion",
                {"dBInstanceIdentifier": "orders-prod", "logFileName": "error/mysql-error.log", "numberOfLines": 1000},
            ),
            failed_expect=0,
            failed_why="nothing was read",
        ),
        Case("log files listed", call(RDS, "DescribeDBLogFiles", {"dBInstanceIdentifier": "orders-prod"}), expect=0),
    ],
)
def rds_log_file_downloaded(e: Event, p: Params) -> Hit | None:
    """A database log file downloaded through the RDS API (one finding per principal and database per
    hour). Only successful calls count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(
        e,
        "Log file of",
        database(e),
        f"downloaded ({e.text('requestParameters', 'logFileName')})",
        key=f"{actor(e)}|{database(e)}",
    )


@match(
    id="rds-manual-snapshot-created",
    title="Manual RDS snapshot created",
    severity="low",
    attack="T1537",
    events={RDS: ["CreateDBSnapshot", "CreateDBClusterSnapshot"]},
    params={"include_failed": False},
    dedup="1h",
    runbook="A manual snapshot is the usual first step before sharing or exporting a database: check who needs it.",
    cases=[
        *with_denied(
            "manual snapshot",
            call(
                RDS,
                "CreateDBSnapshot",
                {"dBSnapshotIdentifier": "orders-copy", "dBInstanceIdentifier": "orders-prod"},
                {"snapshotType": "manual", "dBSnapshotIdentifier": "orders-copy"},
            ),
            failed_expect=0,
            failed_why="no snapshot exists",
        ),
        Case(
            "AWS Backup snapshot",
            call(
                RDS,
                "CreateDBSnapshot",
                {"dBSnapshotIdentifier": "awsbackup-job-1"},
                userIdentity={"type": "AWSService", "invokedBy": "backup.amazonaws.com"},
            ),
            expect=0,
        ),
    ],
)
def rds_manual_snapshot_created(e: Event, p: Params) -> Hit | None:
    """CreateDBSnapshot or CreateDBClusterSnapshot made by a person (automated and AWS Backup snapshots are
    AWS acting): the first step before a snapshot is shared or exported. Only successful calls count by
    default."""
    if not by_person(e, p.include_failed):
        return None
    source = e.text("requestParameters", "dBInstanceIdentifier") or e.text("requestParameters", "dBClusterIdentifier")
    return change_hit(
        e,
        "Manual snapshot",
        e.text("requestParameters", "dBSnapshotIdentifier")
        or e.text("requestParameters", "dBClusterSnapshotIdentifier"),
        f"of {source}" if source else "",
    )


@match(
    id="rds-public-snapshot-enumeration",
    title="RDS snapshots listed including public or shared ones",
    severity="low",
    attack="T1580",
    events={RDS: ["DescribeDBSnapshots", "DescribeDBClusterSnapshots"]},
    params={"include_failed": False, "include_console": True},
    dedup="1h",
    runbook="Listing public and shared snapshots is reconnaissance for data to restore. Check the caller's purpose.",
    cases=[
        Case("public snapshots listed", call(RDS, "DescribeDBSnapshots", {"includePublic": True}), expect=1),
        Case(
            "shared cluster snapshots listed",
            call(RDS, "DescribeDBClusterSnapshots", {"includeShared": True}),
            expect=1,
        ),
        Case(
            "public snapshots listed, denied (nothing listed)",
            call(RDS, "DescribeDBSnapshots", {"includePublic": True}, errorCode="AccessDenied"),
            expect=0,
        ),
        Case(
            "the console's snapshot page, console sessions excluded",
            call(
                RDS,
                "DescribeDBSnapshots",
                {"includeShared": True},
                sessionCredentialFromConsole="true",
                userAgent="AWS Internal",
                sourceIPAddress="AWS Internal",
            ),
            expect=0,
            params={"include_console": False},
        ),
        Case(
            "own snapshots listed", call(RDS, "DescribeDBSnapshots", {"dBInstanceIdentifier": "orders-prod"}), expect=0
        ),
    ],
)
def rds_public_snapshot_enumeration(e: Event, p: Params) -> Hit | None:
    """DescribeDBSnapshots or DescribeDBClusterSnapshots with includePublic or includeShared: looking for
    snapshots other accounts made public or shared. Console sessions count (the console's "shared with me"
    view makes this call too; set `include_console` false if that is noise). Only successful calls count
    by default; calls AWS makes itself are not findings."""
    if e.request.get("includePublic") is not True and e.request.get("includeShared") is not True:
        return None
    if not by_person(e, p.include_failed) or (from_console(e) and not p.include_console):
        return None
    return change_hit(e, "Public or shared RDS snapshots listed by", e.principal, key=actor(e))


@match(
    id="rds-snapshot-exported-to-s3",
    title="RDS snapshot exported to S3",
    severity="high",
    attack="T1537",
    events={RDS: ["StartExportTask"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=EXPORT_RUNBOOK,
    cases=[
        *with_denied(
            "snapshot exported",
            call(
                RDS,
                "StartExportTask",
                {
                    "exportTaskIdentifier": "exp-1",
                    "sourceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:orders-nightly",
                    "s3BucketName": "analytics-drop",
                    "iamRoleArn": f"arn:aws:iam::{ACCOUNT}:role/rds-export",
                    "kmsKeyId": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k1",
                },
                {"status": "STARTING"},
            ),
            failed_expect=0,
            failed_why="no export runs",
        ),
        Case("export tasks listed", call(RDS, "DescribeExportTasks"), expect=0),
    ],
)
def rds_snapshot_exported_to_s3(e: Event, p: Params) -> Hit | None:
    """StartExportTask: a snapshot's tables written to an S3 bucket as Parquet files, readable outside the
    database's own access controls. Only successful calls count by default; calls AWS makes itself are not
    findings."""
    if not by_person(e, p.include_failed):
        return None
    source = e.text("requestParameters", "sourceArn")
    bucket = e.text("requestParameters", "s3BucketName")
    return change_hit(
        e,
        f"Snapshot {source.rpartition(':')[2]} exported to bucket",
        bucket,
        resources=(source, bucket),
        source_arn=source,
    )


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 4 and parts[0] == "arn" else ""


@match(
    id="rds-snapshot-copied-to-another-region-or-account",
    title="RDS snapshot copied to another region or under another account's key",
    severity="medium",
    attack="T1537",
    events={RDS: ["CopyDBSnapshot", "CopyDBClusterSnapshot"]},
    params={"allowed_regions": [], "allowed_accounts": [], "include_failed": False},
    dedup="1h",
    runbook=EXPORT_RUNBOOK,
    cases=[
        *with_denied(
            "copy from another region",
            call(
                RDS,
                "CopyDBSnapshot",
                {
                    "sourceDBSnapshotIdentifier": f"arn:aws:rds:eu-west-1:{ACCOUNT}:snapshot:orders-nightly",
                    "targetDBSnapshotIdentifier": "orders-copy",
                    "sourceRegion": "eu-west-1",
                },
            ),
            failed_expect=0,
            failed_why="no copy exists",
        ),
        Case(
            "copy re-encrypted with an outside key",
            call(
                RDS,
                "CopyDBClusterSnapshot",
                {
                    "sourceDBClusterSnapshotIdentifier": "aurora-weekly",
                    "targetDBClusterSnapshotIdentifier": "x",
                    "kmsKeyId": f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/k9",
                },
            ),
            expect=1,
        ),
        Case(
            "copy to the disaster-recovery region",
            call(
                RDS,
                "CopyDBSnapshot",
                {
                    "sourceDBSnapshotIdentifier": f"arn:aws:rds:eu-west-1:{ACCOUNT}:snapshot:s",
                    "targetDBSnapshotIdentifier": "t",
                    "sourceRegion": "eu-west-1",
                },
            ),
            expect=0,
            params={"allowed_regions": ["eu-west-1"]},
        ),
        Case(
            "copy within the region",
            call(
                RDS,
                "CopyDBSnapshot",
                {"sourceDBSnapshotIdentifier": "orders-nightly", "targetDBSnapshotIdentifier": "orders-keep"},
            ),
            expect=0,
        ),
    ],
)
def rds_snapshot_copied_to_another_region_or_account(e: Event, p: Params) -> Hit | None:
    """CopyDBSnapshot or CopyDBClusterSnapshot from another region (the source ARN's region or sourceRegion
    differs from the call's, and is not in `allowed_regions`), or re-encrypted with a KMS key of another
    account (not in `allowed_accounts`), which lets that account read the copy. Only successful calls count
    by default; copies AWS makes itself (AWS Backup) are not findings."""
    source = e.text("requestParameters", "sourceDBSnapshotIdentifier") or e.text(
        "requestParameters", "sourceDBClusterSnapshotIdentifier"
    )
    region = e.text("requestParameters", "sourceRegion") or _region_of(source)
    key = e.text("requestParameters", "kmsKeyId")
    other_region = bool(region) and region != e.region and region not in p.allowed_regions
    key_account = account_of(key) if key.startswith("arn:") else ""
    outside_key = foreign(key_account, e, p.allowed_accounts)
    if not (other_region or outside_key) or not by_person(e, p.include_failed):
        return None
    how = f"from {region}" if other_region else f"under a key of account {key_account}"
    return change_hit(e, "Snapshot", source, f"copied {how}", source_region=region, kms_key=key)
