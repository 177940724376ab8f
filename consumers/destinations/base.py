"""What every destination offers, the finding lifecycle fields it reads, and the text bounds it applies.

A destination takes one finding dict (`Finding.to_dict()`, the JSON every sink writes) and returns once the
service accepted it, or raises `DeliveryError`: transient (throttled, 5xx, unreachable: try again later) or
permanent (refused: retrying will not help, the message goes to the destination's dead-letter queue).
Error messages never carry a URL, a key or a response body: webhook URLs and routing keys are secrets.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

import orjson

OPEN, RESOLVED = "open", "resolved"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class DeliveryError(Exception):
    """The service did not accept the finding. `transient`: worth retrying later; `retry_after`: seconds the
    service asked to wait (HTTP 429 Retry-After), if it said."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class Destination(Protocol):
    """Sends one finding (open, a digest or a resolution) to one service."""

    name: str

    def send(self, finding: dict[str, Any]) -> None: ...


def status(finding: dict[str, Any]) -> str:
    """ "open" or "resolved" (findings written before the lifecycle have no status: open)."""
    return RESOLVED if finding.get("status") == RESOLVED else OPEN


def occurrences(finding: dict[str, Any]) -> int:
    value = finding.get("occurrences", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def updated_at(finding: dict[str, Any]) -> str:
    return text(finding.get("updated_at") or finding.get("detected_at") or finding.get("event_time") or "", 32)


def delivery_id(finding: dict[str, Any], destination: str) -> str:
    """The identity of one delivery: (finding id, destination, status, occurrences), hashed."""
    raw = "\x1f".join((str(finding.get("id", "")), destination, status(finding), str(occurrences(finding))))
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:40]


def finding_link(template: str, finding: dict[str, Any]) -> str:
    """`template` with {id} replaced by the url-quoted finding id; empty without a template."""
    return template.replace("{id}", urllib.parse.quote(str(finding.get("id", "")), safe="")) if template else ""


def text(value: Any, limit: int) -> str:
    """`value` as one line of at most `limit` characters: control, bidi and zero-width characters and line
    breaks become spaces; an over-long text ends with "…"."""
    s = " ".join(_CONTROL.sub(" ", str(value if value is not None else "")).split())
    return s if len(s) <= limit else s[: max(0, limit - 1)] + "…"


def strings(value: Any, limit: int, count: int) -> list[str]:
    """At most `count` non-empty texts of a list field, each bounded."""
    items = value if isinstance(value, list | tuple) else []
    return [t for t in (text(v, limit) for v in items[:count]) if t]


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS)


def post_json(url: str, body: bytes, headers: dict[str, str], what: str, timeout: float = 10.0) -> bytes:
    """POST `body` as JSON; the response body on 2xx. DeliveryError otherwise: transient for 429, 5xx and
    connection failures (the message names `what` and the status, never the URL)."""
    request = urllib.request.Request(  # noqa: S310 (https URL checked at load)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (https URL checked at load)
            return response.read()
    except urllib.error.HTTPError as exc:
        code = exc.code
        retry_after = _seconds(exc.headers.get("Retry-After") if exc.headers else None)
        raise DeliveryError(
            f"{what}: HTTP {code}", transient=code == 429 or code >= 500, retry_after=retry_after
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{what}: unreachable ({type(reason).__name__})", transient=True) from None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
