"""Shared helpers of the stateful tests: a fresh keyed state for the built-in rules, and comparable findings."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.config import Config
from pipeline.finding import Finding
from pipeline.rules import builtin_rules
from pipeline.stateful.kinds import StatefulRule
from pipeline.stateful.state import KeyedState
from pipeline.stateful.synthetic import FAST

LATENESS = 120.0


def stateful_rules() -> list[StatefulRule]:
    return [r for r in builtin_rules() if isinstance(r, StatefulRule)]


def fresh(lateness: float = LATENESS, idle_after: float = 10.0) -> KeyedState:
    config = Config.from_dict({"engine": {"allowed_lateness": lateness, "idle_after": idle_after}, "rules": FAST})
    return KeyedState.for_rules(stateful_rules(), config)


def signature(findings: Iterable[Finding]) -> list[tuple]:
    """What must match between two runs (detected_at is wall-clock time and may differ)."""
    return [(f.id, f.rule_id, f.dedup_key, f.event_ids, f.event_time, f.summary) for f in findings]


def run(state: KeyedState, facts: Iterable) -> list[Finding]:
    out: list[Finding] = []
    for fact in facts:
        out.extend(state.add([fact]))
    out.extend(state.flush())
    return out
