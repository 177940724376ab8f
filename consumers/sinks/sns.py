"""SNS: PublishBatch of up to 10 findings, with a safe subject and filterable message attributes.

Attributes come from the finding's structured fields only (never parsed from text), are
sanitized like the subject, and so cannot be forged by attacker-controlled CloudTrail text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from consumers.sinks.base import encode
from consumers.sinks.batching import batches
from consumers.sinks.retry import RetryPolicy, resend_failed
from pipeline.finding import Finding

MAX_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024
MAX_SUBJECT = 100
MAX_ATTRIBUTE = 256
_ENTRY_OVERHEAD = 1024  # attributes and subject, counted against the batch payload limit
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]+")
_SPACES = re.compile(r"\s+")


def printable(text: Any, limit: int) -> str:
    """Printable ASCII only (anything else becomes a space), whitespace collapsed, at most `limit` chars."""
    cleaned = _SPACES.sub(" ", _NOT_PRINTABLE.sub(" ", str(text))).strip()
    return cleaned[:limit].rstrip()


def subject(finding: Finding) -> str:
    """`[severity] title` (`[resolved]` or `[xN]` after the severity for a resolution or a digest): at most
    100 printable ASCII characters, never empty, no line breaks."""
    update = (
        " [resolved]"
        if finding.status == "resolved"
        else f" [x{finding.occurrences}]"
        if finding.occurrences > 1
        else ""
    )
    text = printable(f"[{finding.severity}]{update} {finding.title}", MAX_SUBJECT)
    return text or "trailwarden finding"


def attributes(finding: Finding) -> dict[str, dict[str, str]]:
    """severity, rule_id, account and status as String attributes (SNS refuses empty values: "unknown" instead)."""
    values = {
        "severity": finding.severity,
        "rule_id": finding.rule_id,
        "account": finding.account,
        "status": finding.status,
    }
    return {
        name: {"DataType": "String", "StringValue": printable(value, MAX_ATTRIBUTE) or "unknown"}
        for name, value in values.items()
    }


def entry(finding: Finding, index: int, fifo: bool) -> dict[str, Any]:
    body = encode(finding, MAX_BATCH_BYTES - _ENTRY_OVERHEAD).decode("utf-8", "replace")
    e: dict[str, Any] = {
        "Id": f"f{index}",
        "Message": body,
        "Subject": subject(finding),
        "MessageAttributes": attributes(finding),
    }
    if fifo:
        e["MessageGroupId"] = printable(finding.rule_id, 128) or "trailwarden"
        e["MessageDeduplicationId"] = finding.delivery_key  # a resolution or digest is not its first alert
    return e


class SnsSink:
    """Publishes findings to one topic; failed entries are resent until acknowledged."""

    name = "sns"

    def __init__(self, client: Any, topic_arn: str, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.topic_arn = topic_arn
        self.policy = policy or RetryPolicy()
        self.fifo = topic_arn.endswith(".fifo")
        self.calls = 0

    def deliver(self, findings: Sequence[Finding]) -> None:
        entries = [entry(f, i, self.fifo) for i, f in enumerate(findings)]
        for batch in batches(entries, MAX_ENTRIES, MAX_BATCH_BYTES, _size):
            resend_failed(self._send, batch, self.policy, f"SNS PublishBatch to {self.topic_arn}")

    def _send(self, batch: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        self.calls += 1
        response = self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=batch)
        by_id = {e["Id"]: e for e in batch}
        failed = []
        for f in response.get("Failed") or []:
            item = by_id.get(f.get("Id"))
            if item is not None:
                failed.append((item, str(f.get("Code") or "Failed") if f.get("SenderFault") else ""))
        acknowledged = {s.get("Id") for s in response.get("Successful") or []}
        missing = [(e, "") for e in batch if e["Id"] not in acknowledged and all(e is not x for x, _ in failed)]
        return failed + missing


def _size(e: dict[str, Any]) -> int:
    return len(e["Message"].encode()) + _ENTRY_OVERHEAD
