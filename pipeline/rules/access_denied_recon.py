"""Reconnaissance by trial and error: a principal collecting AccessDenied and UnauthorizedOperation
errors across APIs, as stolen credentials do while finding out what they may do."""

from __future__ import annotations

from typing import Any

from pipeline.cases import at, iam_user, role_session
from pipeline.event import Event
from pipeline.rule import ANY, Case, Gate, Params
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold


def denied(code: str) -> bool:
    """AccessDenied, AccessDeniedException, Client.UnauthorizedOperation and the like."""
    return code.startswith(("AccessDenied", "Client.AccessDenied")) or code.endswith("UnauthorizedOperation")


_CALLS = [
    ("iam.amazonaws.com", "ListUsers"),
    ("s3.amazonaws.com", "ListBuckets"),
    ("secretsmanager.amazonaws.com", "ListSecrets"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("kms.amazonaws.com", "ListKeys"),
]


def _call(i: int, t: float, code: str = "AccessDenied", identity: dict[str, Any] | None = None) -> dict[str, Any]:
    source, name = _CALLS[i % len(_CALLS)]
    ev: dict[str, Any] = {
        "eventSource": source,
        "eventName": name,
        "eventTime": at(t),
        "userIdentity": identity or role_session("app", "i-0123456789abcdef0"),
    }
    if code:
        ev["errorCode"] = code
        ev["errorMessage"] = "User is not authorized to perform this action"
    return ev


@threshold(
    id="access-denied-recon",
    title="Burst of access-denied errors by one principal",
    severity="medium",
    attack="T1580",
    events={ANY: ANY},
    gates=[Gate.of("errorCode")],
    params={"errors": 10, "window": "10m"},
    threshold="errors",
    window="window",
    dedup="1h",
    runbook="Find out whose credentials these are and whether the calls match their job; a burst of denied "
    "list and describe calls across services is typical of stolen credentials being explored. "
    "Rotate the credentials if the activity is not explained.",
    cases=[
        Case("ten denied calls in two minutes", [_call(i, i * 0.2) for i in range(10)], expect=1),
        Case(
            "EC2's UnauthorizedOperation counts",
            [_call(i, i * 0.2, "Client.UnauthorizedOperation") for i in range(10)],
            expect=1,
        ),
        Case("nine denied calls", [_call(i, i * 0.2) for i in range(9)], expect=0),
        Case("successful calls do not count", [_call(i, i * 0.2, "") for i in range(20)], expect=0),
        Case("other errors do not count", [_call(i, i * 0.2, "ThrottlingException") for i in range(20)], expect=0),
        Case(
            "denied calls by different principals",
            [_call(i, i * 0.2, identity=iam_user(f"user{i}")) for i in range(12)],
            expect=0,
        ),
        Case("denied calls spread over an hour", [_call(i, i * 7) for i in range(10)], expect=0),
    ],
)
def access_denied_recon(e: Event, p: Params) -> Step | None:
    """At least `errors` AccessDenied or UnauthorizedOperation errors by one principal within `window`."""
    code = e.error_code
    if not code or not denied(code):
        return None
    principal = e.principal
    return Step(principal) if principal else None
