"""Persistence then escalation: an access key created for an IAM user, then an administrator policy
attached to that user or a console password given to it, by the same principal (a sequence rule)."""

from __future__ import annotations

from typing import Any

from pipeline.cases import at, iam_user
from pipeline.event import Event
from pipeline.rule import Case, Params
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import FIRST, THEN, sequence

IAM = "iam.amazonaws.com"


def target_user(e: Event) -> str:
    """The user acted on: requestParameters.userName, or the caller itself when it names none."""
    return e.text("requestParameters", "userName") or e.text("userIdentity", "userName")


def is_admin_policy(arn: str, p: Params) -> bool:
    """A policy ARN in `admin_policies`, given as full ARNs or as AWS managed policy names (any partition)."""
    for wanted in p.admin_policies if isinstance(p.admin_policies, list) else ():
        if not isinstance(wanted, str) or not wanted:
            continue
        managed = ":" not in wanted and arn.startswith("arn:") and arn.endswith(f":iam::aws:policy/{wanted}")
        if arn == wanted or managed:
            return True
    return False


def _ev(t: float, name: str, user: str = "etl-runner", caller: str = "mallory", **request: Any) -> dict[str, Any]:
    return {
        "eventSource": IAM,
        "eventName": name,
        "eventTime": at(t),
        "userIdentity": iam_user(caller),
        "requestParameters": {"userName": user, **request},
    }


ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


@sequence(
    id="iam-access-key-then-privilege",
    title="Access key created for a user, then the user made administrator or given a console password",
    severity="high",
    attack=("T1098.001", "T1098.003"),
    events={IAM: ["CreateAccessKey", "AttachUserPolicy", "CreateLoginProfile"]},
    params={"window": "1h", "admin_policies": ["AdministratorAccess"]},
    window="window",
    same_principal=True,
    dedup="1h",
    fields=("action",),
    runbook="Check with the caller's owner; if unexplained, deactivate the new access key, detach the policy or "
    "delete the login profile, and review what the user did since.",
    cases=[
        Case(
            "key then AdministratorAccess",
            [_ev(0, "CreateAccessKey"), _ev(2, "AttachUserPolicy", policyArn=ADMIN)],
            expect=1,
        ),
        Case(
            "key then login profile",
            [_ev(0, "CreateAccessKey"), _ev(5, "CreateLoginProfile", passwordResetRequired=False)],
            expect=1,
        ),
        Case(
            "same second, attach logged first",
            [
                _ev(0, "AttachUserPolicy", policyArn=ADMIN) | {"eventTime": at(0)},
                _ev(0, "CreateAccessKey") | {"eventTime": at(0)},
            ],
            expect=1,
        ),
        Case(
            "a harmless policy",
            [_ev(0, "CreateAccessKey"), _ev(2, "AttachUserPolicy", policyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")],
            expect=0,
        ),
        Case(
            "administrator first, key later",
            [_ev(0, "AttachUserPolicy", policyArn=ADMIN), _ev(5, "CreateAccessKey")],
            expect=0,
        ),
        Case(
            "different principals",
            [_ev(0, "CreateAccessKey"), _ev(2, "AttachUserPolicy", caller="admin", policyArn=ADMIN)],
            expect=0,
        ),
        Case(
            "different users",
            [_ev(0, "CreateAccessKey"), _ev(2, "AttachUserPolicy", user="other", policyArn=ADMIN)],
            expect=0,
        ),
        Case("outside the window", [_ev(0, "CreateAccessKey"), _ev(90, "AttachUserPolicy", policyArn=ADMIN)], expect=0),
        Case(
            "failed attach",
            [_ev(0, "CreateAccessKey"), _ev(2, "AttachUserPolicy", policyArn=ADMIN) | {"errorCode": "AccessDenied"}],
            expect=0,
        ),
        Case(
            "policy list from configuration",
            [_ev(0, "CreateAccessKey"), _ev(2, "AttachUserPolicy", policyArn="arn:aws:iam::aws:policy/IAMFullAccess")],
            expect=1,
            params={"admin_policies": ["AdministratorAccess", "IAMFullAccess"]},
        ),
    ],
)
def iam_access_key_then_privilege(e: Event, p: Params) -> Step | None:
    """CreateAccessKey for a user, then, within `window` and by the same principal, AttachUserPolicy
    with a policy of `admin_policies` (AWS managed policy names or full ARNs) or CreateLoginProfile
    for that user. Key: account and target user."""
    if e.error_code:
        return None
    user = target_user(e)
    if not user:
        return None
    key = f"{e.account}:{user}"
    if e.name == "CreateAccessKey":
        return Step(key, FIRST)
    if e.name == "AttachUserPolicy":
        arn = e.text("requestParameters", "policyArn")
        return Step(key, THEN, fields={"action": f"AttachUserPolicy {arn}"}) if is_admin_policy(arn, p) else None
    if e.name == "CreateLoginProfile":
        return Step(key, THEN, fields={"action": "CreateLoginProfile"})
    return None
