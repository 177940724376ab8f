"""Findings: the one JSON schema every sink and output writes (see docs/findings.md)."""

from __future__ import annotations

import hashlib
import time as _time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.event import parse_event_time

SEVERITIES = ("info", "low", "medium", "high", "critical")
OPEN, RESOLVED = "open", "resolved"  # a finding's status (see docs/findings.md, "Lifecycle")
STATUSES = (OPEN, RESOLVED)


_FIRST_SECOND, _LAST_SECOND = -62135596800.0, 253402300799.0  # 0001-01-01 and 9999-12-31T23:59:59


def iso_time(epoch: float) -> str:
    """UTC ISO 8601 with a Z, second resolution, as CloudTrail writes times; clamped to years 1-9999
    (a deadline computed past year 9999 must not make a finding unwritable)."""
    if epoch != epoch:  # NaN
        epoch = 0.0
    epoch = min(max(epoch, _FIRST_SECOND), _LAST_SECOND)
    return datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def window_start(event_time: float, dedup_seconds: float) -> int:
    """Start of the dedup window that `event_time` falls in (the event time itself if no period)."""
    if dedup_seconds <= 0:
        return int(event_time)
    return int(event_time // dedup_seconds * dedup_seconds)


_MAX_DEPTH = 8
_MAX_ITEMS = 100
_MAX_TEXT = 4096


def bounded(value: Any, depth: int = _MAX_DEPTH) -> Any:
    """`value` cut to a size any sink can write: nesting, item counts and strings are bounded.

    Rules copy request values (attacker-controlled) into a finding's context; without a bound a
    deeply nested request would make the finding unwritable and stop the shard."""
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "...[truncated]"
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)  # orjson writes 64-bit integers only
    if depth <= 0:
        return "[nested too deep]"
    if isinstance(value, dict):
        out = {str(k)[:256]: bounded(v, depth - 1) for k, v in list(value.items())[:_MAX_ITEMS]}
        if len(value) > _MAX_ITEMS:
            out["[truncated]"] = f"{len(value) - _MAX_ITEMS} more keys"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        out_list = [bounded(v, depth - 1) for v in seq[:_MAX_ITEMS]]
        if len(seq) > _MAX_ITEMS:
            out_list.append(f"[{len(seq) - _MAX_ITEMS} more items]")
        return out_list
    return bounded(str(value), depth)


def finding_id(rule_id: str, dedup_key: str, window: int, account: str = "") -> str:
    """Deterministic: a retry, failover or replay of the same input yields the same id. The account
    is always part of it, so the same behaviour in two accounts is two alerts, whatever the rule's key."""
    digest = hashlib.sha256(f"{rule_id}\x1f{account}\x1f{dedup_key}\x1f{window}".encode("utf-8", "replace"))
    return digest.hexdigest()[:32]


@dataclass
class Finding:
    """One detection. `event_time` is the time of the event that completed the detection."""

    id: str
    rule_id: str
    title: str
    severity: str
    attack: tuple[str, ...]
    account: str
    region: str
    principal: str
    source_ip: str
    user_agent: str
    resources: tuple[str, ...]
    event_ids: tuple[str, ...]
    event_time: float
    dedup_key: str
    window: int
    summary: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    detected_at: float = field(default_factory=_time.time)
    replayed: bool = False
    status: str = OPEN
    updated_at: float | None = None  # event time of the latest change (None: `event_time`)
    occurrences: int = 1  # matching events counted so far
    resolution: str = ""  # why a resolved finding resolved

    def resolved(self, at: float, why: str, event_id: str = "") -> Finding:
        """This finding, resolved at event time `at` because `why`; the same id."""
        return replace(
            self,
            status=RESOLVED,
            updated_at=at,
            resolution=why,
            event_ids=self.event_ids + ((event_id,) if event_id and event_id not in self.event_ids else ()),
        )

    def digest(self, occurrences: int, at: float) -> Finding:
        """This open finding counted `occurrences` times, the latest at event time `at`; the same id."""
        return replace(self, status=OPEN, occurrences=occurrences, updated_at=max(at, self.event_time), resolution="")

    @property
    def delivery_key(self) -> str:
        """What a destination receives once: the first alert is keyed by the id alone (as before findings had
        a lifecycle), a resolution by id and status, a digest by id and count."""
        if self.status == RESOLVED:
            return f"{self.id}:resolved"
        return self.id if self.occurrences <= 1 else f"{self.id}:{self.occurrences}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "trailwarden.finding/1",
            "id": self.id,
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "attack": list(self.attack),
            "summary": self.summary,
            "account": self.account,
            "region": self.region,
            "principal": self.principal,
            "source_ip": self.source_ip,
            "user_agent": self.user_agent,
            "resources": list(self.resources),
            "event_ids": list(self.event_ids),
            "event_time": iso_time(self.event_time),
            "detected_at": iso_time(self.detected_at),
            "dedup_key": self.dedup_key,
            "window_start": iso_time(self.window),
            "replayed": self.replayed,
            "status": self.status,
            "updated_at": iso_time(self.event_time if self.updated_at is None else self.updated_at),
            "occurrences": self.occurrences,
            "resolution": self.resolution,
            "context": bounded(self.context),
        }

    def to_json(self) -> bytes:
        """One line of JSON (no newline); control characters are escaped, so it cannot break lines."""
        return orjson.dumps(self.to_dict(), default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            id=d["id"],
            rule_id=d["rule_id"],
            title=d["title"],
            severity=d["severity"],
            attack=tuple(d.get("attack", ())),
            account=d.get("account", ""),
            region=d.get("region", ""),
            principal=d.get("principal", ""),
            source_ip=d.get("source_ip", ""),
            user_agent=d.get("user_agent", ""),
            resources=tuple(d.get("resources", ())),
            event_ids=tuple(d.get("event_ids", ())),
            event_time=parse_event_time(d.get("event_time")) or 0.0,
            dedup_key=d.get("dedup_key", ""),
            window=int(parse_event_time(d.get("window_start")) or 0),
            summary=d.get("summary", ""),
            context=d.get("context", {}),
            detected_at=parse_event_time(d.get("detected_at")) or 0.0,
            replayed=bool(d.get("replayed", False)),
            status=RESOLVED if d.get("status") == RESOLVED else OPEN,
            updated_at=parse_event_time(d.get("updated_at")),
            occurrences=max(1, n) if type(n := d.get("occurrences")) is int else 1,
            resolution=str(d.get("resolution", "")),
        )
