"""EC2 destruction: is one principal deleting many EBS snapshots or volumes, stopping or terminating many
instances, or turning off the account's default EBS encryption?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import at, call, role_session, service_linked
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import actor, by_aws_service, service_linked_role
from pipeline.rules.change_common import by_person, change_hit
from pipeline.rules.forms import with_denied
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold

EC2 = "ec2.amazonaws.com"
BULK_RUNBOOK = (
    "Find out whether this is a planned teardown (a decommissioning, a cleanup job: allowlist its role). If "
    "not: revoke the principal's sessions and keys at once, stop further deletions, and restore from the "
    "remaining snapshots, AMIs or backups."
)


def _deleted(kind: str, i: int, minutes: float, **fields: Any) -> dict[str, Any]:
    if kind == "snapshot":
        return {
            **call(EC2, "DeleteSnapshot", {"snapshotId": f"snap-0{i:016x}"}, {"_return": True}),
            "eventTime": at(minutes),
            **fields,
        }
    return {
        **call(EC2, "DeleteVolume", {"volumeId": f"vol-0{i:016x}"}, {"_return": True}),
        "eventTime": at(minutes),
        **fields,
    }


@threshold(
    id="ebs-snapshots-or-volumes-deleted-in-bulk",
    title="Many EBS snapshots or volumes deleted by one principal",
    severity="high",
    attack=("T1485", "T1490"),
    events={EC2: ["DeleteSnapshot", "DeleteVolume"]},
    params={"resources": 10, "window": "10m"},
    threshold="resources",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=BULK_RUNBOOK,
    cases=[
        Case("ten snapshots deleted in three minutes", [_deleted("snapshot", i, i * 0.3) for i in range(10)], expect=1),
        Case(
            "snapshots and volumes together",
            [_deleted("snapshot" if i % 2 else "volume", i, i * 0.3) for i in range(10)],
            expect=1,
        ),
        Case(
            "ten denied deletions (nothing deleted)",
            [_deleted("snapshot", i, i * 0.3, errorCode="Client.UnauthorizedOperation") for i in range(10)],
            expect=0,
        ),
        Case("nine deletions", [_deleted("snapshot", i, i * 0.3) for i in range(9)], expect=0),
        Case(
            "Data Lifecycle Manager expiring snapshots",
            [
                _deleted("snapshot", i, i * 0.3, userIdentity=service_linked("dlm", "AWSServiceRoleForEC2DLM"))
                for i in range(20)
            ],
            expect=0,
        ),
    ],
)
def ebs_snapshots_or_volumes_deleted_in_bulk(e: Event, p: Params) -> Step | None:
    """At least `resources` distinct EBS snapshots and volumes deleted by one principal (the role behind a
    session) within `window`: destroying the disks and their recovery points. Only successful calls count;
    deletions AWS makes itself (Data Lifecycle Manager, AWS Backup) are not findings."""
    if not e.succeeded or by_aws_service(e):
        return None
    resource = e.text("requestParameters", "snapshotId") or e.text("requestParameters", "volumeId")
    return Step(actor(e), value=resource) if resource else None


AUTO_SCALING = "autoscaling.amazonaws.com"


def by_auto_scaling(e: Event) -> bool:
    """Auto Scaling made the call: its service-linked role, or the service named as the caller's source
    address or in `invokedBy` (both written by CloudTrail, not by the client)."""
    return (
        service_linked_role(e) == AUTO_SCALING
        or e.source_ip == AUTO_SCALING
        or text(e.identity.get("invokedBy")) == AUTO_SCALING
    )


def instance_ids(e: Event, limit: int = 1000) -> list[str]:
    """The instance ids of a Start/Stop/Terminate/Reboot request (`instancesSet.items`)."""
    found = []
    for entry in items(mapping(e.request.get("instancesSet")).get("items"))[:limit]:
        iid = text(mapping(entry).get("instanceId"))
        if iid:
            found.append(iid)
    return found


def _power(name: str, ids: list[str], minutes: float = 0.0, **fields: Any) -> dict[str, Any]:
    return {
        **call(EC2, name, {"instancesSet": {"items": [{"instanceId": i} for i in ids]}, "force": False}),
        "eventTime": at(minutes),
        **fields,
    }


def _ids(start: int, count: int) -> list[str]:
    return [f"i-0{n:016x}" for n in range(start, start + count)]


@threshold(
    id="ec2-instances-stopped-or-terminated-in-bulk",
    title="Many EC2 instances stopped or terminated by one principal",
    severity="high",
    attack=("T1485", "T1489", "T1529"),
    events={EC2: ["StopInstances", "TerminateInstances"]},
    params={"instances": 10, "window": "10m", "include_auto_scaling": False},
    threshold="instances",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=BULK_RUNBOOK,
    cases=[
        Case("ten instances terminated in one call", _power("TerminateInstances", _ids(0, 10)), expect=1),
        Case("ten instances stopped one by one", [_power("StopInstances", _ids(i, 1), i) for i in range(10)], expect=1),
        Case(
            "ten instances, denied (nothing stopped)",
            _power("TerminateInstances", _ids(0, 10), errorCode="Client.UnauthorizedOperation"),
            expect=0,
        ),
        Case("a developer stopping three instances", _power("StopInstances", _ids(0, 3)), expect=0),
        Case(
            "Auto Scaling scaling in twenty instances",
            [_power("TerminateInstances", _ids(i, 1), i * 0.2, userIdentity=service_linked()) for i in range(20)],
            expect=0,
        ),
        Case(
            "Auto Scaling scaling in, named only by its source address",
            [
                _power(
                    "TerminateInstances",
                    _ids(i, 1),
                    i * 0.2,
                    sourceIPAddress=AUTO_SCALING,
                    userAgent=AUTO_SCALING,
                    userIdentity=role_session("AWSServiceRoleForAutoScaling", "AutoScaling"),
                )
                for i in range(20)
            ],
            expect=0,
        ),
        Case(
            "Auto Scaling emptying a group, when counted",
            [_power("TerminateInstances", _ids(i, 1), i * 0.2, userIdentity=service_linked()) for i in range(20)],
            expect=1,
            params={"include_auto_scaling": True},
            no_form={"console": "Auto Scaling's own calls are not made in a console"},
        ),
        Case(
            "Data Lifecycle Manager (a service acting on its own schedule)",
            [
                _power(
                    "StopInstances", _ids(i, 1), i * 0.2, userIdentity=service_linked("dlm", "AWSServiceRoleForEC2DLM")
                )
                for i in range(20)
            ],
            expect=0,
        ),
    ],
)
def ec2_instances_stopped_or_terminated_in_bulk(e: Event, p: Params) -> list[Step] | None:
    """At least `instances` distinct instances stopped or terminated by one principal within `window`,
    counting every instance of a call: an outage or the destruction of a fleet. Only successful calls
    count; services acting on their own are not findings. Auto Scaling terminating instances acts for
    whoever set the group's capacity, but its scale-in is routine, so its service-linked role is counted
    only with `include_auto_scaling` (then a group emptied by setting its capacity to zero shows)."""
    if not e.succeeded or by_aws_service(e):
        return None
    if not p.include_auto_scaling and by_auto_scaling(e):
        return None
    who = actor(e)
    return [Step(who, value=iid) for iid in instance_ids(e)] or None


@match(
    id="ec2-ebs-default-encryption-disabled",
    title="EBS encryption by default disabled",
    severity="high",
    attack=("T1562", "T1486"),
    events={EC2: ["DisableEbsEncryptionByDefault"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=(
        "New EBS volumes in this region are no longer encrypted unless asked. Turn the setting back on "
        "(EnableEbsEncryptionByDefault), check for unencrypted volumes and snapshots created since, and ask the "
        "principal's owner why it changed."
    ),
    cases=[
        *with_denied(
            "default encryption disabled",
            call(
                EC2,
                "DisableEbsEncryptionByDefault",
                {"DisableEbsEncryptionByDefaultRequest": ""},
                {"DisableEbsEncryptionByDefaultResponse": {"ebsEncryptionByDefault": False}},
            ),
            failed_expect=1,
            failed_why="trying to turn the control off is the behaviour",
        ),
        Case("default encryption enabled", call(EC2, "EnableEbsEncryptionByDefault"), expect=0),
    ],
)
def ec2_ebs_default_encryption_disabled(e: Event, p: Params) -> Hit | None:
    """DisableEbsEncryptionByDefault: new volumes and snapshot copies in the region are no longer encrypted
    by default. Denied attempts count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "EBS default encryption disabled in", e.region, key=f"{e.account}|{e.region}")
