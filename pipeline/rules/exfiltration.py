"""Exfiltration: sharing machine images and snapshots with accounts the attacker controls, or with everyone.
A share copies nothing that CloudTrail in the victim account would show: the attacker restores the data in
their own account, so the share itself is the last visible step."""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, call, failed, via_service
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import OTHER_ACCOUNT, actor, by_aws_service, foreign, strings

EC2 = "ec2.amazonaws.com"
RDS = "rds.amazonaws.com"
SHARE_PARAMS: dict[str, list[str]] = {"allowed_accounts": [], "allowed_organizations": []}
SHARE_RUNBOOK = (
    "Check whether the recipient account is known (a partner, another account of the organization: add it "
    "to allowed_accounts). If not: remove the permission at once, check whether the recipient already "
    "copied or restored the resource (it will not show in this account's trail), treat the data as "
    "disclosed, and investigate the principal."
)


def _grants(permission: Any) -> list[dict[str, Any]]:
    """The entries added by a launch/create-volume permission change, in both request shapes."""
    add = mapping(permission).get("add")
    return [mapping(g) for g in (items(add) or items(mapping(add).get("items")))[:100]]


def _recipients(e: Event, grants: list[dict[str, Any]], p: Params) -> tuple[list[str], bool]:
    """(unexpected recipients, public?) of the added grants."""
    unexpected: list[str] = []
    public = False
    for grant in grants:
        account = text(grant.get("userId"))
        org = text(grant.get("organizationArn")) or text(grant.get("organizationalUnitArn"))
        if text(grant.get("group")).lower() == "all":
            public = True
            unexpected.append("all")
        elif foreign(account, e, p.allowed_accounts):
            unexpected.append(account)
        elif org and p.allowed_organizations and not any(org.startswith(a) for a in strings(p.allowed_organizations)):
            unexpected.append(org)
    return unexpected, public


def _share_hit(e: Event, kind: str, resource: str, recipients: list[str], public: bool) -> Hit:
    to = "everyone (public)" if public else ", ".join(recipients)
    return Hit(
        key=f"{kind}|{resource}",
        resources=(resource,) if resource else (),
        summary=f"{kind} {resource} shared with {to} by {e.principal}",
        context={"recipients": recipients, "public": public, "actor": actor(e)},
    )


@match(
    id="ec2-ami-shared-publicly-or-externally",
    title="AMI shared publicly or with an external account",
    severity="critical",
    attack="T1537",
    events={EC2: ["ModifyImageAttribute"]},
    params=SHARE_PARAMS,
    dedup="1h",
    runbook=SHARE_RUNBOOK,
    cases=[
        Case(
            "shared with an external account",
            call(
                EC2,
                "ModifyImageAttribute",
                {
                    "imageId": "ami-0abc",
                    "attributeType": "launchPermission",
                    "launchPermission": {"add": {"items": [{"userId": OTHER_ACCOUNT}]}},
                },
            ),
            expect=1,
        ),
        Case(
            "made public",
            call(
                EC2,
                "ModifyImageAttribute",
                {"imageId": "ami-0abc", "launchPermission": {"add": {"items": [{"group": "all"}]}}},
            ),
            expect=1,
        ),
        Case(
            "shared with an allowed account",
            call(
                EC2,
                "ModifyImageAttribute",
                {"imageId": "ami-0abc", "launchPermission": {"add": {"items": [{"userId": OTHER_ACCOUNT}]}}},
            ),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
        Case(
            "shared with the organization",
            call(
                EC2,
                "ModifyImageAttribute",
                {
                    "imageId": "ami-0abc",
                    "launchPermission": {
                        "add": {"items": [{"organizationArn": f"arn:aws:organizations::{ACCOUNT}:organization/o-abc"}]}
                    },
                },
            ),
            expect=0,
        ),
        Case(
            "sharing removed",
            call(
                EC2,
                "ModifyImageAttribute",
                {"imageId": "ami-0abc", "launchPermission": {"remove": {"items": [{"userId": OTHER_ACCOUNT}]}}},
            ),
            expect=0,
        ),
        Case(
            "denied share",
            call(
                EC2,
                "ModifyImageAttribute",
                {"imageId": "ami-0abc", "launchPermission": {"add": {"items": [{"group": "all"}]}}},
                **failed(),
            ),
            expect=0,
        ),
    ],
)
def ec2_ami_shared_publicly_or_externally(e: Event, p: Params) -> Hit | None:
    """ModifyImageAttribute adding launch permission for another account (not in `allowed_accounts`) or
    for everyone (group "all"). Organization or OU shares are only findings when `allowed_organizations`
    is set and the ARN is not in it. Only successful calls count: a denied share exposes nothing.
    Calls AWS makes itself are not findings."""
    if by_aws_service(e) or not e.succeeded:
        return None
    recipients, public = _recipients(e, _grants(e.request.get("launchPermission")), p)
    if not recipients:
        return None
    return _share_hit(e, "AMI", e.text("requestParameters", "imageId"), recipients, public)


@match(
    id="ebs-snapshot-shared-externally",
    title="EBS snapshot shared publicly or with an external account",
    severity="critical",
    attack="T1537",
    events={EC2: ["ModifySnapshotAttribute"]},
    params=SHARE_PARAMS,
    dedup="1h",
    runbook=SHARE_RUNBOOK,
    cases=[
        Case(
            "shared with an external account",
            call(
                EC2,
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-0abc",
                    "attributeType": "CREATE_VOLUME_PERMISSION",
                    "createVolumePermission": {"add": {"items": [{"userId": OTHER_ACCOUNT}]}},
                },
            ),
            expect=1,
        ),
        Case(
            "made public",
            call(
                EC2,
                "ModifySnapshotAttribute",
                {"snapshotId": "snap-0abc", "createVolumePermission": {"add": {"items": [{"group": "all"}]}}},
            ),
            expect=1,
        ),
        Case(
            "shared with an allowed account",
            call(
                EC2,
                "ModifySnapshotAttribute",
                {"snapshotId": "snap-0abc", "createVolumePermission": {"add": {"items": [{"userId": OTHER_ACCOUNT}]}}},
            ),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
        Case(
            "AWS Backup copying cross-account",
            call(
                EC2,
                "ModifySnapshotAttribute",
                {"snapshotId": "snap-0abc", "createVolumePermission": {"add": {"items": [{"userId": OTHER_ACCOUNT}]}}},
                **via_service("backup"),
            ),
            expect=0,
        ),
    ],
)
def ebs_snapshot_shared_externally(e: Event, p: Params) -> Hit | None:
    """ModifySnapshotAttribute adding create-volume permission for another account (not in
    `allowed_accounts`) or for everyone (group "all"): the recipient can copy the disk. Only successful
    calls count; shares made by AWS services (AWS Backup cross-account copies, `invokedBy`) are not
    findings."""
    if by_aws_service(e) or not e.succeeded:
        return None
    recipients, public = _recipients(e, _grants(e.request.get("createVolumePermission")), p)
    if not recipients:
        return None
    return _share_hit(e, "EBS snapshot", e.text("requestParameters", "snapshotId"), recipients, public)


@match(
    id="rds-snapshot-shared-externally",
    title="RDS snapshot shared publicly or with an external account",
    severity="critical",
    attack="T1537",
    events={RDS: ["ModifyDBSnapshotAttribute", "ModifyDBClusterSnapshotAttribute"]},
    params=SHARE_PARAMS,
    dedup="1h",
    runbook=SHARE_RUNBOOK,
    cases=[
        Case(
            "shared with an external account",
            call(
                RDS,
                "ModifyDBSnapshotAttribute",
                {"attributeName": "restore", "dBSnapshotIdentifier": "prod-snap", "valuesToAdd": [OTHER_ACCOUNT]},
            ),
            expect=1,
        ),
        Case(
            "cluster snapshot made public",
            call(
                RDS,
                "ModifyDBClusterSnapshotAttribute",
                {"attributeName": "restore", "dBClusterSnapshotIdentifier": "aurora-snap", "valuesToAdd": ["all"]},
            ),
            expect=1,
        ),
        Case(
            "shared with an allowed account",
            call(
                RDS,
                "ModifyDBSnapshotAttribute",
                {"attributeName": "restore", "dBSnapshotIdentifier": "prod-snap", "valuesToAdd": [OTHER_ACCOUNT]},
            ),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
        Case(
            "sharing revoked",
            call(
                RDS,
                "ModifyDBSnapshotAttribute",
                {"attributeName": "restore", "dBSnapshotIdentifier": "prod-snap", "valuesToRemove": [OTHER_ACCOUNT]},
            ),
            expect=0,
        ),
    ],
)
def rds_snapshot_shared_externally(e: Event, p: Params) -> Hit | None:
    """ModifyDBSnapshotAttribute / ModifyDBClusterSnapshotAttribute adding another account (not in
    `allowed_accounts`) or "all" to a snapshot's `restore` attribute: the recipient can restore the
    database. Only successful calls count; calls AWS makes itself are not findings."""
    if by_aws_service(e) or not e.succeeded:
        return None
    if e.text("requestParameters", "attributeName").lower() != "restore":
        return None
    grants = [
        {"group": "all"} if v.lower() == "all" else {"userId": v}
        for v in strings(e.request.get("valuesToAdd"), limit=100)
    ]
    recipients, public = _recipients(e, grants, p)
    if not recipients:
        return None
    snapshot = e.text("requestParameters", "dBSnapshotIdentifier") or e.text(
        "requestParameters", "dBClusterSnapshotIdentifier"
    )
    return _share_hit(e, "RDS snapshot", snapshot, recipients, public)
