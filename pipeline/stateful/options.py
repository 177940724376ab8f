"""Typed options of the stateful rule kinds, and how declared options become typed values.

A rule declares an option as a value (`window="10m"`, `threshold=10`) or as the name of one of its
parameters (`window="window"`), so configuration can change it. Each kind's `Options` is a frozen
dataclass whose durations (seconds) and counts are marked with `duration()` and `count()`; a bad
value raises ConfigError naming the rule and the key, at import for a declared value and when the
configuration is loaded for a parameter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pipeline.config import ConfigError
from pipeline.rule import Params, parse_duration

_PARSE = "parse"

OptionsT = TypeVar("OptionsT", bound="KindOptions")


class KindOptions:
    """Base of each kind's `Options` dataclass (frozen, slotted)."""

    __slots__ = ()


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _seconds(value: Any, where: str, zero: bool) -> float:
    try:
        seconds = parse_duration(value)
    except (TypeError, ValueError):
        raise ConfigError(f'{where}: {_shown(value)} is not a duration; use e.g. "10m"') from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        raise ConfigError(
            f'{where}: {_shown(value)} must be a duration {"of 0 or more" if zero else "above 0"}; use e.g. "10m"'
        )
    return seconds


def _positive_seconds(value: Any, where: str) -> float:
    return _seconds(value, where, zero=False)


def _seconds_or_zero(value: Any, where: str) -> float:
    return _seconds(value, where, zero=True)


def _count(value: Any, where: str) -> int:
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if (
        isinstance(number, bool)
        or not isinstance(number, int | float)
        or not math.isfinite(number)
        or number != int(number)
    ):
        raise ConfigError(f"{where}: {_shown(value)} is not a whole number; use e.g. 10")
    if number < 1:
        raise ConfigError(f"{where}: {_shown(value)} must be 1 or more")
    return int(number)


def duration(default: float | Any | None = dataclasses.MISSING, *, zero: bool = False) -> Any:
    """A field holding seconds, declared as a duration ("10m", 600) or a parameter name; `zero` allows 0."""
    return dataclasses.field(default=default, metadata={_PARSE: _seconds_or_zero if zero else _positive_seconds})


def count(default: int | Any = dataclasses.MISSING) -> Any:
    """A field holding a whole number of 1 or more, declared as a number or a parameter name."""
    return dataclasses.field(default=default, metadata={_PARSE: _count})


def _parser(cls: type[KindOptions], name: str) -> Callable[[Any, str], Any] | None:
    return next(f.metadata.get(_PARSE) for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]


def from_declaration(
    cls: type[OptionsT], rule_id: str, params: Mapping[str, Any], declared: Mapping[str, Any]
) -> tuple[OptionsT, dict[str, str]]:
    """The options a rule declares, resolved against its default parameters, and the parameter each
    option was given by name (option -> parameter). None leaves an option at its default."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        spec = declared.get(f.name)
        if spec is None:
            continue
        parse = f.metadata.get(_PARSE)
        if parse is None:
            values[f.name] = spec
        elif isinstance(spec, str) and spec in params:
            sources[f.name] = spec
            values[f.name] = parse(params[spec], f"rules.{rule_id}.{spec}")
        else:
            values[f.name] = parse(spec, f"rule {rule_id}: {f.name}")
    unknown = set(declared) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if unknown:
        raise TypeError(f"rule {rule_id}: unknown option(s) {sorted(unknown)}")
    return cls(**values), sources


def with_params(options: OptionsT, sources: Mapping[str, str], rule_id: str, params: Mapping[str, Any]) -> OptionsT:
    """`options` with the values of the parameters that set them (ConfigError on a bad one)."""
    if not sources:
        return options
    changes = {}
    for name, param in sources.items():
        parse = _parser(type(options), name)
        assert parse is not None  # noqa: S101 (narrows the type: `sources` names only fields that from_declaration parsed)
        where = params.path(rule_id, param) if isinstance(params, Params) else f"rules.{rule_id}.{param}"
        changes[name] = parse(params.get(param), where)
    return dataclasses.replace(options, **changes)  # type: ignore[type-var]
