"""The forms one act takes in CloudTrail, for rule cases.

`pipeline.ruletest` runs every case that expects findings again as made in the console and through a
CloudFormation stack, and expects the same findings. What a denied call means is each rule's own
decision (trying to turn a control off is the behaviour; a rejected policy exposes nothing), so a rule
states it with `with_denied`: the act as given, and the same act denied. `console` and `stack` give the
other forms for cases that expect a rule to tell them apart (a console page fanning out reads).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.cases import failed, via_service
from pipeline.rule import Case
from pipeline.ruletest import console_form, default_identity

Record = dict[str, Any]


def with_denied(
    name: str,
    events: Record | Iterable[Record],
    *,
    failed_expect: int,
    failed_why: str,
    expect: int = 1,
    params: dict[str, Any] | None = None,
    code: str = "AccessDenied",
) -> list[Case]:
    """Two cases of one act: as given (expecting `expect` findings) and denied (expecting `failed_expect`,
    for the reason `failed_why`)."""
    batch = [events] if isinstance(events, dict) else list(events)
    return [
        Case(name, batch, expect, params),
        Case(f"{name}, denied ({failed_why})", [{**e, **failed(code)} for e in batch], failed_expect, params),
    ]


def console(event: Record) -> Record:
    """`event` made by the same identity in the console."""
    return console_form(event) or event


def stack(event: Record) -> Record:
    """`event` made by CloudFormation for a stack of the same identity, whatever call it is."""
    identity = {k: v for k, v in (event.get("userIdentity") or default_identity()).items() if k != "invokedBy"}
    return {**event, **via_service("cloudformation", identity)}
