"""Which findings are alerted (the SNS topic) and which are only archived (Firehose, so S3 and Athena):
the `[alerts]` section of the configuration.

By default findings of medium severity and above are alerted and every finding is archived; findings
of Sigma rules (ids `sigma-*`) are alerted from `sigma_min_severity` (default high): SigmaHQ writes its
levels for triage in a SIEM, and on a benign organization its medium rules fire on routine changes (the
measurement is in docs/rules.md). Rules named in `rules` (or by a preset) are alerted whatever their
severity; an alerted finding is always archived too. Every way findings leave the engine (the live
processors, replay, backfill, scan) asks the same `AlertPolicy`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.config import Config, ConfigError
from pipeline.finding import SEVERITIES, Finding
from pipeline.rule import Rule, parse_duration

# Named sets of rules alerted whatever their severity (rule ids, shell-style wildcards).
PRESETS: dict[str, tuple[str, ...]] = {
    # The CIS AWS Foundations monitoring controls 4.1 to 4.15, for teams that must alarm on each of them.
    "cis": ("cis-*", "console-login-without-mfa"),
}
_KEYS = ("min_severity", "sigma_min_severity", "archive_min_severity", "rules", "presets", "digest_interval")
SIGMA_PREFIX = "sigma-"  # the ids of rules compiled from Sigma files (pipeline.sigma.load)
DEFAULT_DIGEST_INTERVAL = 900.0
ALERTED, ARCHIVED, DROPPED = "alerted", "archived only", "neither alerted nor archived"


def rank(severity: str) -> int:
    """The place of a severity on the ladder (info 0 ... critical 4); an unknown one ranks highest."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


@dataclass(frozen=True)
class AlertPolicy:
    min_severity: str = "medium"
    sigma_min_severity: str = "high"
    archive_min_severity: str = "info"
    rules: tuple[str, ...] = ()
    presets: tuple[str, ...] = ()
    digest_interval: float = DEFAULT_DIGEST_INTERVAL  # seconds between digests of one id (0: no digests)

    @classmethod
    def from_config(cls, config: Config) -> AlertPolicy:
        """The [alerts] section, checked; ConfigError names the key and what it takes."""
        section = config.section("alerts")
        where = f"{config.where()}: [alerts]"
        unknown = sorted(set(section) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {unknown}; it takes {', '.join(_KEYS)}")
        values: dict[str, Any] = {}
        for key in ("min_severity", "sigma_min_severity", "archive_min_severity"):
            value = section.get(key, getattr(cls, key))
            if value not in SEVERITIES:
                raise ConfigError(
                    f"{where} {key} = {value!r} is not a severity; use one of {', '.join(repr(s) for s in SEVERITIES)}"
                )
            values[key] = value
        for key in ("rules", "presets"):
            value = section.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{where} {key} must be a list of non-empty strings, got {value!r}")
            values[key] = tuple(value)
        interval = section.get("digest_interval", DEFAULT_DIGEST_INTERVAL)
        try:
            values["digest_interval"] = parse_duration(interval)
        except (TypeError, ValueError):
            values["digest_interval"] = -1.0
        if not 0 <= values["digest_interval"] < float("inf"):
            raise ConfigError(
                f'{where} digest_interval = {interval!r} is not a duration of 0 or more; use e.g. "15m" '
                '("0" turns digests off)'
            )
        bad = [p for p in values["presets"] if p not in PRESETS]
        if bad:
            raise ConfigError(f"{where} presets: unknown preset(s) {bad}; known: {sorted(PRESETS)}")
        return cls(**values)

    @property
    def patterns(self) -> tuple[str, ...]:
        """Rule id patterns alerted whatever their severity: `rules` and those of the presets."""
        return self.rules + tuple(p for name in self.presets for p in PRESETS[name])

    def alerts_rule(self, rule_id: str, severity: str) -> bool:
        """Whether findings of this rule at this severity are alerted."""
        floor = self.sigma_min_severity if rule_id.startswith(SIGMA_PREFIX) else self.min_severity
        return rank(severity) >= rank(floor) or any(fnmatch.fnmatchcase(rule_id, p) for p in self.patterns)

    def alerts(self, finding: Finding) -> bool:
        """Whether `finding` is alerted. Its digests and resolution carry its rule and severity, so each is
        alerted exactly when the finding it updates is."""
        return self.alerts_rule(finding.rule_id, finding.severity)

    def archives(self, finding: Finding) -> bool:
        return self.route(finding.rule_id, finding.severity) != DROPPED

    def route(self, rule_id: str, severity: str) -> str:
        """Where findings of this rule at this severity go: ALERTED (the topic, and the archive too),
        ARCHIVED (only the archive) or DROPPED (neither: below both thresholds)."""
        if self.alerts_rule(rule_id, severity):
            return ALERTED
        return ARCHIVED if rank(severity) >= rank(self.archive_min_severity) else DROPPED

    def for_sink(self, name: str) -> Any:
        """What a sink named `name` is given: the SNS topic the alerts, Firehose and local files what is
        archived; None for a sink that takes every finding."""
        if name == "sns":
            return self.alerts
        if name in ("firehose", "file"):
            return self.archives
        return None

    def describe(self) -> str:
        """In words, e.g. "medium and above, and rules cis-*, console-login-without-mfa"."""
        text = "every severity" if self.min_severity == SEVERITIES[0] else f"{self.min_severity} and above"
        if self.sigma_min_severity != self.min_severity:
            text += f" (Sigma rules {self.sigma_min_severity} and above)"
        if self.patterns:
            text += ", and rules " + ", ".join(self.patterns)
        return text

    def split(self, findings: Iterable[Finding]) -> tuple[list[Finding], list[Finding]]:
        """(alerted, archived only) of `findings`; findings the policy neither alerts nor archives are left out."""
        alerted: list[Finding] = []
        archived: list[Finding] = []
        for f in findings:
            if self.alerts(f):
                alerted.append(f)
            elif self.archives(f):
                archived.append(f)
        return alerted, archived


def rule_routes(rules: Iterable[Rule], config: Config) -> dict[str, str]:
    """Where each rule's findings go under the configuration's policy, with the rule's configured severity."""
    policy = AlertPolicy.from_config(config)
    return {r.id: policy.route(r.id, config.configured(r).severity) for r in rules}
