"""Lateral movement: reaching into instances through the EC2 control plane (Instance Connect, serial
console) instead of the network."""

from __future__ import annotations

from pipeline.cases import call, failed, in_console
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import actor, attempted, by_aws_service, from_console, outcome

CONNECT = "ec2-instance-connect.amazonaws.com"


@match(
    id="ec2-instance-connect-ssh-key-pushed",
    title="SSH key pushed to an instance with EC2 Instance Connect",
    severity="low",
    attack="T1021.008",
    events={CONNECT: ["SendSSHPublicKey"]},
    params={"include_console": True},
    dedup="1h",
    runbook=(
        "The key is valid for 60 seconds for the OS user shown. Confirm the principal is expected to log in "
        "to this instance; if not, review the instance's auth logs for that window, check what the OS user can "
        "reach, and revoke the principal's sessions and keys."
    ),
    cases=[
        Case(
            "key pushed from the CLI",
            call(
                CONNECT,
                "SendSSHPublicKey",
                {"instanceId": "i-0abc", "instanceOSUser": "ec2-user", "sSHPublicKey": "ssh-ed25519 AAAA"},
                {"success": True},
            ),
            expect=1,
        ),
        Case(
            "console Connect button ignored when configured",
            call(CONNECT, "SendSSHPublicKey", {"instanceId": "i-0abc", "instanceOSUser": "ec2-user"}, **in_console()),
            expect=0,
            params={"include_console": False},
        ),
        Case(
            "denied",
            call(CONNECT, "SendSSHPublicKey", {"instanceId": "i-0abc", "instanceOSUser": "root"}, **failed()),
            expect=0,
        ),
    ],
)
def ec2_instance_connect_ssh_key_pushed(e: Event, p: Params) -> Hit | None:
    """SendSSHPublicKey installs a temporary SSH key for an OS user on an instance, so whoever holds the
    private key can log in without the instance's own key pair. Only successful pushes count (a denied
    push installs nothing). The console's Connect button counts too (a stolen console session
    connects the same way; `include_console` false leaves it out); calls AWS makes itself are not
    findings. Keys pushed to many instances would be a threshold rule."""
    if by_aws_service(e) or not e.succeeded or (from_console(e) and not p.include_console):
        return None
    instance = e.text("requestParameters", "instanceId")
    os_user = e.text("requestParameters", "instanceOSUser")
    return Hit(
        key=actor(e),
        resources=(instance,) if instance else (),
        summary=f"SSH key for {os_user or 'a user'} pushed to {instance or 'an instance'} by {e.principal}",
        context={"instance_id": instance, "os_user": os_user},
    )


@match(
    id="ec2-serial-console-access",
    title="EC2 serial console access enabled or used",
    severity="high",
    attack="T1021.008",
    events={"ec2.amazonaws.com": ["EnableSerialConsoleAccess"], CONNECT: ["SendSerialConsoleSSHPublicKey"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=(
        "The serial console gives root-level access that bypasses networking and security groups; it is "
        "almost never needed outside break-glass recovery. Confirm with the principal's owner; if unexpected, "
        "disable it (DisableSerialConsoleAccess), inspect the instances it was used on, and revoke the "
        "principal's sessions and keys."
    ),
    cases=[
        Case(
            "enabled then used",
            [
                call(
                    "ec2.amazonaws.com",
                    "EnableSerialConsoleAccess",
                    {"EnableSerialConsoleAccessRequest": ""},
                    {"EnableSerialConsoleAccessResponse": {"serialConsoleAccessEnabled": True}},
                ),
                call(CONNECT, "SendSerialConsoleSSHPublicKey", {"instanceId": "i-0abc", "serialPort": 0}),
            ],
            expect=2,
        ),
        Case("denied enable attempt", call("ec2.amazonaws.com", "EnableSerialConsoleAccess", **failed()), expect=1),
        Case(
            "denied key push",
            call(CONNECT, "SendSerialConsoleSSHPublicKey", {"instanceId": "i-0abc"}, **failed()),
            expect=0,
        ),
        Case("checking the setting", call("ec2.amazonaws.com", "GetSerialConsoleAccessStatus"), expect=0),
    ],
)
def ec2_serial_console_access(e: Event, p: Params) -> Hit | None:
    """EnableSerialConsoleAccess (account-wide switch; denied attempts count by default through
    `include_failed`, since the switch is rarely touched) or a successful SendSerialConsoleSSHPublicKey
    (a key pushed for the serial console of an instance). Calls AWS makes itself are not findings."""
    if by_aws_service(e):
        return None
    if e.name == "EnableSerialConsoleAccess":
        if not attempted(e, p.include_failed):
            return None
        return Hit(
            key=f"{actor(e)}|enable|{e.region}",
            summary=f"Serial console access enabled in {e.region} by {e.principal}{outcome(e)}",
            context={"error_code": e.error_code},
        )
    if not e.succeeded:
        return None
    instance = e.text("requestParameters", "instanceId")
    return Hit(
        key=f"{actor(e)}|key",
        resources=(instance,) if instance else (),
        summary=f"Serial console SSH key pushed to {instance or 'an instance'} by {e.principal}",
        context={"instance_id": instance, "serial_port": e.get("requestParameters", "serialPort")},
    )
