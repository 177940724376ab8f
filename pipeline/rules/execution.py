"""Execution: running code on instances through the control plane, and launching compute to abuse."""

from __future__ import annotations

from typing import Any

from pipeline.cases import call, failed, service_linked, via_service
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import (
    OTHER_ACCOUNT,
    account_of,
    actor,
    attempted,
    by_aws_service,
    foreign,
    from_console,
    outcome,
    strings,
)

EC2 = "ec2.amazonaws.com"
SSM = "ssm.amazonaws.com"

# GPU, machine-learning, FPGA and very large memory families: what cryptominers and LLM abusers launch.
UNUSUAL_FAMILIES = [
    "p2",
    "p3",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "g2",
    "g3",
    "g3s",
    "g4dn",
    "g4ad",
    "g5",
    "g5g",
    "g6",
    "g6e",
    "gr6",
    "inf1",
    "inf2",
    "trn1",
    "trn1n",
    "trn2",
    "dl1",
    "dl2q",
    "f1",
    "f2",
    "vt1",
    "x1",
    "x1e",
    "x2idn",
    "x2iedn",
    "x2iezn",
    "u-*",
]


def _instance_types(e: Event) -> list[str]:
    found = strings(e.request.get("instanceType"))
    for item in items(mapping(e.response.get("instancesSet")).get("items"))[:100]:
        value = text(mapping(item).get("instanceType"))
        if value and value not in found:
            found.append(value)
    return found


def _unusual(instance_type: str, families: list[str], allowed: list[str]) -> bool:
    if instance_type in allowed:
        return False
    family = instance_type.split(".", 1)[0].lower()
    for f in families:
        if type(f) is not str:
            continue
        if (f.endswith("*") and family.startswith(f[:-1].lower())) or family == f.lower():
            return True
    return False


def _max_count(e: Event) -> int:
    total = 0
    for item in items(mapping(e.request.get("instancesSet")).get("items"))[:100]:
        count = mapping(item).get("maxCount")
        if type(count) is int:
            total += count
    return total


@match(
    id="ec2-unusual-instance-type-launched",
    title="EC2 instances of an unusual (GPU / accelerated / huge) type launched",
    severity="high",
    attack=("T1496.001", "T1578.002"),
    events={EC2: ["RunInstances"]},
    params={"unusual_families": UNUSUAL_FAMILIES, "allowed_instance_types": [], "include_failed": True},
    dedup="1h",
    runbook=(
        "Check whether the account runs GPU or accelerated workloads and whether this principal launches them. "
        "If not: terminate the instances, look for other regions (attackers spread launches), revoke the "
        "principal's sessions and keys, and check the bill and service quotas requests."
    ),
    cases=[
        Case(
            "GPU launch",
            call(
                EC2,
                "RunInstances",
                {
                    "instanceType": "p3.16xlarge",
                    "instancesSet": {"items": [{"imageId": "ami-0abc", "minCount": 1, "maxCount": 10}]},
                },
            ),
            expect=1,
        ),
        Case(
            "denied or capacity errors are still the attempt",
            call(EC2, "RunInstances", {"instanceType": "g5.48xlarge"}, **failed("Client.UnauthorizedOperation")),
            expect=1,
        ),
        Case(
            "launch template (type only in the response)",
            call(
                EC2,
                "RunInstances",
                {"launchTemplate": {"launchTemplateId": "lt-0abc"}},
                {"instancesSet": {"items": [{"instanceId": "i-0abc", "instanceType": "u-6tb1.metal"}]}},
            ),
            expect=1,
        ),
        Case("ordinary type", call(EC2, "RunInstances", {"instanceType": "t3.micro"}), expect=0),
        Case(
            "allowed ML type",
            call(EC2, "RunInstances", {"instanceType": "g4dn.xlarge"}),
            expect=0,
            params={"allowed_instance_types": ["g4dn.xlarge"]},
        ),
        Case(
            "Auto Scaling launching a GPU group someone configured",
            call(
                EC2,
                "RunInstances",
                {"instanceType": "g5.xlarge"},
                userIdentity=service_linked("autoscaling", "AWSServiceRoleForAutoScaling"),
                sourceIPAddress="autoscaling.amazonaws.com",
            ),
            expect=1,
            no_form={"console": "Auto Scaling's own launch: the group's creator used the console elsewhere"},
        ),
    ],
)
def ec2_unusual_instance_type_launched(e: Event, p: Params) -> Hit | None:
    """RunInstances for a GPU, machine-learning, FPGA or very-large-memory type (families in
    `unusual_families`; "u-*" is a prefix): the signature of resource hijacking such as cryptomining.
    Types in `allowed_instance_types` are fine. Failed launches count by default (`include_failed`):
    attackers hit UnauthorizedOperation, Unsupported and quota errors while trying types and regions,
    and the attempt is the behaviour. Launches by Auto Scaling count as the act of whoever
    configured the group (allowlist known groups' roles); calls AWS makes itself are not findings."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    unusual = [t for t in _instance_types(e) if _unusual(t, p.unusual_families, p.allowed_instance_types)]
    if not unusual:
        return None
    count = _max_count(e)
    return Hit(
        key=f"{actor(e)}|{e.region}|{unusual[0]}",
        resources=tuple(unusual),
        summary=f"RunInstances of {', '.join(unusual)} (up to {count or '?'}) by {e.principal}{outcome(e)}",
        context={"instance_types": unusual, "max_count": count, "error_code": e.error_code},
    )


def _user_data_changed(request: dict[str, Any]) -> bool:
    value = request.get("userData")
    if value not in (None, "", {}):
        return True
    return text(request.get("attribute")).lower() == "userdata"


@match(
    id="ec2-instance-user-data-modified",
    title="EC2 instance user data modified",
    severity="high",
    attack=("T1059", "T1578"),
    events={EC2: ["ModifyInstanceAttribute"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "User data runs as root at the next boot (attackers stop, modify and start the instance). Compare the "
        "instance's user data with its infrastructure code, restore it, check whether the instance was started "
        "since (StartInstances), and investigate the instance and the principal."
    ),
    cases=[
        Case(
            "user data replaced",
            call(EC2, "ModifyInstanceAttribute", {"instanceId": "i-0abc", "userData": "<sensitiveDataRemoved>"}),
            expect=1,
        ),
        Case(
            "attribute/value form",
            call(
                EC2,
                "ModifyInstanceAttribute",
                {"instanceId": "i-0abc", "attribute": "userData", "value": "<sensitiveDataRemoved>"},
            ),
            expect=1,
        ),
        Case(
            "instance type change",
            call(EC2, "ModifyInstanceAttribute", {"instanceId": "i-0abc", "instanceType": {"value": "m5.large"}}),
            expect=0,
        ),
        Case(
            "denied change",
            call(
                EC2,
                "ModifyInstanceAttribute",
                {"instanceId": "i-0abc", "userData": "<sensitiveDataRemoved>"},
                **failed(),
            ),
            expect=0,
        ),
    ],
)
def ec2_instance_user_data_modified(e: Event, p: Params) -> Hit | None:
    """ModifyInstanceAttribute changing an instance's user data: code that runs as root when the instance
    next starts. Only successful changes count by default (a denied change runs nothing); changes made
    by AWS services are not findings. Usually preceded by StopInstances and followed by StartInstances."""
    if by_aws_service(e) or not attempted(e, p.include_failed) or not _user_data_changed(e.request):
        return None
    instance = e.text("requestParameters", "instanceId")
    return Hit(
        key=f"{actor(e)}|{instance}",
        resources=(instance,) if instance else (),
        summary=f"User data of {instance or 'an instance'} modified by {e.principal}{outcome(e)}",
        context={"instance_id": instance, "error_code": e.error_code},
    )


SHELL_DOCUMENTS = [
    "AWS-RunShellScript",
    "AWS-RunPowerShellScript",
    "AWS-RunRemoteScript",
    "AWS-RunDocument",
    "AWS-RunAnsiblePlaybook",
    "AWS-ApplyAnsiblePlaybooks",
    "AWS-RunSaltState",
    "AWS-InstallApplication",
]


def _command_targets(request: dict[str, Any]) -> list[str]:
    found = strings(request.get("instanceIds"), limit=100)
    for target in items(request.get("targets"))[:10]:
        target = mapping(target)
        key = text(target.get("key")) or text(target.get("Key"))
        values = strings(target.get("values") or target.get("Values"), limit=20)
        found.extend(values if key == "InstanceIds" else [f"{key}={v}" for v in values])
    return found


@match(
    id="ssm-send-command-to-instances",
    title="Shell commands sent to instances with SSM Run Command",
    severity="medium",
    attack="T1651",
    events={SSM: ["SendCommand"]},
    params={
        "command_documents": SHELL_DOCUMENTS,
        "allowed_document_accounts": [],
        "include_failed": False,
        "include_console": True,
    },
    dedup="1h",
    runbook=(
        "Read the command (GetCommandInvocation, or the document parameters in SSM) and its output. Confirm "
        "with the principal's owner; if unexpected: treat the targeted instances as compromised (credentials "
        "on them, including the instance role, may be stolen), and revoke the principal's sessions and keys."
    ),
    cases=[
        Case(
            "shell script on instances",
            call(
                SSM,
                "SendCommand",
                {
                    "documentName": "AWS-RunShellScript",
                    "instanceIds": ["i-0abc", "i-0def"],
                    "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
                },
            ),
            expect=1,
        ),
        Case(
            "document shared from another account",
            call(
                SSM,
                "SendCommand",
                {
                    "documentName": f"arn:aws:ssm:us-east-1:{OTHER_ACCOUNT}:document/Update",
                    "targets": [{"key": "tag:env", "values": ["prod"]}],
                },
            ),
            expect=1,
        ),
        Case(
            "patch baseline",
            call(SSM, "SendCommand", {"documentName": "AWS-RunPatchBaseline", "instanceIds": ["i-0abc"]}),
            expect=0,
        ),
        Case(
            "an Automation runbook sending it with the caller's credentials",
            call(
                SSM,
                "SendCommand",
                {"documentName": "AWS-RunShellScript", "instanceIds": ["i-0abc"]},
                **via_service("ssm"),
            ),
            expect=1,
        ),
        Case(
            "a maintenance window run by SSM's service-linked role",
            call(
                SSM,
                "SendCommand",
                {"documentName": "AWS-RunShellScript", "instanceIds": ["i-0abc"]},
                userIdentity=service_linked("ssm", "AWSServiceRoleForAmazonSSM"),
                sourceIPAddress="ssm.amazonaws.com",
            ),
            expect=0,
        ),
        Case(
            "denied",
            call(SSM, "SendCommand", {"documentName": "AWS-RunShellScript", "instanceIds": ["i-0abc"]}, **failed()),
            expect=0,
        ),
    ],
)
def ssm_send_command_to_instances(e: Event, p: Params) -> Hit | None:
    """SendCommand with a document that runs arbitrary scripts (`command_documents`, e.g.
    AWS-RunShellScript) or a document owned by another account not in `allowed_document_accounts`:
    remote code execution as root on every targeted instance, often to read the instance role's
    credentials from IMDS. Commands SSM's service-linked role runs are not findings, nor are
    AWS documents with a fixed purpose (patching, inventory); an Automation runbook or a maintenance
    window sending the command with someone's credentials or role is that someone's act (allowlist known
    windows by role ARN). Only successful calls
    count by default: a denied call executes nothing. Console use counts too (`include_console`), since
    Run Command from the console runs the same code."""
    if by_aws_service(e) or not attempted(e, p.include_failed) or (from_console(e) and not p.include_console):
        return None
    document = e.text("requestParameters", "documentName")
    owner = account_of(document)
    external = foreign(owner, e, p.allowed_document_accounts)
    if document not in p.command_documents and not external:
        return None
    targets = _command_targets(e.request)
    return Hit(
        key=f"{actor(e)}|{document}",
        resources=tuple(targets[:50]),
        summary=f"{document} sent to {len(targets)} target(s) by {e.principal}{outcome(e)}",
        context={
            "document": document,
            "targets": targets[:50],
            "external_document": external,
            "command_id": text(mapping(e.response.get("command")).get("commandId")),
        },
    )


@match(
    id="ssm-session-started",
    title="Interactive SSM session started on an instance",
    severity="low",
    attack=("T1021.008", "T1651"),
    events={SSM: ["StartSession"]},
    params={"include_console": True},
    dedup="1h",
    runbook=(
        "Session Manager gives an interactive shell. Confirm the principal is expected to log in to these "
        "instances; review the session logs (S3 / CloudWatch, if enabled) and the instances' activity. Several "
        "instances in a short time from one principal is the pattern to worry about."
    ),
    cases=[
        Case(
            "shell on an instance",
            call(SSM, "StartSession", {"target": "i-0123456789abcdef0"}, {"sessionId": "alice-0abc"}),
            expect=1,
        ),
        Case(
            "port forwarding still counts",
            call(
                SSM, "StartSession", {"target": "i-0123456789abcdef0", "documentName": "AWS-StartPortForwardingSession"}
            ),
            expect=1,
        ),
        Case("denied", call(SSM, "StartSession", {"target": "i-0123456789abcdef0"}, **failed()), expect=0),
        Case(
            "console sessions ignored when configured",
            call(SSM, "StartSession", {"target": "i-0123456789abcdef0"}, sessionCredentialFromConsole="true"),
            expect=0,
            params={"include_console": False},
        ),
    ],
)
def ssm_session_started(e: Event, p: Params) -> Hit | None:
    """A successful StartSession: an interactive shell (or port forward) on an instance through Session
    Manager, bypassing SSH keys and security groups. Routine for operators, so it is low severity and
    deduplicated per principal per hour; the finding names the first target. A denied StartSession opens
    nothing and is not a finding. Console sessions count unless `include_console` is false. Several
    distinct targets per principal in a short time is the stronger signal for a threshold rule."""
    if by_aws_service(e) or not e.succeeded or (from_console(e) and not p.include_console):
        return None
    target = e.text("requestParameters", "target")
    document = e.text("requestParameters", "documentName")
    return Hit(
        key=actor(e),
        resources=(target,) if target else (),
        summary=f"SSM session on {target or 'an instance'} started by {e.principal}",
        context={"target": target, "document": document, "session_id": e.text("responseElements", "sessionId")},
    )
