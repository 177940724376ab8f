"""Shared parts of the CIS AWS Foundations monitoring rules (section 4 of Benchmark v1.4/v1.5).

Each CIS control is a CloudWatch Logs metric filter. The rules keep the filters' semantics: a filter
that names no eventSource matches its event names from any source (declared with the `"*"` source),
and change-monitoring filters match whatever the call's outcome, so a failed attempt to stop a
trail is reported too (its finding says the call failed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.event import Event, dig
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import actor

# Where a change's target is named in requestParameters, most specific first; the response
# carries the id of what a Create* call made.
TARGET_PATHS: tuple[tuple[str, ...], ...] = (
    ("policyArn",),
    ("policyName",),
    ("roleName",),
    ("userName",),
    ("groupName",),
    ("name",),
    ("trailName",),
    ("keyId",),
    ("bucketName",),
    ("configurationRecorder", "name"),
    ("deliveryChannel", "name"),
    ("configurationRecorderName",),
    ("deliveryChannelName",),
    ("groupId",),
    ("networkAclId",),
    ("routeTableId",),
    ("associationId",),
    ("internetGatewayId",),
    ("customerGatewayId",),
    ("vpcPeeringConnectionId",),
    ("vpcId",),
    ("instanceId",),
    ("policyId",),
    ("accountId",),
    ("organizationalUnitId",),
    ("handshakeId",),
    ("targetId",),
)
RESPONSE_PATHS: tuple[tuple[str, ...], ...] = (
    ("policy", "arn"),
    ("trailARN",),
    ("groupId",),
    ("networkAcl", "networkAclId"),
    ("routeTable", "routeTableId"),
    ("internetGateway", "internetGatewayId"),
    ("customerGateway", "customerGatewayId"),
    ("vpc", "vpcId"),
    ("vpcPeeringConnection", "vpcPeeringConnectionId"),
    ("policy", "policySummary", "id"),
    ("organizationalUnit", "id"),
    ("createAccountStatus", "accountName"),
)


def targets(e: Event, limit: int = 3) -> tuple[str, ...]:
    """The names or ids of what a call changed, as far as its request and response tell."""
    found: list[str] = []
    for paths, where in ((TARGET_PATHS, e.request), (RESPONSE_PATHS, e.response)):
        for path in paths:
            value = dig(where, *path)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if type(value) is str and value and value not in found:
                found.append(value[:256])
                if len(found) >= limit:
                    return tuple(found)
    return tuple(found)


def change_hit(e: Event, control: str) -> Hit:
    """A finding for one change: keyed by who, what call and which target, so repeats dedup."""
    changed = targets(e)
    target = changed[0] if changed else ""
    who = e.principal or "unknown principal"
    summary = f"{e.name} on {target} by {who}" if target else f"{e.name} by {who}"
    if e.error_code:
        summary += f" (failed: {e.error_code})"
    return Hit(
        key=f"{actor(e)}|{e.name}|{target}",
        resources=changed,
        summary=summary,
        context={"cis_control": control, "targets": list(changed), "error_code": e.error_code},
    )


def change_monitor(
    *,
    control: str,
    id: str,
    title: str,
    severity: str,
    attack: str | Iterable[str],
    events: dict[str, Any],
    description: str,
    runbook: str,
    cases: Iterable[Case],
) -> None:
    """Declare a CIS change-monitoring rule: every event it declares is a finding."""

    def check(e: Event, p: Params) -> Hit:
        return change_hit(e, control)

    check.__doc__ = description
    check.__name__ = check.__qualname__ = id.replace("-", "_")
    match(
        id=id, title=title, severity=severity, attack=attack, events=events, dedup="1h", runbook=runbook, cases=cases
    )(check)
