"""Building blocks of rule test cases: partial CloudTrail records and the identities that make them.

`pipeline.ruletest.complete_record` fills in whatever a case leaves out; these helpers give the
parts a case is about (who called, what was asked, whether it failed) their real CloudTrail shapes.
"""

from __future__ import annotations

from typing import Any

from pipeline.finding import iso_time

ACCOUNT = "111122223333"
# Where `pipeline.ruletest` starts a case's clock: Monday 1 July 2024, 14:00 UTC, inside business hours.
BASE_TIME = 1719842400.0


# `Case.no_form` of a case made of console sign-ins: the sign-in is the console's own record.
SIGN_IN = {"console": "a console sign-in is the console's own record: it has no other form"}
# `Case.no_form` of a case judged by the client's user agent (a tool's name in it): in the console the
# user agent is "AWS Internal", so the console form of the call is no longer that tool's call.
USER_AGENT = {"console": "the rule judges the client's user agent, which the console writes as AWS Internal"}


def at(minutes: float) -> str:
    """The eventTime `minutes` after the rule-test base time."""
    return iso_time(BASE_TIME + minutes * 60)


def call(
    source: str, name: str, request: dict[str, Any] | None = None, response: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A partial CloudTrail record for a rule case."""
    record: dict[str, Any] = {"eventSource": source, "eventName": name}
    if request is not None:
        record["requestParameters"] = request
    if response is not None:
        record["responseElements"] = response
    record.update(fields)
    return record


def iam_user(name: str = "alice", account: str = ACCOUNT, key: str = "AKIAEXAMPLEKEYID1234") -> dict[str, Any]:
    """The userIdentity of an IAM user calling with an access key."""
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE" + name.upper()[:8],
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": key,
        "userName": name,
    }


def role_session(
    role: str = "ops", session: str = "alice", account: str = ACCOUNT, path: str = "", **context: Any
) -> dict[str, Any]:
    """The userIdentity of an assumed-role session; `context` adds sessionContext fields."""
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLEID1234:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEKEYID1234",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLEID1234",
                "arn": f"arn:aws:iam::{account}:role/{path}{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-07-01T13:55:00Z", "mfaAuthenticated": "false"},
            **context,
        },
    }


def root_identity(account: str = ACCOUNT, **extra: Any) -> dict[str, Any]:
    """The userIdentity of the account's root user."""
    return {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEROOTKEY12",
        **extra,
    }


def service_linked(service: str = "autoscaling", role: str = "AWSServiceRoleForAutoScaling") -> dict[str, Any]:
    """The userIdentity of a service-linked role session that a service uses on the account's behalf."""
    return role_session(role=role, session=service.capitalize(), path=f"aws-service-role/{service}.amazonaws.com/")


def via_service(service: str, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fields of a call a service made with the caller's credentials (e.g. CloudFormation)."""
    ident = dict(identity or iam_user())
    ident["invokedBy"] = f"{service}.amazonaws.com"
    return {
        "userIdentity": ident,
        "sourceIPAddress": f"{service}.amazonaws.com",
        "userAgent": f"{service}.amazonaws.com",
    }


def failed(code: str = "AccessDenied") -> dict[str, Any]:
    """Fields of a failed call."""
    return {"errorCode": code, "errorMessage": "User is not authorized to perform this operation"}


def in_console() -> dict[str, Any]:
    """Fields of a call a person made in the console, as CloudTrail writes them: "AWS Internal" as
    source address and user agent, and `sessionCredentialFromConsole`."""
    return {"sourceIPAddress": "AWS Internal", "userAgent": "AWS Internal", "sessionCredentialFromConsole": "true"}


def console() -> dict[str, Any]:
    """Fields of a call made from a console session of an SSO user."""
    return {
        "userIdentity": role_session(
            "AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com", path="aws-reserved/sso.amazonaws.com/"
        ),
        **in_console(),
    }


def console_sign_in(
    identity: dict[str, Any], outcome: str = "Success", minutes: float = 0.0, ip: str = "81.2.69.142", mfa: str = "Yes"
) -> dict[str, Any]:
    """A ConsoleLogin record of `identity`, as signin.amazonaws.com writes it (a failure carries
    CloudTrail's "Failed authentication")."""
    record: dict[str, Any] = {
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "eventTime": at(minutes),
        "sourceIPAddress": ip,
        "userIdentity": identity,
        "requestParameters": None,
        "responseElements": {"ConsoleLogin": outcome},
        "additionalEventData": {
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": mfa,
        },
    }
    if outcome == "Failure":
        record["errorMessage"] = "Failed authentication"
    return record


def later(minutes: float) -> dict[str, Any]:
    """Any event `minutes` after the base time: it moves event time forward (finite input only advances
    time with its events), so a stateful rule's timers fall due."""
    return {"eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "eventTime": at(minutes)}
