"""What every sink offers, and the finding encoding that respects a size limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from pipeline.finding import Finding


class Sink(Protocol):
    """Delivers findings durably: returns only once the service acknowledged every one of them,
    raises `SinkError` otherwise (the caller then does not checkpoint)."""

    name: str

    def deliver(self, findings: Sequence[Finding]) -> None: ...


def encode(finding: Finding, limit: int) -> bytes:
    """The finding's JSON, at most `limit` bytes: if too large, context is dropped, then long texts cut."""
    data = finding.to_json()
    if len(data) <= limit:
        return data
    doc = finding.to_dict()
    doc["context"] = {"truncated": True}
    data = orjson.dumps(doc, default=str)
    if len(data) <= limit:
        return data
    for key in ("summary", "user_agent", "principal"):
        doc[key] = str(doc.get(key, ""))[:256]
    for key in ("resources", "event_ids"):
        doc[key] = [str(v)[:256] for v in doc.get(key, [])[:20]]
    doc["title"] = str(doc.get("title", ""))[:256]
    return orjson.dumps(doc, default=str)[:limit]  # the schema's fixed fields alone never reach this
