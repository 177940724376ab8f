"""`trailwarden config`: the complete, documented configuration, and `--check` for a file."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

from consumers.destinations.build import build_all
from infra import aws
from pipeline.alerting import AlertPolicy
from pipeline.config import DEFAULTS_FILE, Config, ConfigError, enabled_rules
from pipeline.ocsf import archive_format
from pipeline.routing import Routing
from pipeline.rule import Rule, format_duration
from pipeline.rules import rule_pack
from pipeline.ruletest import validate_params

RULES_HEADER = """\

# ---------------------------------------------------------------------------------------------
# Rules. Each section below is commented out and shows the rule's defaults: uncomment a section
# (remove the leading "# " of its lines) to change it. Every rule takes
#   enabled = false                    to turn it off,
#   severity = "..."                   info, low, medium, high or critical: what its findings
#                                      carry, so whether [alerts] sends them to SNS,
#   dedup = "..."                      the period within which its findings for one key are one
#                                      finding (one alert): "30m", "6h", "1d", "0s",
#   [rules.<rule-id>.allowlist]        with principals, accounts and source_ips, like [allowlist],
#                                      for known automation that this rule alone should ignore,
# and its own parameters, listed with their defaults.
# ---------------------------------------------------------------------------------------------
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config",
        help="print the complete documented configuration, or check a configuration file",
        description="Print the built-in defaults and every rule's parameters as a documented TOML file "
        "(redirect it to trailwarden.toml and edit), or check a configuration file.",
    )
    parser.add_argument(
        "--check",
        nargs="?",
        const="",
        metavar="PATH",
        help="load the configuration (PATH, else $TRAILWARDEN_CONFIG or ./trailwarden.toml) "
        "and check every rule's section, the destinations and routes (reading their "
        "secrets); exit 2 with the reason if it is wrong",
    )
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check is not None:
        config = Config.load(args.check or None)
        return check(config, rule_pack(config), lambda: aws.from_args(args, local=False))
    sys.stdout.write(render(rule_pack(Config.from_dict())))
    return 0


def check(config: Config, rules: list[Rule], target: Callable[[], aws.Target] | None = None) -> int:
    """Validate every rule's parameters and allowlist (the pack includes the configuration's Sigma folders,
    so they are loaded and checked too), the archive format, the destinations and routes (their secrets read
    on `target`, real AWS unless told otherwise); ConfigError propagates."""
    from pipeline.sigma import bundled  # pySigma is imported only by the commands that load rules

    known = {r.id for r in rules} | {r.id for r in bundled().rules}  # bundled ones too, if [sigma] turns them off
    unknown = sorted(set(config.section("rules")) - known)
    if unknown:
        raise ConfigError(
            f"{config.where()}: [rules] names unknown rule(s) {unknown}; `trailwarden rules list` shows the ids"
        )
    for rule in rules:
        validate_params(rule, config)
    policy = AlertPolicy.from_config(config)
    enabled = enabled_rules(rules, config)
    alerted = sum(policy.alerts_rule(r.id, config.configured(r).severity) for r in enabled)
    archive = archive_format(config)
    routing = Routing.from_config(config)
    if routing.destinations:
        build_all(routing, target() if target is not None else aws.resolve(local=False))
    print(
        f"{config.where()}: ok ({len(enabled)} of {len(rules)} rules enabled; {alerted} of them alerted: "
        f"{policy.describe()}; archive format {archive}; {routing.describe()})"
    )
    return 0


def render(rules: Iterable[Rule]) -> str:
    """pipeline/defaults.toml, then a commented [rules.<id>] section per rule with its defaults."""
    parts = [DEFAULTS_FILE.read_text(encoding="utf-8").rstrip("\n") + "\n", RULES_HEADER]
    for rule in rules:
        parts.append(rule_section(rule))
    return "".join(parts)


def rule_section(rule: Rule) -> str:
    attack = ", ".join(rule.attack)
    lines = [
        f"# {rule.title} ({rule.severity}{', ATT&CK ' + attack if attack else ''}).",
        f"# `trailwarden rules show {rule.id}` describes it.",
        f"[rules.{_key(rule.id)}]",
        f"enabled = {toml_value(rule.enabled)}",
        f"severity = {toml_value(rule.severity)}",
        f"dedup = {toml_value(format_duration(rule.dedup))}",
    ]
    docs = param_docs(rule)
    for name, value in rule.params.items():
        if docs.get(name):
            lines.append(f"# {docs[name]}")
        # TOML has no null: a parameter without a default stays a comment even when uncommented.
        lines.append(f"# {_key(name)} = ...  (no default)" if value is None else f"{_key(name)} = {toml_value(value)}")
    return "\n" + "".join(f"# {line}\n" for line in lines)


def param_docs(rule: Rule) -> dict[str, str]:
    """One line per parameter, from the rule's `param_docs`."""
    return {str(k): " ".join(str(v).split()) for k, v in rule.param_docs.items()}


def _key(name: str) -> str:
    bare = name and all(c.isalnum() or c in "-_" for c in name) and name.isascii()
    return name if bare else json.dumps(name)


def toml_value(value: Any) -> str:
    """A TOML literal for a parameter default (strings, numbers, booleans, lists and tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid in TOML basic strings
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return "[" + ", ".join(toml_value(v) for v in items) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"no TOML form for {value!r}")
