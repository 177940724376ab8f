"""A generic HTTPS webhook: the finding dict as the JSON body, signed.

Headers: `X-Trailwarden-Timestamp` (Unix seconds), `X-Trailwarden-Signature: v1=<hex HMAC-SHA256 of
"<timestamp>." + body with the shared secret>`, `X-Trailwarden-Delivery` (the delivery's identity: the
same for a resend of the same delivery, so a receiver can drop repeats). A receiver checks the signature
in constant time, refuses timestamps more than `TOLERANCE` seconds off, and remembers delivery ids for
that long: a captured request cannot be replayed (docs/destinations.md has the snippet).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from consumers.destinations.base import delivery_id, dumps, post_json

TOLERANCE = 300
SIGNATURE, TIMESTAMP, DELIVERY = "X-Trailwarden-Signature", "X-Trailwarden-Timestamp", "X-Trailwarden-Delivery"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes, headers: dict[str, str], body: bytes, now: float | None = None, tolerance: float = TOLERANCE
) -> bool:
    """What a receiver does (without the delivery-id memory): the signature matches and the timestamp is fresh."""
    timestamp = headers.get(TIMESTAMP, "")
    if not timestamp.isdigit() or abs((now if now is not None else time.time()) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), headers.get(SIGNATURE, ""))


class WebhookDestination:
    def __init__(self, name: str, url: str, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.url = url
        self._secret = secret.encode()
        self.clock = clock

    def send(self, finding: dict[str, Any]) -> None:
        body = dumps(finding)
        timestamp = str(int(self.clock()))
        headers = {
            TIMESTAMP: timestamp,
            SIGNATURE: signature(self._secret, timestamp, body),
            DELIVERY: delivery_id(finding, self.name),
            "User-Agent": "trailwarden",
        }
        post_json(self.url, body, headers, f"webhook destination {self.name!r}")
