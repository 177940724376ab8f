"""Helpers for stateful rules' test cases: event times relative to the rule-test base time."""

from __future__ import annotations

from typing import Any

from pipeline.finding import iso_time

# The base time of `pipeline.ruletest` (Monday 1 July 2024, 14:00 UTC).
BASE_TIME = 1719842400.0
ACCOUNT = "111122223333"


def at(minutes: float) -> str:
    """The eventTime `minutes` after the base time."""
    return iso_time(BASE_TIME + minutes * 60)


def iam_user(name: str = "alice", account: str = ACCOUNT) -> dict[str, Any]:
    return {"type": "IAMUser", "principalId": "AIDAEXAMPLE" + name.upper()[:8], "accountId": account,
            "arn": f"arn:aws:iam::{account}:user/{name}", "userName": name, "accessKeyId": "AKIAEXAMPLEKEYID1234"}


def role_session(role: str = "deployer", session: str = "s1", account: str = ACCOUNT) -> dict[str, Any]:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}", "accountId": account,
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": role, "accountId": account,
                                                 "arn": f"arn:aws:iam::{account}:role/{role}"},
                               "attributes": {"mfaAuthenticated": "false"}}}
