"""`KeyedState`: the stage-2 state of one shard: each rule's keyed state, event-time timers, a watermark.

Facts wait in a buffer until the watermark (largest event time seen minus the allowed lateness)
passes them; they are then applied in event-time order, interleaved with the timers that fall due,
so input that arrives out of order within the lateness gives exactly the findings of in-order
input. A fact that arrives behind the watermark is applied at once and counted as late. At the
end of finite input, `flush()` moves the watermark to the last event time seen, never beyond.

Live mode calls `tick(now)` with the wall clock: when no fact has arrived for `idle_after`
seconds, the watermark advances with the time elapsed since the last arrival, so "still untagged
after N minutes" fires even if nothing else happens on the shard.

Every fact is applied at most once per (rule, key, eventID, step): its 64-bit digest is remembered
until the fact's time plus the rule's state TTL falls behind the watermark (in a compact set,
`SeenIds`); a fact that old is dropped as expired anyway. Each rule's state lives for its TTL after a
key's last fact; a sweep per rule (every eighth of its TTL in event time) evicts expired keys and
counts them.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Config
from pipeline.engine import note_rule_error
from pipeline.finding import Finding
from pipeline.rule import Params, parse_duration
from pipeline.stateful.facts import Fact
from pipeline.stateful.logic import KindLogic
from pipeline.stateful.rule import StatefulRule
from pipeline.stateful.seen import SeenIds
from pipeline.stateful.steps import STEP_RANK

log = logging.getLogger(__name__)

SEEN_BUCKET = 3600.0
DEFAULT_LATENESS = "2m"
DEFAULT_IDLE_AFTER = "10s"
# A fact stamped further than this ahead of the wall clock (live mode) is dropped as implausible.
MAX_FUTURE = 900.0


@dataclass
class StateStats:
    facts: int = 0
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    expired: int = 0
    future: int = 0
    unknown_rule: int = 0
    findings: Counter[str] = field(default_factory=Counter)
    evictions: Counter[str] = field(default_factory=Counter)
    rule_errors: Counter[str] = field(default_factory=Counter)
    last_errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": self.facts,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "late": self.late,
            "expired": self.expired,
            "future": self.future,
            "unknown_rule": self.unknown_rule,
            "findings": dict(self.findings),
            "evictions": dict(self.evictions),
            "rule_errors": dict(self.rule_errors),
        }


def seen_digest(fact: Fact) -> int:
    """A stable 64-bit digest of what makes a fact unique (stable across processes, unlike hash()). A
    fact's place among its event's facts for the same key counts when it is not the first, so the first
    (nearly every fact) keeps the digest snapshots of earlier releases hold."""
    unique = f"{fact.rule}\x1f{fact.key}\x1f{fact.event_id}\x1f{fact.step}"
    if fact.nth:
        unique += f"\x1f{fact.nth}"
    return int.from_bytes(
        hashlib.blake2b(unique.encode("utf-8", "replace"), digest_size=8).digest(), "little", signed=True
    )


class _Out:
    """Collects what rule logic does while one fact or timer is processed."""

    __slots__ = ("findings", "rule_id", "state")

    def __init__(self, state: KeyedState) -> None:
        self.state = state
        self.findings: list[Finding] = []
        self.rule_id = ""

    def timer(self, deadline: float, key: str) -> None:
        heapq.heappush(self.state.timers, (deadline, self.rule_id, key))

    def emit(self, finding: Finding) -> None:
        self.state.stats.findings[finding.rule_id] += 1
        self.findings.append(finding)


def lateness_from(config: Config) -> tuple[float, float]:
    """(allowed lateness, idle_after) in seconds from the [engine] section."""
    engine = config.section("engine")
    return (
        parse_duration(engine.get("allowed_lateness", DEFAULT_LATENESS)),
        parse_duration(engine.get("idle_after", DEFAULT_IDLE_AFTER)),
    )


class KeyedState:
    """Per-shard keyed state for a set of stateful rules (see the module docstring)."""

    def __init__(
        self, rules: Iterable[tuple[StatefulRule, Params]], *, lateness: float = 120.0, idle_after: float = 10.0
    ) -> None:
        self.logics: dict[str, KindLogic[Any, Any]] = {rule.id: rule.logic(params) for rule, params in rules}
        self.lateness = float(lateness)
        self.idle_after = float(idle_after)
        self.states: dict[str, dict[str, Any]] = {rid: {} for rid in self.logics}
        self.pending: list[tuple[float, int, str, str, str, int, Fact]] = []
        self.timers: list[tuple[float, str, str]] = []
        self.max_time = -math.inf
        self.watermark = -math.inf
        self.next_sweep: dict[str, float] = {}
        self.seen = SeenIds()
        self.seen_buckets: dict[int, array[int]] = {}
        self.stats = StateStats()
        self._seq = 0
        self._arrival: tuple[float, float] | None = None  # (wall clock, max event time) at the last arrival
        # Set by a driver that knows more than this shard (replay): the watermark then moves only by drive_to().
        self.driven = False
        self._next_expiry = -math.inf  # watermark at which the next sweep or seen-id bucket is due

    @classmethod
    def for_rules(
        cls,
        rules: Iterable[StatefulRule],
        config: Config | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> KeyedState:
        """Rules bound to configuration, the way both stages bind them."""
        config = config or Config.from_dict()
        overrides = overrides or {}
        lateness, idle_after = lateness_from(config)
        return cls(
            [(config.configured(r), config.params(r, overrides.get(r.id))) for r in rules],
            lateness=lateness,
            idle_after=idle_after,
        )

    # --- input ----------------------------------------------------------------------------------

    def add(self, facts: Iterable[Fact], now: float | None = None) -> list[Finding]:
        """Take facts (from the keyed stream or an in-process `FactExtractor`); findings now due."""
        out = _Out(self)
        for fact in facts:
            self._take(fact, now, out)
        if now is not None:
            self._arrival = (now, self.max_time)
        self._run_until(self._own_watermark(), out)
        return out.findings

    def drive_to(self, watermark: float) -> list[Finding]:
        """Move a driven state's watermark to `watermark`, told by a driver that has seen every source of
        this shard's facts (possibly past this shard's own largest fact time): apply the facts and fire
        the timers due up to it."""
        out = _Out(self)
        if self.max_time > -math.inf:
            self._run_until(watermark, out)
        return out.findings

    def _own_watermark(self) -> float:
        return self.watermark if self.driven else self.max_time - self.lateness

    def observe(self, event_time: float) -> list[Finding]:
        """Event time has reached `event_time` (an event with no fact, in-process): findings now due."""
        if event_time <= self.max_time:
            return []  # nothing can fall due before event time moves on
        self.max_time = event_time
        out = _Out(self)
        self._run_until(self._own_watermark(), out)
        return out.findings

    def tick(self, now: float) -> list[Finding]:
        """Live mode: advance the watermark with the wall clock while no facts arrive."""
        if self._arrival is None:
            self._arrival = (now, self.max_time)
            return []
        wall, base = self._arrival
        idle = now - wall
        out = _Out(self)
        if idle >= self.idle_after and base > -math.inf and not self.driven:
            self._run_until(base + idle - self.lateness, out)
        return out.findings

    def flush(self) -> list[Finding]:
        """End of finite input: apply every buffered fact and fire timers up to the last event time seen."""
        out = _Out(self)
        self._run_until(self.max_time, out)
        return out.findings

    def _take(self, fact: Fact, now: float | None, out: _Out) -> None:
        self.stats.facts += 1
        logic = self.logics.get(fact.rule)
        if logic is None:
            self.stats.unknown_rule += 1
            return
        if now is not None and fact.time > now + MAX_FUTURE:
            self.stats.future += 1
            return
        expiry = fact.time + logic.ttl
        if expiry < self.watermark:
            self.stats.expired += 1
            return
        if fact.event_id:
            digest = seen_digest(fact)
            if digest in self.seen:
                self.stats.duplicates += 1
                return
            self.seen.add(digest)
            bucket = int(expiry // SEEN_BUCKET)
            arr = self.seen_buckets.get(bucket)
            if arr is None:
                arr = self.seen_buckets[bucket] = array("q")
                self._next_expiry = min(self._next_expiry, (bucket + 1) * SEEN_BUCKET)
            arr.append(digest)
        if fact.time > self.max_time:
            self.max_time = fact.time
        if fact.time <= self.watermark:
            self.stats.late += 1
            self._apply(fact, logic, out)
            return
        self._seq += 1
        heapq.heappush(
            self.pending, (fact.time, STEP_RANK.get(fact.step, 1), fact.rule, fact.key, fact.event_id, self._seq, fact)
        )

    # --- time -----------------------------------------------------------------------------------

    def _run_until(self, target: float, out: _Out) -> None:
        """Apply due facts and fire due timers in event-time order up to `target`, which becomes the
        watermark (it never moves back)."""
        pending, timers = self.pending, self.timers
        target = max(target, self.watermark)
        while True:
            fact_due = pending and pending[0][0] <= target
            timer_due = timers and timers[0][0] <= target
            if fact_due and (not timer_due or pending[0][0] <= timers[0][0]):
                fact = heapq.heappop(pending)[6]
                self._apply(fact, self.logics[fact.rule], out)
            elif timer_due:
                deadline, rule_id, key = heapq.heappop(timers)
                self._fire(rule_id, key, deadline, out)
            else:
                break
        if target > self.watermark:
            self.watermark = target
            self._expire()

    def _apply(self, fact: Fact, logic: KindLogic[Any, Any], out: _Out) -> None:
        states = self.states[fact.rule]
        key = fact.key
        state = states.get(key)
        if state is not None and fact.time - state.last > logic.ttl:
            self.stats.evictions[fact.rule] += 1
            state = None
        out.rule_id = fact.rule
        try:
            new = logic.apply(state, fact, out)
        except Exception as exc:  # a rule bug must not stop the shard
            self._error(fact.rule, repr(fact), exc)
            return
        self.stats.applied += 1
        if new is None:
            states.pop(key, None)
        elif new is not state:
            states[key] = new

    def _fire(self, rule_id: str, key: str, deadline: float, out: _Out) -> None:
        state = self.states.get(rule_id, {}).get(key)
        if state is None:
            return
        out.rule_id = rule_id
        try:
            new = self.logics[rule_id].fire(state, key, deadline, out)
        except Exception as exc:
            self._error(rule_id, f"timer {key} at {deadline}", exc)
            return
        if new is None:
            self.states[rule_id].pop(key, None)

    def _error(self, rule_id: str, what: str, exc: BaseException) -> None:
        note_rule_error(self.stats, rule_id, what, exc)
        log.debug("stateful rule %s failed on %s", rule_id, what, exc_info=True)

    def _expire(self) -> None:
        w = self.watermark
        if w < self._next_expiry:
            return
        for rule_id, logic in self.logics.items():
            due = self.next_sweep.get(rule_id)
            if due is None:
                self.next_sweep[rule_id] = w + max(logic.ttl / 8, 60.0)
                continue
            if w < due:
                continue
            self.next_sweep[rule_id] = w + max(logic.ttl / 8, 60.0)
            states, horizon, deadline = self.states[rule_id], w - logic.ttl, logic.deadline
            dead = [k for k, s in states.items() if s.last < horizon and deadline(s) is None]
            for k in dead:
                del states[k]
            self.stats.evictions[rule_id] += len(dead)
        for bucket in [b for b in self.seen_buckets if (b + 1) * SEEN_BUCKET <= w]:
            self.seen.difference_update(self.seen_buckets.pop(bucket))
        oldest = min(self.seen_buckets, default=None)
        bucket_due = math.inf if oldest is None else (oldest + 1) * SEEN_BUCKET
        self._next_expiry = min([*self.next_sweep.values(), bucket_due])

    # --- inspection -----------------------------------------------------------------------------

    def keys(self) -> int:
        return sum(len(s) for s in self.states.values())

    def open_watches(self) -> Counter[str]:
        """Per rule, keys with a deadline not yet reached (e.g. instances whose grace is still running)."""
        counts: Counter[str] = Counter()
        for rule_id, states in self.states.items():
            is_open = self.logics[rule_id].is_open
            n = sum(1 for s in states.values() if is_open(s))
            if n:
                counts[rule_id] = n
        return counts
