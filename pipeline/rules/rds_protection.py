"""RDS protection: was a database made reachable from the internet, stripped of its deletion protection,
backups or activity stream, opened in a DB security group, or deleted with its snapshots?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, call
from pipeline.event import Event, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.change_common import by_person, change_hit, first_text
from pipeline.rules.forms import with_denied

RDS = "rds.amazonaws.com"
DB_FIELDS = (
    "dBInstanceIdentifier",
    "dBClusterIdentifier",
    "resourceArn",
    "dbiResourceId",
    "dbClusterResourceId",
    "dBSnapshotIdentifier",
    "dBClusterSnapshotIdentifier",
    "dBSecurityGroupName",
)
DB_RUNBOOK = (
    "Ask the database owner whether the change was planned. If not: undo it (restore the setting from "
    "infrastructure code, recreate from the latest snapshot if data was lost), check the database's security "
    "groups and recent connections, and treat the principal as compromised."
)
RESTORES = [
    "RestoreDBInstanceFromDBSnapshot",
    "RestoreDBInstanceToPointInTime",
    "RestoreDBInstanceFromS3",
    "CreateDBInstance",
    "CreateDBInstanceReadReplica",
]


def database(e: Event) -> str:
    return first_text(e, *DB_FIELDS)


def _modify(name: str = "ModifyDBInstance", **request: Any) -> dict[str, Any]:
    ident = (
        {"dBInstanceIdentifier": "orders-prod"}
        if name == "ModifyDBInstance"
        else {"dBClusterIdentifier": "orders-aurora"}
    )
    return call(
        RDS,
        name,
        {**ident, "applyImmediately": True, **request},
        {**ident, "dBInstanceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders-prod"},
    )


def _flag(value: Any) -> bool | None:
    """A boolean request field, whether logged as a JSON boolean or as text."""
    if isinstance(value, bool):
        return value
    lowered = text(value).lower()
    return True if lowered == "true" else False if lowered == "false" else None


@match(
    id="rds-made-public",
    title="RDS database made publicly accessible, or restored or created as public",
    severity="medium",
    attack=("T1133", "T1562.007"),
    events={RDS: ["ModifyDBInstance", *RESTORES]},
    params={"include_failed": False},
    dedup="1h",
    runbook=DB_RUNBOOK,
    cases=[
        *with_denied(
            "instance modified to public",
            _modify(publiclyAccessible=True),
            failed_expect=0,
            failed_why="the database stays private",
        ),
        Case(
            "snapshot restored as a public instance",
            call(
                RDS,
                "RestoreDBInstanceFromDBSnapshot",
                {"dBInstanceIdentifier": "restore-1", "dBSnapshotIdentifier": "orders-nightly"},
                {"dBInstanceIdentifier": "restore-1", "publiclyAccessible": True},
            ),
            expect=1,
        ),
        Case(
            "point-in-time restore as public",
            call(
                RDS,
                "RestoreDBInstanceToPointInTime",
                {
                    "sourceDBInstanceIdentifier": "orders-prod",
                    "targetDBInstanceIdentifier": "pitr-1",
                    "publiclyAccessible": True,
                },
            ),
            expect=1,
        ),
        Case("instance modified to private", _modify(publiclyAccessible=False), expect=0),
        Case(
            "private restore",
            call(RDS, "RestoreDBInstanceFromDBSnapshot", {"dBInstanceIdentifier": "r"}, {"publiclyAccessible": False}),
            expect=0,
        ),
        Case("storage resized", _modify(allocatedStorage=200), expect=0),
    ],
)
def rds_made_public(e: Event, p: Params) -> Hit | None:
    """ModifyDBInstance with publiclyAccessible true, or a restore, creation or read replica that is publicly
    accessible (in the request or the response): the database gets a public DNS name and address, one
    security group rule away from the internet. Only successful calls count by default; calls AWS makes
    itself are not findings."""
    public = _flag(e.request.get("publiclyAccessible"))
    if public is None and e.name != "ModifyDBInstance":
        public = _flag(e.response.get("publiclyAccessible"))
    if not public or not by_person(e, p.include_failed):
        return None
    target = database(e) or e.text("requestParameters", "targetDBInstanceIdentifier")
    return change_hit(e, f"RDS instance made public ({e.name}):", target)


@match(
    id="rds-deletion-protection-disabled",
    title="RDS deletion protection disabled",
    severity="high",
    attack=("T1490", "T1562"),
    events={RDS: ["ModifyDBInstance", "ModifyDBCluster"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=DB_RUNBOOK,
    cases=[
        *with_denied(
            "instance protection off",
            _modify(deletionProtection=False),
            failed_expect=1,
            failed_why="trying to remove the protection is the behaviour",
        ),
        Case("cluster protection off", _modify("ModifyDBCluster", deletionProtection=False), expect=1),
        Case("protection on", _modify(deletionProtection=True), expect=0),
        Case("other change", _modify(dBInstanceClass="db.r6g.large"), expect=0),
    ],
)
def rds_deletion_protection_disabled(e: Event, p: Params) -> Hit | None:
    """ModifyDBInstance or ModifyDBCluster with deletionProtection false: the step before a database can be
    deleted. Denied attempts count by default; calls AWS makes itself are not findings."""
    if _flag(e.request.get("deletionProtection")) is not False or not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Deletion protection disabled on", database(e))


@match(
    id="rds-automated-backups-disabled-or-deleted",
    title="RDS automated backups disabled or deleted",
    severity="high",
    attack=("T1490", "T1485"),
    events={
        RDS: [
            "ModifyDBInstance",
            "ModifyDBCluster",
            "DeleteDBInstanceAutomatedBackup",
            "DeleteDBClusterAutomatedBackup",
        ]
    },
    params={"include_failed": True},
    dedup="1h",
    runbook=DB_RUNBOOK,
    cases=[
        *with_denied(
            "retention set to zero",
            _modify(backupRetentionPeriod=0),
            failed_expect=1,
            failed_why="trying to remove the backups is the behaviour",
        ),
        Case(
            "retained automated backups deleted",
            call(RDS, "DeleteDBInstanceAutomatedBackup", {"dbiResourceId": "db-FEVDSUCWJ43PXONVT6ZU2TK4WY"}),
            expect=1,
        ),
        Case(
            "cluster backups deleted",
            call(RDS, "DeleteDBClusterAutomatedBackup", {"dbClusterResourceId": "cluster-ABCDEFGHIJKL"}),
            expect=1,
        ),
        Case("retention raised to 14 days", _modify(backupRetentionPeriod=14), expect=0),
    ],
)
def rds_automated_backups_disabled_or_deleted(e: Event, p: Params) -> Hit | None:
    """Automated backups turned off (backupRetentionPeriod 0, which also deletes the existing automated
    backups) or retained automated backups deleted: the recovery point of the database goes. Denied
    attempts count by default; calls AWS makes itself are not findings."""
    retention = e.request.get("backupRetentionPeriod")
    if e.name.startswith("Modify") and not ((type(retention) is int and retention == 0) or retention == "0"):
        return None
    if not by_person(e, p.include_failed):
        return None
    what = "Automated backups disabled on" if e.name.startswith("Modify") else "Automated backups deleted for"
    return change_hit(e, what, database(e))


@match(
    id="rds-database-deleted",
    title="RDS database instance or cluster deleted",
    severity="high",
    attack=("T1485", "T1531"),
    events={RDS: ["DeleteDBInstance", "DeleteDBCluster"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=DB_RUNBOOK,
    cases=[
        *with_denied(
            "instance deleted without a final snapshot",
            call(
                RDS,
                "DeleteDBInstance",
                {"dBInstanceIdentifier": "orders-prod", "skipFinalSnapshot": True, "deleteAutomatedBackups": True},
            ),
            failed_expect=0,
            failed_why="the database stays",
        ),
        Case(
            "cluster deleted with a final snapshot",
            call(
                RDS,
                "DeleteDBCluster",
                {
                    "dBClusterIdentifier": "orders-aurora",
                    "skipFinalSnapshot": False,
                    "finalDBSnapshotIdentifier": "orders-final",
                },
            ),
            expect=1,
        ),
        Case("instance described", call(RDS, "DescribeDBInstances"), expect=0),
    ],
)
def rds_database_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteDBInstance or DeleteDBCluster succeeded; the finding says whether a final snapshot was skipped
    and automated backups deleted with it (nothing left to restore). Only successful calls count by default;
    calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    skip = _flag(e.request.get("skipFinalSnapshot")) is True
    backups = _flag(e.request.get("deleteAutomatedBackups")) is True
    detail = "(no final snapshot)" if skip else ""
    return change_hit(
        e, "RDS database deleted:", database(e), detail, skip_final_snapshot=skip, delete_automated_backups=backups
    )


@match(
    id="rds-snapshot-deleted",
    title="RDS snapshot deleted",
    severity="medium",
    attack=("T1485", "T1490"),
    events={RDS: ["DeleteDBSnapshot", "DeleteDBClusterSnapshot"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=DB_RUNBOOK,
    cases=[
        *with_denied(
            "manual snapshot deleted",
            call(RDS, "DeleteDBSnapshot", {"dBSnapshotIdentifier": "orders-pre-migr"}),
            failed_expect=0,
            failed_why="the snapshot stays",
        ),
        Case(
            "cluster snapshot deleted",
            call(RDS, "DeleteDBClusterSnapshot", {"dBClusterSnapshotIdentifier": "aurora-weekly"}),
            expect=1,
        ),
        Case("snapshot created", call(RDS, "CreateDBSnapshot", {"dBSnapshotIdentifier": "x"}), expect=0),
    ],
)
def rds_snapshot_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteDBSnapshot or DeleteDBClusterSnapshot succeeded: a recovery point gone (rotation jobs delete old
    snapshots routinely: allowlist their role). Only successful calls count by default; snapshots AWS
    expires itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "RDS snapshot deleted:", database(e))


@match(
    id="rds-activity-stream-stopped",
    title="RDS database activity stream stopped",
    severity="high",
    attack="T1562.008",
    events={RDS: ["StopActivityStream"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=(
        "The activity stream is the database's audit log. Restart it (StartActivityStream), ask the principal's "
        "owner why it stopped, and review database connections and queries around the gap."
    ),
    cases=[
        *with_denied(
            "stream stopped",
            call(
                RDS,
                "StopActivityStream",
                {"resourceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:orders-aurora", "applyImmediately": True},
                {"status": "stopping"},
            ),
            failed_expect=1,
            failed_why="trying to stop the audit is the behaviour",
        ),
        Case("stream started", call(RDS, "StartActivityStream", {"resourceArn": "c", "mode": "async"}), expect=0),
    ],
)
def rds_activity_stream_stopped(e: Event, p: Params) -> Hit | None:
    """StopActivityStream: the database's activity (audit) stream stops. Denied attempts count by default;
    calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Activity stream stopped on", database(e))


@match(
    id="rds-db-security-group-ingress-authorized",
    title="RDS DB security group opened to an address range or EC2 group",
    severity="medium",
    attack=("T1562.007", "T1098"),
    events={RDS: ["AuthorizeDBSecurityGroupIngress"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=DB_RUNBOOK,
    cases=[
        *with_denied(
            "ingress from the internet",
            call(RDS, "AuthorizeDBSecurityGroupIngress", {"dBSecurityGroupName": "legacy-db", "cIDRIP": "0.0.0.0/0"}),
            failed_expect=0,
            failed_why="the group is unchanged",
        ),
        Case(
            "ingress from an EC2 group of another account",
            call(
                RDS,
                "AuthorizeDBSecurityGroupIngress",
                {
                    "dBSecurityGroupName": "legacy-db",
                    "eC2SecurityGroupName": "web",
                    "eC2SecurityGroupOwnerId": "444455556666",
                },
            ),
            expect=1,
        ),
        Case(
            "ingress revoked",
            call(RDS, "RevokeDBSecurityGroupIngress", {"dBSecurityGroupName": "legacy-db", "cIDRIP": "0.0.0.0/0"}),
            expect=0,
        ),
    ],
)
def rds_db_security_group_ingress_authorized(e: Event, p: Params) -> Hit | None:
    """AuthorizeDBSecurityGroupIngress (classic DB security groups): a CIDR range or EC2 security group may
    now reach the database; the finding names the source (0.0.0.0/0 is the internet). Only successful calls
    count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    source = (
        e.text("requestParameters", "cIDRIP")
        or e.text("requestParameters", "eC2SecurityGroupId")
        or e.text("requestParameters", "eC2SecurityGroupName")
    )
    return change_hit(
        e, "DB security group", database(e), f"opened to {source}", source=source, internet=source.endswith("/0")
    )
