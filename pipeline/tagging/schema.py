"""Tag schemas: the required tag keys of a resource type, the pattern each value must match and the
grace period, from the configuration (`[tags]`, or a rule's own section), checked when it is loaded.

The organisation-wide schema is `required` and `grace`; `types.<type>` gives a type its own
`required` and/or `grace` (what it leaves out comes from the organisation-wide one) or turns the type
off with `enabled = false`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import ConfigError
from pipeline.rule import Params, parse_duration

MAX_GRACE = 7 * 86400.0  # a watch lives 30 days: a grace of more than a week is not a grace
TYPE_KEYS = ("required", "grace", "enabled")
_CACHE_LIMIT = 256


@dataclass(frozen=True, slots=True, eq=False)
class Schema:
    """One resource type's required tags, in order, with their compiled patterns (None: any value)."""

    type: str
    keys: tuple[str, ...]
    sources: tuple[str, ...]
    patterns: tuple[re.Pattern[str] | None, ...]
    grace: float
    index: dict[str, int] = field(default_factory=dict)
    checked: tuple[tuple[int, re.Pattern[str]], ...] = ()  # (position, pattern) of the keys with a pattern

    def accepts(self, values: tuple[str | None, ...]) -> bool:
        """Every required tag present with a matching value (stage 2's hot path)."""
        if None in values:
            return False
        return all(pattern.fullmatch(values[i]) is not None for i, pattern in self.checked)  # type: ignore[arg-type]

    def problems(self, values: tuple[str | None, ...]) -> tuple[list[str], dict[str, str], list[str]]:
        """(missing keys, invalid key -> value, one line per problem)."""
        missing, invalid, lines = [], {}, []
        for key, source, pattern, value in zip(self.keys, self.sources, self.patterns, values, strict=True):
            if value is None:
                missing.append(key)
                lines.append(f"{key} missing")
            elif pattern is not None and pattern.fullmatch(value) is None:
                invalid[key] = value[:64]
                lines.append(f"{key}={value[:64]!r} does not match {source!r}")
        return missing, invalid, lines


def _compile(type_name: str, required: Mapping[str, str], grace: float) -> Schema:
    keys = tuple(required)
    patterns = tuple(re.compile(p) if p else None for p in required.values())
    return Schema(
        type_name,
        keys,
        tuple(required.values()),
        patterns,
        grace,
        {key: i for i, key in enumerate(keys)},
        tuple((i, p) for i, p in enumerate(patterns) if p is not None),
    )


_cache: dict[int, tuple[Params, dict[str, Schema | None]]] = {}


def schemas(p: Params, type_names: Iterable[str]) -> dict[str, Schema | None]:
    """Each type's schema under parameters `p` (None: the type is not watched). Compiled once per
    parameter set (the parameters are checked when the configuration is loaded)."""
    cached = _cache.get(id(p))
    if cached is not None and cached[0] is p:
        return cached[1]
    required, grace = p.get("required") or {}, parse_duration(p.get("grace", "15m"))
    types = p.get("types") or {}
    out: dict[str, Schema | None] = {}
    for name in type_names:
        own = types.get(name) or {}
        if own.get("enabled", True) is False:
            out[name] = None
            continue
        own_grace = own.get("grace")
        out[name] = _compile(
            name, own.get("required", required), grace if own_grace is None else parse_duration(own_grace)
        )
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[id(p)] = (p, out)
    return out


# --- checking the configuration -------------------------------------------------------------------


def check(p: Params, rule_id: str, type_names: Iterable[str]) -> None:
    """Raise ConfigError naming the key if `required`, `grace` or `types` is not a usable schema."""
    _required(p.get("required"), p.path(rule_id, "required"))
    _grace(p.get("grace"), p.path(rule_id, "grace"))
    types, where = p.get("types") or {}, p.path(rule_id, "types")
    known = list(type_names)
    if not isinstance(types, dict):
        raise ConfigError(f"{where} must be a table of resource types, e.g. [tags.types.s3-bucket]")
    for name, own in types.items():
        at = f"{where}.{name}"
        if name not in known:
            raise ConfigError(f"{at}: unknown resource type {name!r}; the types are {', '.join(known)}")
        if not isinstance(own, dict):
            raise ConfigError(f"{at} must be a table with {', '.join(TYPE_KEYS)}")
        unknown = set(own) - set(TYPE_KEYS)
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {sorted(unknown)}; a type takes {', '.join(TYPE_KEYS)}")
        if "required" in own:
            _required(own["required"], f"{at}.required")
        if "grace" in own:
            _grace(own["grace"], f"{at}.grace")
        if not isinstance(own.get("enabled", True), bool):
            raise ConfigError(f"{at}.enabled must be true or false")


def _required(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f'{where} must be a table of tag key = value pattern, e.g. {{ Owner = "" }}')
    for key, pattern in value.items():
        if not key or not isinstance(key, str):
            raise ConfigError(f"{where}: a tag key is a non-empty string")
        if not isinstance(pattern, str):
            raise ConfigError(
                f"{where}.{key} = {pattern!r} must be a string: a regular expression the whole "
                'value must match, or "" for any value'
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"{where}.{key}: {pattern!r} is not a valid regular expression ({exc}); write a "
                'Python regular expression the whole value must match, or "" for any value'
            ) from None


def _grace(value: Any, where: str) -> None:
    try:
        seconds = parse_duration(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds <= MAX_GRACE:
        raise ConfigError(f'{where}: {value!r} must be a duration above 0 and at most 7 days, e.g. "15m"')
