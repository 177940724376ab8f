"""Failed console sign-ins from one source address: brute force (many failures) and password
spraying (failures for many distinct users). Both are threshold rules keyed by source address."""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, SIGN_IN, at
from pipeline.event import Event, text
from pipeline.rule import Case, Params
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold

SIGNIN = "signin.amazonaws.com"
ATTACKER_IP = "203.0.113.66"


def failed_sign_in(e: Event) -> bool:
    """A ConsoleLogin that failed (CloudTrail writes Failure and "Failed authentication")."""
    return text(e.response.get("ConsoleLogin")) == "Failure" or e.text("errorMessage") == "Failed authentication"


def signing_in_as(e: Event) -> str:
    """Who the failed sign-in tried to be: the IAM user name (AWS hides names that do not exist as
    HIDDEN_DUE_TO_SECURITY_REASONS, so those count as one user), "root" for the root user."""
    ident = e.identity
    if text(ident.get("type")) == "Root":
        return "root"
    return text(ident.get("userName")) or text(ident.get("arn")) or text(ident.get("principalId"))


def _fail(t: float, user: str = "alice", ip: str = ATTACKER_IP) -> dict[str, Any]:
    return {
        "eventSource": SIGNIN,
        "eventName": "ConsoleLogin",
        "eventTime": at(t),
        "sourceIPAddress": ip,
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "accountId": ACCOUNT,
            "accessKeyId": "",
            "userName": user,
        },
        "errorMessage": "Failed authentication",
        "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "No",
        },
    }


def _ok(t: float, user: str = "alice", ip: str = ATTACKER_IP) -> dict[str, Any]:
    ev = _fail(t, user, ip)
    del ev["errorMessage"]
    ev["responseElements"] = {"ConsoleLogin": "Success"}
    ev["userIdentity"]["arn"] = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    return ev


@threshold(
    id="console-login-brute-force",
    title="Console sign-in brute force from one address",
    severity="high",
    attack="T1110.001",
    events={SIGNIN: ["ConsoleLogin"]},
    params={"failures": 10, "window": "10m"},
    threshold="failures",
    window="window",
    dedup="1h",
    runbook="Look up the source address; check whether any sign-in from it succeeded afterwards, and for which "
    "user; make sure the targeted users have MFA; block the address if it is not yours.",
    cases=[
        Case("ten failures in a minute", [_fail(i * 0.1) for i in range(10)], expect=1, no_form=SIGN_IN),
        Case("nine failures", [_fail(i * 0.1) for i in range(9)], expect=0),
        Case("ten failures spread over an hour", [_fail(i * 6) for i in range(10)], expect=0),
        Case("failures from different addresses", [_fail(i * 0.1, ip=f"203.0.113.{i}") for i in range(12)], expect=0),
        Case("successful sign-ins do not count", [_ok(i * 0.1) for i in range(12)], expect=0),
        Case(
            "a long attack is one finding per dedup period",
            [_fail(i * 0.2) for i in range(100)],
            expect=1,
            no_form=SIGN_IN,
        ),
        Case(
            "threshold from configuration",
            [_fail(i * 0.1) for i in range(3)],
            expect=1,
            params={"failures": 3},
            no_form=SIGN_IN,
        ),
        Case(
            "the attack stops: the finding resolves after a quiet window",
            [*(_fail(i * 0.1) for i in range(10)), _ok(25, ip="198.51.100.9")],
            expect=1,
            resolved=1,
            no_form=SIGN_IN,
        ),
        Case(
            "failures going on within the window keep the finding open",
            [*(_fail(i * 0.1) for i in range(10)), _fail(8), _ok(15, ip="198.51.100.9")],
            expect=1,
            resolved=0,
            no_form=SIGN_IN,
        ),
    ],
)
def console_login_brute_force(e: Event, p: Params) -> Step | None:
    """At least `failures` failed console sign-ins from one source address within `window`."""
    if not failed_sign_in(e) or not e.source_ip:
        return None
    return Step(e.source_ip)


@threshold(
    id="console-login-password-spraying",
    title="Console password spraying from one address",
    severity="high",
    attack="T1110.003",
    events={SIGNIN: ["ConsoleLogin"]},
    params={"users": 5, "window": "10m"},
    threshold="users",
    window="window",
    distinct=True,
    dedup="1h",
    runbook="Look up the source address and the users it tried; check for any later successful sign-in from it; "
    "enforce MFA and a password policy; block the address if it is not yours.",
    cases=[
        Case(
            "five users in two minutes", [_fail(i * 0.4, user=f"user{i}") for i in range(5)], expect=1, no_form=SIGN_IN
        ),
        Case("four users", [_fail(i * 0.4, user=f"user{i}") for i in range(4)], expect=0),
        Case("one user many times", [_fail(i * 0.1) for i in range(20)], expect=0),
        Case("five users over an hour", [_fail(i * 15, user=f"user{i}") for i in range(5)], expect=0),
        Case(
            "five users from five addresses",
            [_fail(i * 0.4, user=f"user{i}", ip=f"203.0.113.{i}") for i in range(5)],
            expect=0,
        ),
    ],
)
def console_login_password_spraying(e: Event, p: Params) -> Step | None:
    """Failed console sign-ins for at least `users` distinct users from one source address within `window`."""
    if not failed_sign_in(e) or not e.source_ip:
        return None
    user = signing_in_as(e)
    return Step(e.source_ip, value=user) if user else None
