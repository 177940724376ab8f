"""Findings raised by stage 2, built from the facts that completed a detection (no Event is at hand)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.finding import Finding, finding_id, iso_time
from pipeline.rule import Hit, Rule

Meta = tuple[str, str, str, str, str, str]  # event id, account, region, principal, source ip, user agent
NO_META: Meta = ("", "", "", "", "", "")
Where = tuple[str, ...]  # a Meta without its event id: what many facts share
NO_WHERE: Where = NO_META[1:]

_SHARED_LIMIT = 1 << 16  # distinct Where tuples kept shared; past it (attacker-chosen values) each is its own
_shared: dict[Where, Where] = {NO_WHERE: NO_WHERE}


def shared_where(where: Where) -> Where:
    """`where` as the one tuple every key holding the same fields shares (state keeps a pointer, not a copy)."""
    found = _shared.get(where)
    if found is None:
        found = where
        if len(_shared) < _SHARED_LIMIT:
            _shared[where] = where
    return found


def stateful_finding(
    rule: Rule,
    key: str,
    meta: Meta,
    *,
    event_ids: Sequence[str],
    event_time: float,
    window: int,
    summary: str,
    context: dict[str, Any],
    hit: Hit | None = None,
    dedup_key: str = "",
) -> Finding:
    """A finding for a stateful rule. The id derives from the rule, the dedup key and the window, so
    the same input gives the same id live, replayed or offline."""
    dedup_key = dedup_key or key
    ctx: dict[str, Any] = {"kind": rule.kind, "key": key, **context}
    resources: tuple[str, ...] = (key,)
    if hit is not None:
        ctx.update(hit.context)
        summary = hit.summary or summary
        resources = tuple(hit.resources) or resources
    return Finding(
        id=finding_id(rule.id, dedup_key, window, meta[1]),
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        attack=rule.attack,
        account=meta[1],
        region=meta[2],
        principal=meta[3],
        source_ip=meta[4],
        user_agent=meta[5],
        resources=resources,
        event_ids=tuple(e for e in event_ids if e),
        event_time=event_time,
        dedup_key=dedup_key,
        window=window,
        summary=summary,
        context=ctx,
    )


def when(t: float) -> str:
    return iso_time(t)
