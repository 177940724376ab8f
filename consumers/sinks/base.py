"""What every sink offers, and the finding encoding that respects a size limit and never fails."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from pipeline.finding import Finding

_OPTIONS = orjson.OPT_NON_STR_KEYS
_CUTS = (4096, 1024, 256, 64)
_MAX_ITEMS = 50


class Sink(Protocol):
    """Delivers findings durably: returns only once the service acknowledged every one of them,
    raises `SinkError` otherwise (the caller then does not checkpoint)."""

    name: str

    def deliver(self, findings: Sequence[Finding]) -> None: ...


def _dumps(doc: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(doc, default=str, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps({**doc, "context": {"unserializable": True}}, default=str, option=_OPTIONS)


def _clip(value: Any, cut: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value[:cut]
    if depth >= 4:
        return None if isinstance(value, list | tuple | dict) else value
    if isinstance(value, list | tuple):
        return [_clip(v, cut, depth + 1) for v in value[:_MAX_ITEMS]]
    if isinstance(value, dict):
        return {str(k)[:cut]: _clip(v, cut, depth + 1) for k, v in list(value.items())[:_MAX_ITEMS]}
    return value


def encode(finding: Finding, limit: int) -> bytes:
    """The finding's JSON (one line), at most `limit` bytes and always valid JSON: if too large, the
    context is dropped, then every text field is cut, ever shorter; never the bytes."""
    doc = finding.to_dict()
    data = _dumps(doc)
    if len(data) <= limit:
        return data
    doc["context"] = {"truncated": True}
    for cut in _CUTS:
        data = _dumps(_clip(doc, cut))
        if len(data) <= limit:
            return data
    return _dumps(
        {
            "schema": doc.get("schema"),
            "id": str(finding.id)[:64],
            "rule_id": str(finding.rule_id)[:64],
            "severity": str(finding.severity)[:16],
            "truncated": True,
        }
    )


def line(finding: Finding, limit: int = 1000 * 1024) -> bytes:
    """One finding as one line: JSON (no raw line breaks), then a newline."""
    return encode(finding, limit - 1) + b"\n"
