"""Configuration: one TOML file overlaid on documented defaults (see `trailwarden config`).

Lookup order: the path given with --config, else $TRAILWARDEN_CONFIG (`pipeline.settings`), else
./trailwarden.toml if it exists, else the built-in defaults alone.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pipeline.event import Event
from pipeline.finding import SEVERITIES
from pipeline.rule import Params, Rule, parse_duration
from pipeline.settings import Settings

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
AnyRule = TypeVar("AnyRule", bound=Rule)
# Keys every [rules.<id>] section takes besides the rule's own parameters.
RULE_KEYS = ("enabled", "allowlist", "severity", "dedup")


class ConfigError(Exception):
    """A configuration problem the user can fix; the message says where and how."""


@dataclass
class Allowlist:
    """Known automation whose matches are not findings: caller ARN patterns, accounts, source addresses."""

    principals: tuple[str, ...] = ()
    accounts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    _principal_re: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str) -> Allowlist:
        unknown = set(section) - {"principals", "accounts", "source_ips"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use principals, accounts, source_ips")
        principals = tuple(_strings(section.get("principals", []), f"{where}.principals"))
        accounts = frozenset(_strings(section.get("accounts", []), f"{where}.accounts"))
        networks = []
        for value in _strings(section.get("source_ips", []), f"{where}.source_ips"):
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise ConfigError(f"{where}.source_ips: {value!r} is not an IP address or CIDR block") from None
        regex = re.compile("|".join(fnmatch.translate(p) for p in principals)) if principals else None
        return cls(principals, accounts, tuple(networks), regex)

    def __bool__(self) -> bool:
        return bool(self.principals or self.accounts or self.networks)

    def permits(self, event: Event) -> bool:
        """True if the event comes from allowlisted automation."""
        if self.accounts and event.account in self.accounts:
            return True
        if self._principal_re is not None and self._principal_re.fullmatch(event.principal):
            return True
        if self.networks:
            try:
                addr = ipaddress.ip_address(event.source_ip)
            except ValueError:
                return False
            return any(addr in net for net in self.networks)
        return False

    def merged(self, other: Allowlist) -> Allowlist:
        principals = self.principals + other.principals
        regex = re.compile("|".join(fnmatch.translate(p) for p in principals)) if principals else None
        return Allowlist(principals, self.accounts | other.accounts, self.networks + other.networks, regex)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None


@dataclass
class Config:
    data: dict[str, Any]
    path: Path | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Config:
        data = _read_toml(DEFAULTS_FILE)
        chosen: Path | None = None
        if path is not None:
            chosen = Path(path)
        elif (from_env := Settings().config) is not None:
            chosen = from_env
        elif Path("trailwarden.toml").is_file():
            chosen = Path("trailwarden.toml")
        if chosen is not None:
            data = _merge(data, _read_toml(chosen))
        config = cls(data, chosen)
        config.validate_sections()
        return config

    @classmethod
    def from_dict(cls, overrides: dict[str, Any] | None = None) -> Config:
        config = cls(_merge(_read_toml(DEFAULTS_FILE), overrides or {}))
        config.validate_sections()
        return config

    def where(self) -> str:
        return str(self.path) if self.path else "built-in defaults"

    def validate_sections(self) -> None:
        known = set(_read_toml(DEFAULTS_FILE)) | {"rules", "routes"}
        unknown = set(self.data) - known
        if unknown:
            raise ConfigError(f"{self.where()}: unknown section(s) {sorted(unknown)}; known: {sorted(known)}")

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where()}: [{name}] must be a table")
        return value

    def _rule_section(self, rule_id: str) -> dict[str, Any]:
        value = self.section("rules").get(rule_id, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where()}: [rules.{rule_id}] must be a table")
        return value

    def enabled(self, rule: Rule) -> bool:
        section = self._rule_section(rule.id)
        value = section.get("enabled", rule.enabled)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where()}: rules.{rule.id}.enabled must be true or false")
        return value

    def params(self, rule: Rule, overrides: dict[str, Any] | None = None) -> Params:
        """The rule's declared defaults overlaid with its shared section (`Rule.shared`), if any, then
        with its [rules.<id>] section; types are checked."""
        section = {k: v for k, v in self._rule_section(rule.id).items() if k not in RULE_KEYS}
        section.update(overrides or {})
        unknown = set(section) - set(rule.params)
        if unknown:
            raise ConfigError(
                f"{self.where()}: [rules.{rule.id}] has unknown parameter(s) {sorted(unknown)}; "
                f"the rule takes {sorted(rule.params) or 'no parameters'}, and {', '.join(RULE_KEYS)}"
            )
        shared = {k: v for k, v in self.shared(rule).items() if k not in section}
        for key, value in (*shared.items(), *section.items()):
            default = rule.params[key]
            if default is not None and not _same_kind(default, value):
                where = f"{rule.shared}.{key}" if key in shared else f"rules.{rule.id}.{key}"
                raise ConfigError(
                    f"{self.where()}: {where} = {value!r} should be a {type(default).__name__} like the default "
                    f"{default!r}"
                )
        params = Params({**rule.params, **shared, **section})
        if shared:
            params.origins = {key: rule.shared for key in shared}
        if rule.validate is not None:
            try:
                rule.validate(params)
            except ConfigError as exc:
                raise ConfigError(f"{self.where()}: {exc}") from None
        return params

    def shared(self, rule: Rule) -> dict[str, Any]:
        """The shared section that sets `rule`'s parameters (`Rule.shared`; {} when it has none). A key
        there that the rule does not take is an error naming the section."""
        if not rule.shared:
            return {}
        section = self.section(rule.shared)
        unknown = set(section) - set(rule.params)
        if unknown:
            raise ConfigError(
                f"{self.where()}: [{rule.shared}] has unknown key(s) {sorted(unknown)}; "
                f"it takes {', '.join(sorted(rule.params))}"
            )
        return section

    def configured(self, rule: AnyRule) -> AnyRule:
        """The rule with the severity and dedup period its [rules.<id>] section sets (the rule itself when
        it sets neither). Findings take both from the rule they come from."""
        section = self._rule_section(rule.id)
        changes: dict[str, Any] = {}
        if "severity" in section:
            value = section["severity"]
            if value not in SEVERITIES:
                raise ConfigError(
                    f"{self.where()}: rules.{rule.id}.severity = {value!r} is not a severity; "
                    f"use one of {', '.join(repr(s) for s in SEVERITIES)}"
                )
            changes["severity"] = value
        if "dedup" in section:
            value = section["dedup"]
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                raise ConfigError(f"{self.where()}: rules.{rule.id}.dedup: {exc}") from None
            if not math.isfinite(seconds) or seconds < 0:
                raise ConfigError(
                    f"{self.where()}: rules.{rule.id}.dedup = {value!r} must be a duration of 0 or "
                    f'more, e.g. "30m", "6h" or "1d"'
                )
            changes["dedup"] = seconds
        return dataclasses.replace(rule, **changes) if changes else rule

    def allowlist(self, rule: Rule) -> Allowlist:
        """The global allowlist merged with the rule's own."""
        common = Allowlist.from_section(self.section("allowlist"), "[allowlist]")
        own = self._rule_section(rule.id).get("allowlist", {})
        if not isinstance(own, dict):
            raise ConfigError(f"{self.where()}: [rules.{rule.id}.allowlist] must be a table")
        return common.merged(Allowlist.from_section(own, f"[rules.{rule.id}.allowlist]"))


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float) and isinstance(value, int | float):
        return True
    return isinstance(value, type(default))


def enabled_rules(rules: Iterable[Rule], config: Config, only: Iterable[str] | None = None) -> list[Rule]:
    """The rules the configuration enables, optionally narrowed to ids in `only` (unknown ids are errors)."""
    rules = list(rules)
    if only:
        wanted = set(only)
        unknown = wanted - {r.id for r in rules}
        if unknown:
            raise ConfigError(f"unknown rule id(s) {sorted(unknown)}; `trailwarden rules list` shows them")
        return [r for r in rules if r.id in wanted]
    return [r for r in rules if config.enabled(r)]
