"""PagerDuty Events API v2: `trigger` with dedup_key = the finding id (a digest re-triggers the same alert),
`resolve` when the finding resolves. The endpoint is configurable (a test's local receiver)."""

from __future__ import annotations

from typing import Any

from consumers.destinations.base import (
    RESOLVED,
    dumps,
    finding_link,
    occurrences,
    post_json,
    status,
    strings,
    text,
    updated_at,
)

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}


def event(finding: dict[str, Any], routing_key: str, link: str = "") -> dict[str, Any]:
    """The Events API v2 body for this delivery of the finding."""
    dedup_key = text(finding.get("id", ""), 255)
    if status(finding) == RESOLVED:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": text(
                f"[{text(finding.get('severity', ''), 10)}] {text(finding.get('title', ''), 300)}: "
                f"{text(finding.get('summary', ''), 1000)}",
                1024,
            ),
            "source": text(f"aws:{text(finding.get('account', ''), 20)}:{text(finding.get('region', ''), 30)}", 255),
            "severity": _SEVERITY.get(str(finding.get("severity")), "warning"),
            "timestamp": updated_at(finding),
            "component": text(finding.get("rule_id", ""), 255),
            "group": text(finding.get("account", ""), 255),
            "class": text(finding.get("rule_id", ""), 255),
            "custom_details": {
                "actor": text(finding.get("principal", ""), 1000),
                "source_ip": text(finding.get("source_ip", ""), 64),
                "resources": strings(finding.get("resources"), 300, 20),
                "attack": strings(finding.get("attack"), 20, 20),
                "occurrences": occurrences(finding),
                "event_ids": strings(finding.get("event_ids"), 100, 20),
            },
        },
    }
    if link:
        body["links"] = [{"href": link, "text": "the finding in the archive"}]
    return body


class PagerDutyDestination:
    def __init__(self, name: str, routing_key: str, url: str = EVENTS_URL, link: str = "") -> None:
        self.name = name
        self.url = url or EVENTS_URL
        self._key = routing_key
        self.link = link

    def send(self, finding: dict[str, Any]) -> None:
        body = dumps(event(finding, self._key, finding_link(self.link, finding)))
        post_json(self.url, body, {}, f"pagerduty destination {self.name!r}")
