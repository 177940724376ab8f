"""The forms one person's call takes in CloudTrail, for rule cases.

The same act can reach the trail made with access keys, from a console session ("AWS Internal" as
source address and user agent, `sessionCredentialFromConsole: "true"`), through a CloudFormation stack
the person created or updated (the person's identity with `invokedBy: cloudformation.amazonaws.com`),
or denied. A rule about what people do must judge the first three alike, and say what a denied call
means to it: `forms` builds the four cases from one positive event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.cases import ACCOUNT, failed, role_session, via_service
from pipeline.rule import Case

Record = dict[str, Any]
CONSOLE_KEY = "ASIAEXAMPLECONSOLE12"


def console_user(name: str = "alice", account: str = ACCOUNT) -> Record:
    """The userIdentity of an IAM user's console session (temporary key, MFA used)."""
    return {"type": "IAMUser", "principalId": "AIDAEXAMPLE" + name.upper()[:8],
            "arn": f"arn:aws:iam::{account}:user/{name}", "accountId": account, "accessKeyId": CONSOLE_KEY,
            "userName": name,
            "sessionContext": {"attributes": {"creationDate": "2024-07-01T13:50:00Z", "mfaAuthenticated": "true"}}}


def in_console(event: Record) -> Record:
    """`event` as a console session makes it: the caller's identity (an IAM user's console session when
    the event names none) with a temporary key, "AWS Internal" source and agent."""
    identity = dict(event.get("userIdentity") or console_user())
    if str(identity.get("accessKeyId", "")).startswith("AKIA"):
        identity["accessKeyId"] = CONSOLE_KEY
    return {**event, "userIdentity": identity, "sourceIPAddress": "AWS Internal", "userAgent": "AWS Internal",
            "sessionCredentialFromConsole": "true"}


def through_stack(event: Record) -> Record:
    """`event` as CloudFormation makes it for the person who created or updated the stack."""
    return {**event, **via_service("cloudformation", event.get("userIdentity") or role_session("deployer", "alice"))}


def denied(event: Record, code: str = "AccessDenied") -> Record:
    return {**event, **failed(code)}


def forms(name: str, events: Record | Iterable[Record], *, failed_expect: int, failed_why: str,
          expect: int = 1, params: dict[str, Any] | None = None, code: str = "AccessDenied") -> list[Case]:
    """Four cases of one act: as given, in the console and through a CloudFormation stack (each expecting
    `expect` findings), and denied (expecting `failed_expect`, for the reason `failed_why`)."""
    batch = [events] if isinstance(events, dict) else list(events)
    return [
        Case(name, batch, expect, params),
        Case(f"{name}, in the console", [in_console(e) for e in batch], expect, params),
        Case(f"{name}, through a CloudFormation stack", [through_stack(e) for e in batch], expect, params),
        Case(f"{name}, denied ({failed_why})", [denied(e, code) for e in batch], failed_expect, params),
    ]
