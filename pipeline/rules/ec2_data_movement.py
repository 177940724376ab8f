"""EC2 data movement: is a disk image or snapshot being copied to another region or under another
account's key, exported to S3, or is network traffic being mirrored; is a network ACL letting the whole
internet in?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, call
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import OTHER_ACCOUNT, account_of, foreign
from pipeline.rules.change_common import by_person, change_hit, first_text
from pipeline.rules.forms import with_denied

EC2 = "ec2.amazonaws.com"
COPY_RUNBOOK = (
    "Find out where the copy went and who asked for it. If the region or key is not the organization's "
    "(allowed_regions, allowed_accounts): delete the copy, remove any sharing on it, revoke the principal's "
    "sessions and keys, and treat the disk's data as disclosed."
)


@match(
    id="ec2-image-or-snapshot-copied-to-another-region-or-key",
    title="AMI or EBS snapshot copied from another region or under another account's key",
    severity="medium",
    attack="T1537",
    events={EC2: ["CopyImage", "CopySnapshot"]},
    params={"allowed_regions": [], "allowed_accounts": [], "include_failed": False},
    dedup="1h",
    runbook=COPY_RUNBOOK,
    cases=[
        *with_denied(
            "snapshot copied across regions",
            call(
                EC2,
                "CopySnapshot",
                {"sourceRegion": "eu-west-1", "sourceSnapshotId": "snap-0123456789abcdef0", "encrypted": True},
                {"snapshotId": "snap-0fedcba9876543210"},
            ),
            failed_expect=0,
            failed_why="no copy exists",
        ),
        Case(
            "AMI copied across regions",
            call(
                EC2, "CopyImage", {"sourceRegion": "eu-west-1", "sourceImageId": "ami-0123456789abcdef0", "name": "web"}
            ),
            expect=1,
        ),
        Case(
            "copy re-encrypted under an outside key",
            call(
                EC2,
                "CopySnapshot",
                {
                    "sourceRegion": "us-east-1",
                    "sourceSnapshotId": "snap-0123",
                    "encrypted": True,
                    "kmsKeyId": f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/k9",
                },
            ),
            expect=1,
        ),
        Case(
            "copy to the disaster-recovery region",
            call(EC2, "CopyImage", {"sourceRegion": "eu-west-1", "sourceImageId": "ami-0123"}),
            expect=0,
            params={"allowed_regions": ["eu-west-1"]},
        ),
        Case(
            "copy within the region",
            call(
                EC2,
                "CopySnapshot",
                {
                    "sourceRegion": "us-east-1",
                    "sourceSnapshotId": "snap-0123",
                    "kmsKeyId": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k1",
                },
            ),
            expect=0,
        ),
    ],
)
def ec2_image_or_snapshot_copied_to_another_region_or_key(e: Event, p: Params) -> Hit | None:
    """CopyImage or CopySnapshot (logged in the destination region) whose source region differs from the
    call's and is not in `allowed_regions`, or that re-encrypts the copy with a KMS key of another account
    (not in `allowed_accounts`), which can then read it. Only successful calls count by default; copies AWS
    makes itself (AWS Backup, Data Lifecycle Manager) are not findings."""
    region = e.text("requestParameters", "sourceRegion")
    key = e.text("requestParameters", "kmsKeyId")
    key_account = account_of(key) if key.startswith("arn:") else ""
    other_region = bool(region) and region != e.region and region not in p.allowed_regions
    outside_key = foreign(key_account, e, p.allowed_accounts)
    if not (other_region or outside_key) or not by_person(e, p.include_failed):
        return None
    source = first_text(e, "sourceImageId", "sourceSnapshotId")
    how = f"from {region} to {e.region}" if other_region else f"under a key of account {key_account}"
    return change_hit(e, "Copy of", source, how, source_region=region, kms_key=key)


def _export_bucket(e: Event) -> str:
    request = e.request
    return (
        text(request.get("bucket"))
        or text(mapping(request.get("exportToS3")).get("s3Bucket"))
        or text(mapping(request.get("s3ExportLocation")).get("s3Bucket"))
    )


@match(
    id="ec2-image-or-instance-exported-to-s3",
    title="AMI or instance exported to S3",
    severity="high",
    attack="T1537",
    events={EC2: ["CreateStoreImageTask", "CreateInstanceExportTask", "ExportImage"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=COPY_RUNBOOK,
    cases=[
        *with_denied(
            "AMI stored in a bucket",
            call(
                EC2,
                "CreateStoreImageTask",
                {"imageId": "ami-0123456789abcdef0", "bucket": "ami-archive-x1"},
                {"objectKey": "ami-0123.bin"},
            ),
            failed_expect=0,
            failed_why="no export runs",
        ),
        Case(
            "instance exported as a disk image",
            call(
                EC2,
                "CreateInstanceExportTask",
                {
                    "instanceId": "i-0123456789abcdef0",
                    "targetEnvironment": "vmware",
                    "exportToS3": {"diskImageFormat": "VMDK", "s3Bucket": "vm-exports"},
                },
            ),
            expect=1,
        ),
        Case(
            "image exported",
            call(
                EC2,
                "ExportImage",
                {"imageId": "ami-0123", "diskImageFormat": "RAW", "s3ExportLocation": {"s3Bucket": "raw-images"}},
            ),
            expect=1,
        ),
        Case("export tasks listed", call(EC2, "DescribeExportImageTasks"), expect=0),
    ],
)
def ec2_image_or_instance_exported_to_s3(e: Event, p: Params) -> Hit | None:
    """CreateStoreImageTask, CreateInstanceExportTask or ExportImage: a whole disk written to an S3 bucket as
    a file, ready to be downloaded or copied anywhere. Only successful calls count by default; calls AWS
    makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    source = first_text(e, "imageId", "instanceId")
    bucket = _export_bucket(e)
    return change_hit(e, f"{source} exported to bucket", bucket, resources=(source, bucket))


def find_id(value: Any, prefix: str, depth: int = 0) -> str:
    """The first string starting with `prefix` (an EC2 id such as "eni-") in a request, however nested."""
    if type(value) is str:
        return value if value.startswith(prefix) else ""
    if depth > 5:
        return ""
    children = list(value.values())[:30] if type(value) is dict else items(value)[:30]
    for child in children:
        found = find_id(child, prefix, depth + 1)
        if found:
            return found
    return ""


def _mirror(name: str, **request: Any) -> dict[str, Any]:
    return call(EC2, name, {f"{name}Request": {**request, "ClientToken": "c0ffee"}})


@match(
    id="ec2-traffic-mirroring-created",
    title="VPC traffic mirroring session or target created or changed",
    severity="high",
    attack=("T1040", "T1020"),
    events={EC2: ["CreateTrafficMirrorSession", "ModifyTrafficMirrorSession", "CreateTrafficMirrorTarget"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "Traffic mirroring copies every packet of a network interface to a target. Check the target (an ENI or "
        "load balancer, possibly in another account) is the team's monitoring appliance; if not, delete the "
        "session and target, and treat the mirrored traffic as captured."
    ),
    cases=[
        *with_denied(
            "session mirroring a database's interface",
            _mirror(
                "CreateTrafficMirrorSession",
                NetworkInterfaceId="eni-0db0123456789abcd",
                TrafficMirrorTargetId="tmt-0123456789abcdef0",
                TrafficMirrorFilterId="tmf-0123",
                SessionNumber=1,
            ),
            failed_expect=0,
            failed_why="nothing is mirrored",
        ),
        Case(
            "target created",
            _mirror(
                "CreateTrafficMirrorTarget",
                NetworkLoadBalancerArn=(
                    f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/net/collector/abc"
                ),
            ),
            expect=1,
        ),
        Case(
            "mirror filter rule only",
            _mirror("CreateTrafficMirrorFilterRule", TrafficMirrorFilterId="tmf-0123"),
            expect=0,
        ),
        Case("session deleted", _mirror("DeleteTrafficMirrorSession", TrafficMirrorSessionId="tms-0123"), expect=0),
    ],
)
def ec2_traffic_mirroring_created(e: Event, p: Params) -> Hit | None:
    """CreateTrafficMirrorSession, ModifyTrafficMirrorSession or CreateTrafficMirrorTarget: a copy of a
    network interface's traffic sent elsewhere, a way to read unencrypted traffic inside the VPC. Filters
    alone mirror nothing and deleting a session ends the copy: neither is a finding. Only successful calls
    count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    request = e.raw.get("requestParameters")
    source = find_id(request, "eni-") or find_id(request, "tms-")
    target = find_id(request, "tmt-") or find_id(request, "arn:aws:elasticloadbalancing")
    return change_hit(
        e,
        f"Traffic mirroring ({e.name}) of",
        source,
        f"to {target}" if target else "",
        resources=tuple(x for x in (source, target) if x),
    )


def _nacl_entry(
    cidr: str = "0.0.0.0/0", action: str = "allow", egress: bool = False, name: str = "CreateNetworkAclEntry"
) -> dict[str, Any]:
    return call(
        EC2,
        name,
        {
            "networkAclId": "acl-0123456789abcdef0",
            "ruleNumber": 90,
            "egress": egress,
            "ruleAction": action,
            "aclProtocol": "-1",
            "cidrBlock": cidr,
        },
    )


@match(
    id="ec2-network-acl-open-to-internet",
    title="Network ACL entry allowing all inbound traffic from the internet",
    severity="medium",
    attack=("T1562.007", "T1133"),
    events={EC2: ["CreateNetworkAclEntry", "ReplaceNetworkAclEntry"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "Check the entry's rule number, protocol and ports against the subnet's purpose. If it is not intended, "
        "replace or delete it and review the subnet's security groups, which are now the only barrier."
    ),
    cases=[
        *with_denied("inbound allow from anywhere", _nacl_entry(), failed_expect=0, failed_why="the ACL is unchanged"),
        Case(
            "IPv6 inbound allow from anywhere",
            call(
                EC2,
                "ReplaceNetworkAclEntry",
                {
                    "networkAclId": "acl-0123",
                    "ruleNumber": 100,
                    "egress": False,
                    "ruleAction": "allow",
                    "aclProtocol": "6",
                    "ipv6CidrBlock": "::/0",
                    "portRange": {"from": 22, "to": 22},
                },
            ),
            expect=1,
        ),
        Case("outbound allow to anywhere", _nacl_entry(egress=True), expect=0),
        Case("inbound deny from anywhere", _nacl_entry(action="deny"), expect=0),
        Case("inbound allow from the corporate range", _nacl_entry("10.0.0.0/8"), expect=0),
    ],
)
def ec2_network_acl_open_to_internet(e: Event, p: Params) -> Hit | None:
    """CreateNetworkAclEntry or ReplaceNetworkAclEntry with an inbound allow rule for 0.0.0.0/0 or ::/0 (any
    /0 block): the subnet's network ACL no longer filters the internet. Only successful calls count by
    default; calls AWS makes itself are not findings."""
    request = e.request
    cidr = text(request.get("cidrBlock")) or text(request.get("ipv6CidrBlock"))
    if not cidr.endswith("/0") or request.get("egress") is not False or text(request.get("ruleAction")) != "allow":
        return None
    if not by_person(e, p.include_failed):
        return None
    ports = mapping(request.get("portRange"))
    low, high = ports.get("from"), ports.get("to")
    span = f"ports {low}-{high}" if type(low) is int and type(high) is int else "all ports"
    return change_hit(
        e,
        "Network ACL",
        text(request.get("networkAclId")),
        f"allows {cidr} inbound ({span})",
        cidr=cidr,
        protocol=text(request.get("aclProtocol")),
    )
