"""Shared parts of the rules that judge one change a person makes to a control, a credential or a
resource: whether AWS itself made the call, and the finding for the change.

Who acted is answered by `attack_common.by_aws_service`, as for every rule: a console session is a person,
and so is CloudFormation or Auto Scaling acting for whoever created the stack or group (known automation
belongs in the rule's allowlist, by role ARN, not in the rule).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pipeline.event import Event, text
from pipeline.rule import Hit
from pipeline.rules.attack_common import actor, by_aws_service, outcome


def by_person(e: Event, include_failed: bool) -> bool:
    """A person's call (not AWS itself, see `by_aws_service`) that counts: it succeeded, or failures count
    for the rule."""
    return (e.succeeded or include_failed) and not by_aws_service(e)


def change_hit(
    e: Event,
    what: str,
    target: str = "",
    detail: str = "",
    *,
    key: str = "",
    resources: tuple[str, ...] = (),
    **context: Any,
) -> Hit:
    """The finding for one change ("<what> <target> <detail> by <principal>"): keyed by who (the role behind
    a session), what call and which target unless `key` is given."""
    said = " ".join(part for part in (what, target, detail) if part)
    return Hit(
        key=key or f"{actor(e)}|{e.name}|{target}",
        resources=resources or ((target,) if target else ()),
        summary=f"{said} by {e.principal or actor(e)}{outcome(e)}",
        context={
            "target": target,
            "event_name": e.name,
            "actor": actor(e),
            "succeeded": e.succeeded,
            "error_code": e.error_code,
            "console": text(e.raw.get("sessionCredentialFromConsole")) == "true",
            "via": text(e.identity.get("invokedBy")),
            **context,
        },
    )


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
