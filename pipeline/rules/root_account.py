"""The root user: did it sign in to the console, fail to sign in again and again, or lose its MFA device?

Whoever controls root controls the account, and no policy limits it. What root does to its own
credentials is reported whatever invoked the call (the console's `invokedBy: signin.amazonaws.com`
included); a new root access key or password is root-credentials-changed's.
"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, SIGN_IN, call, console_sign_in, root_identity
from pipeline.event import Event, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.change_common import change_hit
from pipeline.rules.forms import with_denied
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold

IAM = "iam.amazonaws.com"
SIGNIN = "signin.amazonaws.com"
ROOT_RUNBOOK = (
    "Call the account owner at once on a known channel: the root user is rarely used. If the change was not "
    "theirs: reset the root password through the account's email, re-enroll root MFA, delete any root access "
    "key, review everything root did (CloudTrail, billing, contact details), and check the account's email "
    "mailbox for compromise."
)


def is_root(e: Event) -> bool:
    return e.identity_type == "Root"


def _root_console(**extra: Any) -> dict[str, Any]:
    return root_identity(
        invokedBy="signin.amazonaws.com",
        accessKeyId="ASIAEXAMPLEROOTKEY12",
        sessionContext={"attributes": {"creationDate": "2024-07-01T13:55:00Z", "mfaAuthenticated": "true"}},
        **extra,
    )


ROOT_MFA_SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/root-account-mfa-device"


@match(
    id="root-mfa-removed",
    title="MFA device removed from the root user",
    severity="critical",
    attack=("T1556.006", "T1098"),
    events={IAM: ["DeactivateMFADevice", "DeleteVirtualMFADevice"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=ROOT_RUNBOOK,
    cases=[
        *with_denied(
            "root deactivates its MFA device",
            call(IAM, "DeactivateMFADevice", {"serialNumber": ROOT_MFA_SERIAL}, userIdentity=_root_console()),
            failed_expect=0,
            failed_why="the device stays",
        ),
        Case(
            "root's virtual device deleted",
            call(IAM, "DeleteVirtualMFADevice", {"serialNumber": ROOT_MFA_SERIAL}, userIdentity=_root_console()),
            expect=1,
        ),
        Case(
            "root removing an IAM user's device",
            call(
                IAM,
                "DeactivateMFADevice",
                {"userName": "alice", "serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/alice"},
                userIdentity=_root_console(),
            ),
            expect=0,
        ),
        Case(
            "an IAM user removing its own device",
            call(
                IAM, "DeactivateMFADevice", {"userName": "alice", "serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/alice"}
            ),
            expect=0,
        ),
    ],
)
def root_mfa_removed(e: Event, p: Params) -> Hit | None:
    """DeactivateMFADevice or DeleteVirtualMFADevice for the root user's own device (called by root with no
    user named, or on the root-account-mfa-device serial): the root password alone then opens the account.
    Only successful calls count by default."""
    if not (e.succeeded or p.include_failed):
        return None
    serial = e.text("requestParameters", "serialNumber")
    own = is_root(e) and not e.text("requestParameters", "userName")
    if not own and not serial.endswith(":mfa/root-account-mfa-device"):
        return None
    return change_hit(e, "Root MFA device removed:", serial, key=e.account)


def _sign_in(
    outcome: str = "Success",
    t: float = 0.0,
    ip: str = "81.2.69.142",
    mfa: str = "Yes",
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return console_sign_in(identity or root_identity(accessKeyId="", userName="root"), outcome, t, ip, mfa)


@match(
    id="root-console-sign-in",
    title="Root user signed in to the console",
    severity="medium",
    attack="T1078.004",
    events={SIGNIN: ["ConsoleLogin"]},
    dedup="1h",
    runbook=ROOT_RUNBOOK,
    cases=[
        Case("root sign-in with MFA (the console form of this event)", _sign_in(), expect=1, no_form=SIGN_IN),
        Case("root sign-in without MFA", _sign_in(mfa="No"), expect=1, no_form=SIGN_IN),
        Case("two sign-ins from one address within the hour", [_sign_in(), _sign_in(t=20)], expect=1, no_form=SIGN_IN),
        Case("sign-ins from two addresses", [_sign_in(), _sign_in(t=5, ip="203.0.113.9")], expect=2, no_form=SIGN_IN),
        Case("failed root sign-in (counted by root-console-sign-in-failures)", _sign_in("Failure"), expect=0),
        Case(
            "an IAM user's sign-in",
            _sign_in(
                identity={
                    "type": "IAMUser",
                    "userName": "alice",
                    "accountId": ACCOUNT,
                    "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
                }
            ),
            expect=0,
        ),
    ],
)
def root_console_sign_in(e: Event, p: Params) -> Hit | None:
    """Any successful console sign-in as the root user, with or without MFA (one finding per account and
    source address per hour). The sign-in is itself the console form; it has no CloudFormation form.
    Failed sign-ins are counted by root-console-sign-in-failures."""
    if not is_root(e) or text(e.response.get("ConsoleLogin")) != "Success":
        return None
    mfa = e.text("additionalEventData", "MFAUsed")
    return change_hit(
        e,
        "Root console sign-in from",
        e.source_ip,
        f"(MFA used: {mfa or 'unknown'})",
        key=f"{e.account}|{e.source_ip}",
        mfa_used=mfa,
    )


@threshold(
    id="root-console-sign-in-failures",
    title="Repeated failed console sign-ins as the root user",
    severity="high",
    attack="T1110",
    events={SIGNIN: ["ConsoleLogin"]},
    params={"failures": 5, "window": "1h"},
    threshold="failures",
    window="window",
    dedup="1h",
    runbook=ROOT_RUNBOOK,
    cases=[
        Case(
            "five failures from several addresses",
            [_sign_in("Failure", i * 5, f"203.0.113.{i}") for i in range(5)],
            expect=1,
            no_form=SIGN_IN,
        ),
        Case("four failures", [_sign_in("Failure", i * 5) for i in range(4)], expect=0),
        Case("five failures over five hours", [_sign_in("Failure", i * 70) for i in range(5)], expect=0),
        Case("successful sign-ins do not count", [_sign_in("Success", i) for i in range(6)], expect=0),
    ],
)
def root_console_sign_in_failures(e: Event, p: Params) -> Step | None:
    """At least `failures` failed console sign-ins as the root user of one account within `window`, from any
    addresses (the per-address brute-force rule misses a guesser that rotates addresses)."""
    if not is_root(e) or text(e.response.get("ConsoleLogin")) != "Failure":
        return None
    return Step(e.account or "unknown account")
