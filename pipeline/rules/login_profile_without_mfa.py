"""An IAM user given a console password (login profile) who has no MFA device a while later (absence)."""

from __future__ import annotations

from typing import Any

from pipeline.cases import at, iam_user
from pipeline.event import Event
from pipeline.rule import Case, Params
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import END, SATISFY, START, absence

IAM = "iam.amazonaws.com"


def _ev(t: float, name: str, user: str = "svc-reporting", **request: Any) -> dict[str, Any]:
    return {
        "eventSource": IAM,
        "eventName": name,
        "eventTime": at(t),
        "userIdentity": iam_user("admin"),
        "requestParameters": {"userName": user, **request},
    }


def _later(t: float) -> dict[str, Any]:
    return {"eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "eventTime": at(t)}


MFA = {"serialNumber": "arn:aws:iam::111122223333:mfa/svc-reporting"}


@absence(
    id="iam-login-profile-without-mfa",
    title="IAM user with a console password and no MFA device",
    severity="low",
    attack="T1098",
    events={IAM: ["CreateLoginProfile", "EnableMFADevice", "DeleteLoginProfile", "DeleteUser"]},
    params={"window": "24h"},
    window="window",
    ttl="30d",
    dedup=0,
    resolved="MFA device enabled",
    ended="console password or user deleted",
    runbook="Ask the user to enable an MFA device, or remove the console password if the user does not need "
    "the console; if nobody expected the password, treat it as persistence and investigate the caller.",
    cases=[
        Case("no MFA a day later", [_ev(0, "CreateLoginProfile"), _later(25 * 60)], expect=1),
        Case(
            "MFA enabled within the window",
            [_ev(0, "CreateLoginProfile"), _ev(30, "EnableMFADevice", **MFA), _later(25 * 60)],
            expect=0,
        ),
        Case(
            "MFA enabled before the password",
            [_ev(0, "EnableMFADevice", **MFA), _ev(5, "CreateLoginProfile"), _later(25 * 60)],
            expect=0,
        ),
        Case(
            "MFA enabled too late: the finding resolves",
            [_ev(0, "CreateLoginProfile"), _ev(25 * 60, "EnableMFADevice", **MFA), _later(26 * 60)],
            expect=1,
            resolved=1,
        ),
        Case(
            "password removed after the finding: it resolves",
            [_ev(0, "CreateLoginProfile"), _later(25 * 60), _ev(26 * 60, "DeleteLoginProfile")],
            expect=1,
            resolved=1,
        ),
        Case(
            "password removed again",
            [_ev(0, "CreateLoginProfile"), _ev(10, "DeleteLoginProfile"), _later(25 * 60)],
            expect=0,
        ),
        Case(
            "failed CreateLoginProfile",
            [_ev(0, "CreateLoginProfile") | {"errorCode": "EntityAlreadyExists"}, _later(25 * 60)],
            expect=0,
        ),
        Case(
            "MFA for another user",
            [
                _ev(0, "CreateLoginProfile"),
                _later(25 * 60),
                _ev(26 * 60, "EnableMFADevice", user="bob", **MFA),
                _later(27 * 60),
            ],
            expect=1,
            resolved=0,
        ),
        Case(
            "window from configuration", [_ev(0, "CreateLoginProfile"), _later(61)], expect=1, params={"window": "1h"}
        ),
        Case("window not yet over", [_ev(0, "CreateLoginProfile"), _later(60)], expect=0),
    ],
)
def iam_login_profile_without_mfa(e: Event, p: Params) -> Step | None:
    """CreateLoginProfile for an IAM user and no EnableMFADevice for that user within `window`
    (a virtual device counts once enabled: CreateVirtualMFADevice alone does not). DeleteLoginProfile
    or DeleteUser ends the watch. Key: account and user. The finding resolves when the user enables an
    MFA device later, or the password or user is deleted."""
    if e.error_code:
        return None
    user = e.text("requestParameters", "userName") or e.text("userIdentity", "userName")
    if not user:
        return None
    key = f"{e.account}:{user}"
    step = {"CreateLoginProfile": START, "EnableMFADevice": SATISFY, "DeleteLoginProfile": END, "DeleteUser": END}.get(
        e.name
    )
    return Step(key, step) if step else None
