"""Amazon EventBridge: PutEvents on a configured bus, source "trailwarden", detail-type "Trailwarden Finding",
the finding dict as the detail (bounded to EventBridge's 256 KB entry)."""

from __future__ import annotations

from typing import Any

import orjson

from consumers.destinations.base import DeliveryError, text
from consumers.sinks.base import encode
from consumers.sinks.retry import error_code, is_transient
from pipeline.finding import Finding

SOURCE, DETAIL_TYPE = "trailwarden", "Trailwarden Finding"
MAX_DETAIL = 250 * 1024


def detail(finding: dict[str, Any]) -> str:
    """The finding as JSON of at most MAX_DETAIL bytes (the archive's encoder: context dropped, then texts cut);
    the lifecycle keys are kept as they are."""
    extra = {k: finding[k] for k in ("status", "updated_at", "occurrences", "resolution") if k in finding}
    try:
        base = encode(Finding.from_dict(finding), MAX_DETAIL - 2048)
    except (KeyError, TypeError, ValueError):
        base = b"{}"
    doc = orjson.loads(base)
    doc.update({k: v if not isinstance(v, str) else text(v, 500) for k, v in extra.items()})
    return orjson.dumps(doc).decode()


class EventBridgeDestination:
    def __init__(self, name: str, client: Any, bus: str = "default") -> None:
        self.name = name
        self.client = client
        self.bus = bus or "default"

    def send(self, finding: dict[str, Any]) -> None:
        entry = {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": detail(finding),
            "EventBusName": self.bus,
            "Resources": [r for r in finding.get("resources", [])[:10] if str(r).startswith("arn:")],
        }
        try:
            response = self.client.put_events(Entries=[entry])
        except Exception as exc:  # botocore's errors: throttling and 5xx are transient
            raise DeliveryError(
                f"eventbridge destination {self.name!r}: {error_code(exc) or type(exc).__name__}",
                transient=is_transient(exc),
            ) from None
        if response.get("FailedEntryCount"):
            code = str((response.get("Entries") or [{}])[0].get("ErrorCode") or "Failed")
            raise DeliveryError(
                f"eventbridge destination {self.name!r}: {code}", transient="Throttl" in code or "Internal" in code
            )
