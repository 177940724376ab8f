"""Shared parts of the rules that judge one change a person makes to a control, a credential or a
resource: whether AWS itself made the call, and the finding for the change.

Who acted is the `userIdentity`. A console session ("AWS Internal" source and user agent) is a person;
so is CloudFormation or Auto Scaling acting for whoever created or updated the stack or group (a skip
for known automation belongs in the rule's allowlist, by role ARN, not in the rule).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pipeline.event import Event, text
from pipeline.rule import Hit
from pipeline.rules.attack_common import actor, outcome, session_issuer

# Services that act for the person who configured them: the person is the actor.
ON_BEHALF_OF_A_PERSON = frozenset({"cloudformation.amazonaws.com", "autoscaling.amazonaws.com"})


def aws_itself(e: Event) -> bool:
    """True when AWS made the call on its own: an AWS service principal, a service-linked role (which no
    person can assume), or a service other than CloudFormation and Auto Scaling acting with `invokedBy`."""
    ident = e.identity
    if text(ident.get("type")) == "AWSService":
        return True
    if ":role/aws-service-role/" in text(session_issuer(e).get("arn")):
        return True
    invoked = text(ident.get("invokedBy"))
    return bool(invoked) and invoked not in ON_BEHALF_OF_A_PERSON


def by_person(e: Event, include_failed: bool) -> bool:
    """A person's call (see `aws_itself`) that counts: it succeeded, or failures count for the rule."""
    return (e.succeeded or include_failed) and not aws_itself(e)


def change_hit(e: Event, what: str, target: str = "", detail: str = "", *, key: str = "",
               resources: tuple[str, ...] = (), **context: Any) -> Hit:
    """The finding for one change ("<what> <target> <detail> by <principal>"): keyed by who (the role behind
    a session), what call and which target unless `key` is given."""
    said = " ".join(part for part in (what, target, detail) if part)
    return Hit(key=key or f"{actor(e)}|{e.name}|{target}",
               resources=resources or ((target,) if target else ()),
               summary=f"{said} by {e.principal or actor(e)}{outcome(e)}",
               context={"target": target, "event_name": e.name, "actor": actor(e), "succeeded": e.succeeded,
                        "error_code": e.error_code,
                        "console": text(e.raw.get("sessionCredentialFromConsole")) == "true",
                        "via": text(e.identity.get("invokedBy")), **context})


def first_text(e: Event, *names: str) -> str:
    """The first non-empty string among requestParameters fields `names`."""
    request = e.request
    for name in names:
        value = text(request.get(name))
        if value:
            return value
    return ""


def matches_any(name: str, patterns: list[str]) -> bool:
    """Whether `name` matches one of the shell patterns (case-insensitive)."""
    lowered = name.lower()
    return any(type(p) is str and fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)
