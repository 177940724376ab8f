"""Keyed facts: what stage 1 (the router) extracts from an event for one stateful rule.

A fact carries the rule id, the entity key it is routed by, the CloudTrail eventID (so stage 2
applies it at most once), the event time, the step it plays in the rule (start, satisfy, first,
then, ...), only the fields its rule declares, and the few fields a finding shows (account,
region, principal, source address, user agent). On the keyed Kinesis stream a fact is one compact
JSON record whose partition key is derived from the entity key.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

# Kinesis partition keys are at most 256 Unicode characters.
MAX_PARTITION_KEY = 256
# Attacker-controlled text is clipped before it travels or is kept in state.
MAX_TEXT = 1024
MAX_KEY = 1024

_intern = sys.intern


def clip(value: str, limit: int = MAX_TEXT) -> str:
    return value if len(value) <= limit else value[:limit]


def partition_key(key: str) -> str:
    """The Kinesis partition key of an entity key: the key itself, or a digest when it is too long."""
    if len(key) <= MAX_PARTITION_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def key_hash(key: str) -> int:
    """Kinesis's hash of the partition key for `key` (the 128-bit MD5 that hash key ranges divide)."""
    return int(hashlib.md5(partition_key(key).encode("utf-8", "replace"), usedforsecurity=False).hexdigest(), 16)


class Step(NamedTuple):
    """What a stateful rule's extractor returns for an event: the entity key, the step the event
    plays, and the declared fields it carries (for threshold-distinct and first-seen rules,
    `value` is the value counted or remembered)."""

    key: str
    step: str = ""
    value: str = ""
    fields: Mapping[str, Any] | None = None


def _clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, size-bounded copy of a declared field value."""
    if value is None or type(value) in (bool, int, float):
        return value
    if type(value) is str:
        return clip(value)
    if depth < 4 and isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in value[:256]]
    if depth < 4 and isinstance(value, dict):
        return {clip(str(k), 256): _clean(v, depth + 1) for k, v in list(value.items())[:256]}
    return None


class Fact:
    """One keyed fact. Strings that repeat across many facts are interned to keep state small. `nth` is
    its place among the facts one event gives one key of one rule (0 for the first, and nearly always):
    the names of one GetParameters call are several facts of one event, and stage 2 applies each once."""

    __slots__ = (
        "account",
        "event_id",
        "fields",
        "key",
        "nth",
        "principal",
        "region",
        "rule",
        "source_ip",
        "step",
        "time",
        "user_agent",
        "value",
    )

    def __init__(
        self,
        rule: str,
        key: str,
        event_id: str,
        time: float,
        step: str = "",
        value: str = "",
        fields: dict[str, Any] | None = None,
        account: str = "",
        region: str = "",
        principal: str = "",
        source_ip: str = "",
        user_agent: str = "",
        nth: int = 0,
    ) -> None:
        self.rule = _intern(rule)
        self.key = clip(key, MAX_KEY)
        self.event_id = event_id
        self.time = time
        self.step = _intern(str(step))  # a StepName is a str subclass, which intern() refuses
        self.value = clip(value)
        self.fields = fields or None
        self.account = _intern(account)
        self.region = _intern(region)
        self.principal = _intern(clip(principal))
        self.source_ip = _intern(clip(source_ip, 64))
        self.user_agent = _intern(clip(user_agent))
        self.nth = nth

    @staticmethod
    def meta_of(
        event_id: str, account: str, region: str, principal: str, source_ip: str, user_agent: str
    ) -> tuple[str, ...]:
        """An event's fields as every fact of it holds them (clipped and interned), for `of_event`."""
        return (
            event_id,
            _intern(account),
            _intern(region),
            _intern(clip(principal)),
            _intern(clip(source_ip, 64)),
            _intern(clip(user_agent)),
        )

    @classmethod
    def of_event(
        cls,
        rule: str,
        key: str,
        time: float,
        step: str,
        value: str,
        fields: dict[str, Any] | None,
        meta: tuple[str, ...],
    ) -> Fact:
        """The fact stage 1 extracts: as `Fact(...)`, with the event's fields from `meta_of`, prepared once
        for all the facts of one event."""
        fact = cls.__new__(cls)
        fact.rule = _intern(rule)
        fact.key = clip(key, MAX_KEY)
        fact.time = time
        fact.step = _intern(str(step))
        fact.value = clip(value)
        fact.fields = fields or None
        fact.event_id, fact.account, fact.region, fact.principal, fact.source_ip, fact.user_agent = meta
        fact.nth = 0
        return fact

    @property
    def partition_key(self) -> str:
        return partition_key(self.key)

    @property
    def meta(self) -> tuple[str, str, str, str, str, str]:
        """What a finding needs to name where the fact came from, as one compact tuple."""
        return (self.event_id, self.account, self.region, self.principal, self.source_ip, self.user_agent)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"r": self.rule, "k": self.key, "i": self.event_id, "t": self.time}
        for name, value in (
            ("s", self.step),
            ("v", self.value),
            ("f", self.fields),
            ("a", self.account),
            ("g", self.region),
            ("p", self.principal),
            ("ip", self.source_ip),
            ("ua", self.user_agent),
            ("n", self.nth),
        ):
            if value:
                out[name] = value
        return out

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fact:
        """A fact from its dict form; raises ValueError on a malformed record."""

        def s(name: str) -> str:
            value = d.get(name, "")
            if type(value) is not str:
                raise ValueError(f"fact field {name!r} is not a string")
            return value

        t: Any = d.get("t")
        if type(t) not in (int, float):
            raise ValueError("fact time is not a number")
        fields = d.get("f")
        if fields is not None and type(fields) is not dict:
            raise ValueError("fact fields are not an object")
        if not s("r") or not s("k"):
            raise ValueError("fact has no rule or key")
        nth: Any = d.get("n", 0)
        if type(nth) is not int or not 0 <= nth < 1 << 16:
            raise ValueError("fact's place among its event's facts is not a small whole number")
        return cls(
            s("r"), s("k"), s("i"), float(t), s("s"), s("v"), fields, s("a"), s("g"), s("p"), s("ip"), s("ua"), nth
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Fact:
        """A fact from a keyed-stream record; raises ValueError if it is not one."""
        try:
            d = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"fact is not JSON: {exc}") from None
        if type(d) is not dict:
            raise ValueError("fact is not a JSON object")
        return cls.from_dict(d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fact) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.rule, self.key, self.event_id, self.step, self.nth))

    def __repr__(self) -> str:
        return f"Fact({self.rule} {self.key} {self.step or '-'} {self.time} {self.event_id})"


def clean_fields(fields: Mapping[str, Any] | None, declared: frozenset[str]) -> dict[str, Any] | None:
    """Only the declared fields, JSON-safe and bounded."""
    if not fields:
        return None
    out = {k: _clean(v) for k, v in fields.items() if k in declared}
    return out or None
