"""Slack: an incoming webhook, one Block Kit message per delivery (the alert, a digest, the resolution).

Every text that can come from CloudTrail (title, summary, actor, resources, account, region) is set in
`plain_text` objects, which Slack never parses for mentions, links or formatting, and bounded to Slack's
limits (header 150, section 3000, field 2000 characters; at most 10 fields); the few mrkdwn texts (rule,
runbook, link) are escaped (&, <, >). Incoming webhooks cannot thread or edit: a digest and a resolution are
new messages naming the same finding id.
"""

from __future__ import annotations

import logging
from typing import Any

from consumers.destinations.base import (
    RESOLVED,
    DeliveryError,
    finding_link,
    occurrences,
    status,
    strings,
    text,
)

HEADER, SECTION, FIELD, CONTEXT = 150, 3000, 2000, 2000
MAX_RESOURCES = 10
_ICON = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}


def escape(value: str) -> str:
    """Slack's mrkdwn escaping: &, < and > (so no <!channel>, no <url|text>, no user mention)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(value: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": value or " ", "emoji": False}


def headline(finding: dict[str, Any]) -> str:
    severity = text(finding.get("severity", ""), 10).upper() or "FINDING"
    title = text(finding.get("title", ""), HEADER)
    if status(finding) == RESOLVED:
        return text(f"✅ Resolved [{severity}] {title}", HEADER)
    count = occurrences(finding)
    icon = _ICON.get(str(finding.get("severity")), "⚪")
    suffix = f" ({count} occurrences)" if count > 1 else ""
    return text(f"{icon} [{severity}] {title}", HEADER - len(suffix)) + suffix


def message(finding: dict[str, Any], link_template: str = "", runbook: str = "") -> dict[str, Any]:
    """The webhook payload: a notification text and the blocks."""
    head = headline(finding)
    body = text(finding.get("summary") or finding.get("title") or "", SECTION)
    if status(finding) == RESOLVED:
        body = text(f"Resolved: {text(finding.get('resolution', ''), 500) or 'condition cleared'}. {body}", SECTION)
    resources = strings(finding.get("resources"), 300, MAX_RESOURCES)
    fields = [
        plain(text(f"Actor\n{text(finding.get('principal', ''), FIELD - 8) or '-'}", FIELD)),
        plain(
            text(
                f"Account / region\n{text(finding.get('account', ''), 20) or '-'} / "
                f"{text(finding.get('region', ''), 30) or '-'}",
                FIELD,
            )
        ),
        plain(text(f"Source\n{text(finding.get('source_ip', ''), 64) or '-'}", FIELD)),
        plain(text(f"Status\n{status(finding)}, {occurrences(finding)} occurrence(s)", FIELD)),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(head)},
        {"type": "section", "text": plain(body or " ")},
        {"type": "section", "fields": fields},
    ]
    if resources:
        blocks.append({"type": "section", "text": plain(text("Resources: " + ", ".join(resources), SECTION))})
    context = [
        f"rule `{escape(text(finding.get('rule_id', ''), 100))}`",
        f"id `{escape(text(finding.get('id', ''), 64))}`",
    ]
    if runbook:
        context.append("runbook: " + escape(text(runbook, 1000)))
    link = finding_link(link_template, finding)
    if link:
        context.append(f"<{escape(link)}|open the finding in the archive>")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text(" · ".join(context), CONTEXT)}]})
    return {"text": escape(head), "blocks": blocks}


class SlackDestination:
    """Posts to a Slack incoming webhook through slack-sdk's WebhookClient."""

    def __init__(
        self, name: str, url: str, link: str = "", runbooks: dict[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        from slack_sdk.webhook import WebhookClient  # here: only processes that deliver to Slack load it

        self.name = name
        self.link = link
        self.runbooks = runbooks or {}
        # slack-sdk logs the webhook URL (a secret) at DEBUG: its logger here never says less than WARNING
        quiet = logging.getLogger(f"{__name__}.sdk")
        quiet.setLevel(logging.WARNING)
        self._client = WebhookClient(url, timeout=int(max(1, timeout)), logger=quiet)

    def send(self, finding: dict[str, Any]) -> None:
        payload = message(finding, self.link, self.runbooks.get(str(finding.get("rule_id")), ""))
        try:
            response = self._client.send(text=payload["text"], blocks=payload["blocks"])
        except Exception as exc:  # connection refused, timeout: slack-sdk raises urllib's errors as they are
            raise DeliveryError(
                f"slack destination {self.name!r}: unreachable ({type(exc).__name__})", transient=True
            ) from None
        code = response.status_code
        if code == 200:
            return
        retry = response.headers.get("Retry-After") or response.headers.get("retry-after")
        raise DeliveryError(
            f"slack destination {self.name!r}: HTTP {code}",
            transient=code == 429 or code >= 500,
            retry_after=float(retry) if retry and str(retry).isdigit() else None,
        )
