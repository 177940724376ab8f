"""First-seen rules: a value new for a key within a history period.

Warm-up: during a key's first history period everything it does is new, so these rules stay
silent for a key until it has been known for `warmup` (by default the whole `history`). A new
deployment therefore raises nothing on day one, and a brand-new user's first sign-ins are not
"new addresses". If a key's state expires (no activity for a whole history period), its warm-up
starts again. Shorten `warmup` in configuration to trade day-one noise for earlier coverage.
"""

from __future__ import annotations

from typing import Any

from pipeline.cases import SIGN_IN, at, iam_user
from pipeline.event import Event
from pipeline.rule import ANY, Case, Params
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import first_seen

SIGNIN = "signin.amazonaws.com"
DAY = 24 * 60


def _call(t: float, region: str, user: str = "alice") -> dict[str, Any]:
    return {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "eventTime": at(t),
        "awsRegion": region,
        "userIdentity": iam_user(user),
    }


def _login(t: float, ip: str, user: str = "alice", ok: bool = True) -> dict[str, Any]:
    return {
        "eventSource": SIGNIN,
        "eventName": "ConsoleLogin",
        "eventTime": at(t),
        "sourceIPAddress": ip,
        "userIdentity": iam_user(user) | {"accessKeyId": ""},
        "responseElements": {"ConsoleLogin": "Success" if ok else "Failure"},
        "additionalEventData": {"MFAUsed": "Yes", "MobileVersion": "No"},
    }


@first_seen(
    id="first-seen-region",
    title="Account used from a region it has not used before",
    severity="medium",
    attack="T1535",
    events={ANY: ANY},
    params={"history": "30d", "warmup": "30d"},
    history="history",
    warmup="warmup",
    dedup="1d",
    runbook="Check who called from the region and why; unused regions are where stolen credentials run "
    "miners and hide resources. Consider an SCP that denies regions the organization does not use.",
    cases=[
        Case(
            "a new region after the warm-up",
            [_call(0, "us-east-1"), _call(DAY, "us-east-1"), _call(DAY + 5, "ap-southeast-3")],
            expect=1,
            params={"warmup": "12h"},
        ),
        Case(
            "known regions only",
            [_call(0, "us-east-1"), _call(5, "eu-west-1"), _call(DAY, "eu-west-1"), _call(DAY + 5, "us-east-1")],
            expect=0,
            params={"warmup": "12h"},
        ),
        Case("nothing during the warm-up", [_call(0, "us-east-1"), _call(DAY, "sa-east-1")], expect=0),
        Case(
            "a region unused for longer than the history is new again",
            [
                _call(0, "us-east-1"),
                _call(1, "sa-east-1"),
                *[_call(d * DAY, "us-east-1") for d in (5, 10, 15)],
                _call(20 * DAY, "sa-east-1"),
            ],
            expect=1,
            params={"warmup": "1d", "history": "7d"},
        ),
        Case(
            "a key idle for longer than the history warms up again",
            [_call(0, "us-east-1"), _call(DAY, "us-east-1"), _call(20 * DAY, "sa-east-1")],
            expect=0,
            params={"warmup": "12h", "history": "7d"},
        ),
        Case(
            "AWS service events are ignored",
            [
                _call(0, "us-east-1"),
                _call(DAY, "us-east-1"),
                _call(DAY + 1, "sa-east-1") | {"eventType": "AwsServiceEvent"},
            ],
            expect=0,
            params={"warmup": "12h"},
        ),
    ],
)
def first_seen_region(e: Event, p: Params) -> Step | None:
    """An account's API activity from a region not seen for the account within `history`
    (after the account's warm-up). AWS service events are left out."""
    # Runs on every event: read the raw record directly, with the same type checks as Event's accessors.
    raw = e.raw
    if raw.get("eventType") == "AwsServiceEvent":
        return None
    identity = raw.get("userIdentity")
    if type(identity) is dict and identity.get("type") == "AWSService":
        return None
    account, region = raw.get("recipientAccountId"), raw.get("awsRegion")
    if type(account) is not str or not account:
        account = e.account
    if type(region) is not str or not account or not region:
        return None
    return Step(account, "", region)


@first_seen(
    id="first-seen-console-source-ip",
    title="Console sign-in from an address new for the user",
    severity="low",
    attack="T1078.004",
    events={SIGNIN: ["ConsoleLogin"]},
    params={"history": "30d", "warmup": "30d"},
    history="history",
    warmup="warmup",
    dedup="1d",
    runbook="Ask the user whether the sign-in was theirs; if not, reset the password, revoke sessions and "
    "review what the session did.",
    cases=[
        Case(
            "a new address after the warm-up",
            [_login(0, "198.51.100.7"), _login(DAY, "198.51.100.7"), _login(DAY + 60, "203.0.113.66")],
            expect=1,
            params={"warmup": "12h"},
            no_form=SIGN_IN,
        ),
        Case(
            "the usual address",
            [_login(0, "198.51.100.7"), _login(DAY, "198.51.100.7")],
            expect=0,
            params={"warmup": "12h"},
        ),
        Case("nothing during the warm-up", [_login(0, "198.51.100.7"), _login(DAY, "203.0.113.66")], expect=0),
        Case(
            "failed sign-ins do not count",
            [_login(0, "198.51.100.7"), _login(DAY, "203.0.113.66", ok=False)],
            expect=0,
            params={"warmup": "12h"},
        ),
        Case(
            "another user's address is new for this user",
            [_login(0, "198.51.100.7"), _login(1, "203.0.113.66", user="bob"), _login(DAY, "203.0.113.66")],
            expect=1,
            params={"warmup": "12h"},
            no_form=SIGN_IN,
        ),
    ],
)
def first_seen_console_source_ip(e: Event, p: Params) -> Step | None:
    """A successful console sign-in from a source address not seen for that user within `history`
    (after the user's warm-up). Key: account and user (root signs in as "root")."""
    if e.text("responseElements", "ConsoleLogin") != "Success" or not e.source_ip:
        return None
    user = "root" if e.identity_type == "Root" else e.text("userIdentity", "userName") or e.principal
    if not user:
        return None
    return Step(f"{e.account}:{user}", value=e.source_ip)
