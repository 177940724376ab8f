"""The normalized CloudTrail event: the raw record plus safe, typed accessors.

CloudTrail fields are attacker-controlled text, so every accessor returns the type it
promises whatever the record holds (a wrong type reads as empty), and nothing here raises.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_EMPTY: dict[str, Any] = {}
_hour_epochs: dict[str, float] = {}
# A day's margin inside years 1-9999, so time-zone conversions and windows of a valid time never overflow.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
_PRINCIPAL_FIELDS = ("arn", "principalId", "invokedBy")  # who called, in order of preference
_SIXTY = {f"{n:02d}": n for n in range(61)}  # seconds may read 60 (leap second)


def _hour_epoch(hour: str) -> float | None:
    """Epoch of "YYYY-MM-DDTHH", cached; None if it is not a valid hour."""
    if hour[10] != "T" or not hour[11:13].isdigit():
        return None
    try:
        day = datetime.fromisoformat(hour[:10]).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    h = int(hour[11:13])
    if h > 23 or not _EARLIEST <= day <= _LATEST:
        return None
    if len(_hour_epochs) > 8192:
        _hour_epochs.clear()
    _hour_epochs[hour] = base = day + h * 3600
    return base


def text(value: Any) -> str:
    """`value` if it is a string, else ""."""
    return value if type(value) is str else ""


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty (shared, read-only by convention) dict."""
    return value if type(value) is dict else _EMPTY


def items(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else []."""
    return value if type(value) is list else []


def dig(value: Any, *path: str) -> Any:
    """Follow `path` through nested objects; None where a step is missing or not an object."""
    for step in path:
        if type(value) is not dict:
            return None
        value = value.get(step)
    return value


def parse_event_time(value: Any) -> float | None:
    """Epoch seconds of a CloudTrail `eventTime` ("2024-07-31T13:06:24Z"), or None if invalid."""
    if type(value) is not str:
        return None
    # The common shape is parsed by slicing with a per-hour cache: this runs once per event.
    if len(value) == 20 and value[19] == "Z" and value[13] == ":" and value[16] == ":":
        hour = value[:13]
        base = _hour_epochs.get(hour)
        if base is None:
            base = _hour_epoch(hour)
            if base is None:
                return None
        minute = _SIXTY.get(value[14:16])
        second = _SIXTY.get(value[17:19])
        if minute is None or second is None or minute > 59:
            return None
        return base + minute * 60 + second
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    epoch = parsed.timestamp()
    return epoch if _EARLIEST <= epoch <= _LATEST else None


class Event:
    """One CloudTrail record. `source`, `name` and `time` are always valid; the rest is read lazily."""

    __slots__ = ("name", "origin", "raw", "source", "time")

    def __init__(self, raw: dict[str, Any], source: str, name: str, time: float, origin: str = "") -> None:
        self.raw = raw
        self.source = source
        self.name = name
        self.time = time
        self.origin = origin

    @classmethod
    def from_record(cls, raw: Any, origin: str = "") -> Event | str:
        """The event for a decoded record, or the reason it is not a usable CloudTrail event."""
        if type(raw) is not dict:
            return f"record is a JSON {type(raw).__name__}, not an object"
        source = raw.get("eventSource")
        name = raw.get("eventName")
        if type(source) is not str or not source:
            return "eventSource missing or not a string"
        if type(name) is not str or not name:
            return "eventName missing or not a string"
        value = raw.get("eventTime")
        # `parse_event_time`'s common case, without the call (this runs once per event): an hour already seen.
        if (
            type(value) is str
            and len(value) == 20
            and value[19] == "Z"
            and value[13] == ":"
            and value[16] == ":"
            and (base := _hour_epochs.get(value[:13])) is not None
            and (minute := _SIXTY.get(value[14:16])) is not None
            and minute < 60
            and (second := _SIXTY.get(value[17:19])) is not None
        ):
            return cls(raw, source, name, base + minute * 60 + second, origin)
        time = parse_event_time(value)
        if time is None:
            return "eventTime missing or not an ISO 8601 time"
        return cls(raw, source, name, time, origin)

    def get(self, *path: str) -> Any:
        """A field by path, e.g. `e.get("requestParameters", "groupId")`; None if absent."""
        return dig(self.raw, *path)

    def text(self, *path: str) -> str:
        """A string field by path; "" if absent or not a string."""
        return text(dig(self.raw, *path))

    @property
    def event_id(self) -> str:
        value = self.raw.get("eventID")
        return value if type(value) is str else ""

    @property
    def event_time(self) -> str:
        value = self.raw.get("eventTime")
        return value if type(value) is str else ""

    @property
    def identity(self) -> dict[str, Any]:
        value = self.raw.get("userIdentity")
        return value if type(value) is dict else _EMPTY

    @property
    def identity_type(self) -> str:
        ident = self.raw.get("userIdentity")
        value = ident.get("type") if type(ident) is dict else None
        return value if type(value) is str else ""

    @property
    def account(self) -> str:
        value = self.raw.get("recipientAccountId")
        if type(value) is str and value:
            return value
        return text(self.identity.get("accountId"))

    @property
    def region(self) -> str:
        value = self.raw.get("awsRegion")
        return value if type(value) is str else ""

    @property
    def principal(self) -> str:
        """The caller's ARN; for an assumed role, the role session ARN. Falls back to the principal id."""
        ident = self.raw.get("userIdentity")
        if type(ident) is dict:
            for field in _PRINCIPAL_FIELDS:
                value = ident.get(field)
                if type(value) is str and value:
                    return value
        return ""

    @property
    def user_name(self) -> str:
        """The IAM user name, or the role or root name behind a session."""
        ident = self.identity
        name = text(ident.get("userName"))
        if name:
            return name
        issuer = mapping(mapping(ident.get("sessionContext")).get("sessionIssuer"))
        return text(issuer.get("userName")) or self.principal

    @property
    def source_ip(self) -> str:
        value = self.raw.get("sourceIPAddress")
        return value if type(value) is str else ""

    @property
    def user_agent(self) -> str:
        value = self.raw.get("userAgent")
        return value if type(value) is str else ""

    @property
    def error_code(self) -> str:
        value = self.raw.get("errorCode")
        return value if type(value) is str else ""

    @property
    def succeeded(self) -> bool:
        return not self.raw.get("errorCode")

    @property
    def request(self) -> dict[str, Any]:
        return mapping(self.raw.get("requestParameters"))

    @property
    def response(self) -> dict[str, Any]:
        return mapping(self.raw.get("responseElements"))

    @property
    def additional(self) -> dict[str, Any]:
        return mapping(self.raw.get("additionalEventData"))

    @property
    def event_type(self) -> str:
        value = self.raw.get("eventType")
        return value if type(value) is str else ""

    @property
    def mfa_authenticated(self) -> bool:
        attrs = mapping(mapping(self.identity.get("sessionContext")).get("attributes"))
        return text(attrs.get("mfaAuthenticated")).lower() == "true"

    def __repr__(self) -> str:
        return f"Event({self.source} {self.name} {self.event_time} {self.event_id})"
