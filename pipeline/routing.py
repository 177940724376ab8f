"""Where alerted findings go besides the SNS topic: named destinations (`[destinations.<name>]`) and the
routes that choose them (`[[routes]]`). Parsed and checked here, with no network: secrets are references
("env:NAME", "ssm:NAME", "secretsmanager:ID" or an ARN), read later by the deliverer
(consumers/destinations/secrets.py). docs/destinations.md describes every key.

A route matches a finding when every selector it sets matches: `min_severity`, `rules` (rule id patterns),
`tags` (ATT&CK technique or tactic ids; "T1098" takes its sub-techniques), `accounts`. A finding goes to the
destinations of every matching route; a finding no route matches goes to the default route's (the route
with `default = true`). A resolution or digest has the fields of its finding, so it takes the same way.
"""

from __future__ import annotations

import fnmatch
import math
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.attack import tactic
from pipeline.config import Config, ConfigError
from pipeline.finding import SEVERITIES

SECRET_PREFIXES = ("env:", "ssm:", "secretsmanager:", "arn:aws:secretsmanager:", "arn:aws:ssm:")
_COMMON = ("type", "rate_per_minute", "link")
# type -> (required keys, optional keys, keys that may hold a secret reference)
TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "slack": (("url",), (), ("url",)),
    "pagerduty": (("routing_key",), ("url",), ("routing_key",)),
    "webhook": (("url", "secret"), (), ("url", "secret")),
    "securityhub": ((), ("region", "account"), ()),
    "eventbridge": ((), ("bus", "region"), ()),
}
URL_KEYS = {"slack": ("url",), "pagerduty": ("url",), "webhook": ("url",)}
_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_ROUTE_KEYS = ("destinations", "min_severity", "rules", "tags", "accounts", "default")


def is_secret_ref(value: str) -> bool:
    return value.startswith(SECRET_PREFIXES)


def check_url(value: str, where: str) -> None:
    """An https:// URL with a host (http:// only to this machine, for local receivers); the message never
    repeats the value, which may be a secret."""
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        parts = None
    local = parts is not None and parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts is None or not parts.hostname or not (parts.scheme == "https" or local) or any(c.isspace() for c in value):
        raise ConfigError(
            f"{where} is not a valid webhook URL: it must be https://host/... (http:// only to 127.0.0.1 or localhost)"
        )


@dataclass(frozen=True)
class DestinationSpec:
    name: str
    type: str
    options: Mapping[str, Any]
    rate_per_minute: float = 0.0  # 0: no limit

    def where(self, key: str) -> str:
        return f"destinations.{self.name}.{key}"


@dataclass(frozen=True)
class Route:
    destinations: tuple[str, ...]
    min_severity: str = "info"
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    accounts: frozenset[str] = frozenset()
    default: bool = False

    def matches(self, finding: Mapping[str, Any]) -> bool:
        severity = str(finding.get("severity", ""))
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
        if rank < SEVERITIES.index(self.min_severity):
            return False
        if self.rules and not any(fnmatch.fnmatchcase(str(finding.get("rule_id", "")), p) for p in self.rules):
            return False
        if self.accounts and str(finding.get("account", "")) not in self.accounts:
            return False
        return not self.tags or bool(set(self.tags) & _tags(finding.get("attack")))


def _tags(attack: Any) -> set[str]:
    out: set[str] = set()
    for technique in attack if isinstance(attack, list | tuple) else []:
        technique = str(technique)
        out |= {technique, technique.split(".")[0]}
        found = tactic(technique)
        if found:
            out.add(found[0])
    return out


@dataclass(frozen=True)
class Routing:
    destinations: Mapping[str, DestinationSpec] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> Routing:
        """The [destinations.*] tables and [[routes]], checked; ConfigError names the key."""
        where = config.where()
        section = config.section("destinations")
        specs = {name: _destination(name, value, where) for name, value in section.items()}
        raw = config.data.get("routes", [])
        if not isinstance(raw, list):
            raise ConfigError(f"{where}: routes must be an array of tables: [[routes]]")
        routes = tuple(_route(i, value, specs, where) for i, value in enumerate(raw))
        if sum(r.default for r in routes) > 1:
            raise ConfigError(f"{where}: more than one [[routes]] has default = true; keep one")
        return cls(specs, routes)

    def targets(self, finding: Mapping[str, Any]) -> set[str]:
        """The names of the destinations this finding goes to."""
        chosen = {d for r in self.routes if not r.default and r.matches(finding) for d in r.destinations}
        if chosen:
            return chosen
        return {d for r in self.routes if r.default and r.matches(finding) for d in r.destinations}

    def describe(self) -> str:
        if not self.destinations:
            return "no destinations besides the topic and the archive"
        return (
            f"{len(self.destinations)} destination(s) ({', '.join(sorted(self.destinations))}), "
            f"{len(self.routes)} route(s)"
        )


def _destination(name: str, value: Any, where: str) -> DestinationSpec:
    at = f"{where}: [destinations.{name}]"
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{at}: a destination name is 1 to 40 letters, digits, - or _")
    if not isinstance(value, dict):
        raise ConfigError(f"{at} must be a table")
    kind = value.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{at} type = {kind!r} is not a destination type; use one of {', '.join(sorted(TYPES))}")
    required, optional, _ = TYPES[kind]
    unknown = sorted(set(value) - set(required) - set(optional) - set(_COMMON))
    if unknown:
        raise ConfigError(
            f"{at} has unknown key(s) {unknown}; a {kind} destination takes "
            f"{', '.join((*required, *optional, *_COMMON[1:]))}"
        )
    for key in required:
        if key not in value:
            raise ConfigError(f"{at} lacks {key}: a {kind} destination needs {', '.join(required)}")
    for key, item in value.items():
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise ConfigError(f"{at} {key} must be a string (or a number for rate_per_minute)")
        if key != "rate_per_minute" and (not isinstance(item, str) or not item.strip()):
            raise ConfigError(f"{at} {key} must be a non-empty string")
    rate = value.get("rate_per_minute", 0)
    if not isinstance(rate, int | float) or not math.isfinite(rate) or rate < 0:
        raise ConfigError(f"{at} rate_per_minute must be a number of 0 or more (0: no limit)")
    for key in URL_KEYS.get(kind, ()):
        if key in value and not is_secret_ref(value[key]):
            check_url(value[key], f"{where}: destinations.{name}.{key}")
    link = value.get("link")
    if link is not None and "{id}" not in link:
        raise ConfigError(f"{at} link must contain {{id}}, where the finding id goes")
    options = {k: v for k, v in value.items() if k not in ("type", "rate_per_minute")}
    return DestinationSpec(name, kind, options, float(rate))


def _route(index: int, value: Any, specs: Mapping[str, DestinationSpec], where: str) -> Route:
    at = f"{where}: routes[{index}]"
    if not isinstance(value, dict):
        raise ConfigError(f"{at} must be a table ([[routes]])")
    unknown = sorted(set(value) - set(_ROUTE_KEYS))
    if unknown:
        raise ConfigError(f"{at} has unknown key(s) {unknown}; a route takes {', '.join(_ROUTE_KEYS)}")
    names = _list(value.get("destinations"), f"{at}.destinations")
    if not names:
        raise ConfigError(f"{at}.destinations must name at least one destination")
    missing = [n for n in names if n not in specs]
    if missing:
        raise ConfigError(
            f"{at}.destinations names {missing}, not defined: add [destinations.{missing[0]}] "
            f"or use one of {sorted(specs) or 'none defined'}"
        )
    severity = value.get("min_severity", "info")
    if severity not in SEVERITIES:
        raise ConfigError(f"{at}.min_severity = {severity!r} is not a severity; use one of {', '.join(SEVERITIES)}")
    default = value.get("default", False)
    if not isinstance(default, bool):
        raise ConfigError(f"{at}.default must be true or false")
    return Route(
        tuple(names),
        severity,
        tuple(_list(value.get("rules", []), f"{at}.rules")),
        tuple(_list(value.get("tags", []), f"{at}.tags")),
        frozenset(_list(value.get("accounts", []), f"{at}.accounts")),
        default,
    )


def _list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of non-empty strings")
    return value
