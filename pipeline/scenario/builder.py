"""Build a scenario: benign background for an organization with attacks injected at chosen points."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.config import Config
from pipeline.scenario.attacks import ATTACKER_AGENTS, ATTACKER_NETS, ATTACKS, Kit
from pipeline.scenario.background import Background
from pipeline.scenario.expected import Expected
from pipeline.scenario.ids import Ids, iso
from pipeline.scenario.org import Actor, Organization, iam_user_identity
from pipeline.scenario.shapes import Shapes
from pipeline.scenario.tagging import background as tag_background

# Tuesday 04:30 UTC, the default start of a scenario (reproducible; `trailwarden run` ends its own now).
DEFAULT_START = datetime(2024, 8, 6, 4, 30, tzinfo=UTC).timestamp()
MIN_DURATION = 2 * 3600.0
RATE = 25.0  # background events per second once the minimum duration is filled
WARMUP_SHARE = 0.25
ATTACK_SPAN = (0.35, 0.75)  # attacks start within this share of the scenario, after the warm-up, before the end
MAX_SHIFT = 8 * 86400.0  # a week and a day: any weekly time condition that can hold, holds somewhere
Condition = Callable[[float], bool]


@dataclass
class Scenario:
    """Records in event-time order, and the findings they must (or must not) raise."""

    events: list[dict[str, Any]]
    expected: list[Expected]
    seed: int
    start: float
    end: float
    attacks: list[str] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)  # account id -> name
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "events": len(self.events),
            "start": iso(self.start),
            "end": iso(self.end),
            "attacks": self.attacks,
            "accounts": self.accounts,
            "overrides": self.overrides,
            "expected": [e.to_dict() for e in self.expected],
        }

    def config_toml(self) -> str:
        """The rule parameters this scenario's timeline needs, as a trailwarden configuration file."""
        lines = ["# Rule periods scaled to the scenario's length: a month of history fits in a few hours.", ""]
        for rule_id, params in self.overrides.items():
            lines.append(f"[rules.{rule_id}]")
            lines.extend(f'{key} = "{value}"' for key, value in params.items())
            lines.append("")
        return "\n".join(lines)


def scaled_overrides(duration: float) -> dict[str, dict[str, Any]]:
    """Periods that fit a scenario of `duration` seconds: first-seen rules warm up over the first
    quarter (attacks start after 35%), and a login profile has 20 minutes to get an MFA device."""
    warmup = f"{int(duration * WARMUP_SHARE)}s"
    return {
        "first-seen-region": {"warmup": warmup},
        "first-seen-console-source-ip": {"warmup": warmup},
        "iam-login-profile-without-mfa": {"window": "20m"},
    }


def resolve_attacks(names: Iterable[str] | str | None) -> list[str]:
    """ "all" (default), "none", or attack names; raises ValueError naming the unknown ones."""
    if names is None or names == "all":
        return list(ATTACKS)
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if names == ["all"]:
        return list(ATTACKS)
    if names in (["none"], []):
        return []
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; known: {sorted(ATTACKS)}")
    return names


def build(
    events: int = 5000,
    seed: int = 1,
    attacks: Iterable[str] | str | None = "all",
    *,
    accounts: int = 6,
    start: float | None = None,
    end: float | None = None,
    duration: float | None = None,
    config: Config | None = None,
) -> Scenario:
    """About `events` records (at least the attacks' own) from `seed`; the same arguments give the same scenario.

    The scenario starts at `start`, or ends by `end` (`trailwarden run` ends it by now), or starts at
    DEFAULT_START. An attack with a time condition (`Attack.when`, read from `config`) is placed where
    its condition holds; if the attacks' span holds no such moment, the whole scenario moves (away from
    its anchor, an hour at a time, at most `MAX_SHIFT`) until it does."""
    rng = random.Random(seed)  # noqa: S311 (a seeded, reproducible scenario, not a secret)
    ids = Ids(rng)
    chosen = resolve_attacks(attacks)
    config = config or Config.from_dict()
    conditions = {name: when(config) for name in chosen if (when := ATTACKS[name].when) is not None}
    if duration is None:
        duration = max(MIN_DURATION, events / RATE)
    if start is None:
        start = DEFAULT_START if end is None else end - duration
    start = _fit(start, duration, list(conditions.values()), anchored_end=end is not None)
    end = start + duration
    org = Organization(rng, ids, accounts, start)
    shapes = Shapes(rng, ids)

    attack_events, expected = _run_attacks(
        [n for n in chosen if not ATTACKS[n].apart], org, shapes, rng, ids, start, duration, config, conditions
    )
    count = max(0, events - len(attack_events))
    background = Background(org, shapes, rng, ids).generate(count, start, duration)
    # Drawn from streams of their own, after everything else: they move nothing of the rest.
    apart_events, apart_expected = _run_apart(
        [n for n in chosen if ATTACKS[n].apart], org, seed, start, duration, config
    )
    tagging = tag_background(org, random.Random(f"{seed}:tag-background"), start, duration, count)  # noqa: S311 (a seeded, reproducible scenario, not a secret)
    expected += apart_expected
    records = background + attack_events + apart_events + tagging
    records.sort(key=_event_time)
    return Scenario(
        records, expected, seed, start, end, chosen, {a.id: a.name for a in org.accounts}, scaled_overrides(duration)
    )


def _event_time(ev: dict[str, Any]) -> str:
    return ev["eventTime"]


def _span(start: float, duration: float) -> tuple[float, float]:
    lo, hi = ATTACK_SPAN
    return start + duration * lo, start + duration * hi


def _moment(holds: Condition, t: float, span: tuple[float, float]) -> float | None:
    """The moment nearest `t`, on `t`'s minute grid within `span`, where `holds`; None if there is none."""
    lo, hi = span
    for step in range(int((hi - lo) // 60) + 1):
        for candidate in (t - 60 * step, t + 60 * step):
            if lo <= candidate <= hi and holds(candidate):
                return candidate
    return None


def _fit(start: float, duration: float, conditions: list[Condition], *, anchored_end: bool) -> float:
    """`start`, moved an hour at a time away from the anchor (earlier when the scenario must end by its
    `end`, later when it starts at `start`) until the attacks' span holds a moment for every condition that
    holds at some shift within MAX_SHIFT (one that never does, e.g. business hours round the clock, is left
    to its attack). The length stays: a scenario is played faster than real time, and a longer one would
    spread one shard's facts further apart in event time than the rules' windows."""
    direction = -1.0 if anchored_end else 1.0
    shifts = [start + direction * 3600.0 * hour for hour in range(int(MAX_SHIFT // 3600) + 1)]
    works = [[_whole_minute(holds, _span(first, duration)) for first in shifts] for holds in conditions]
    possible = [row for row in works if any(row)]
    for i, first in enumerate(shifts):
        if all(row[i] for row in possible):
            return first
    return start


def _whole_minute(holds: Condition, span: tuple[float, float]) -> bool:
    """Whether `holds` for a whole clock minute inside `span`: then `_moment` finds a moment from any
    starting second (conditions on the time of day change on the minute)."""
    lo, hi = span
    minute = -(-lo // 60) * 60
    while minute + 60 <= hi:
        if holds(minute) and holds(minute + 59):
            return True
        minute += 60
    return False


def _run_apart(
    names: Sequence[str], org: Organization, seed: int, start: float, duration: float, config: Config
) -> tuple[list[dict[str, Any]], list[Expected]]:
    """The attacks placed apart (`Attack.apart`): each with its own random stream, ids and shapes, at its
    own moment within ATTACK_SPAN, on a member account and from an attacker's address of that stream."""
    events: list[dict[str, Any]] = []
    expected: list[Expected] = []
    members = org.accounts[1:] or org.accounts
    for name in names:
        rng = random.Random(f"{seed}:{name}")  # noqa: S311 (a seeded, reproducible scenario, not a secret)
        ids = Ids(rng)
        account = rng.choice(members)
        ip = f"{rng.choice(ATTACKER_NETS)}.{rng.randrange(2, 254)}"
        user = "ci-legacy-deployer"
        actor = Actor(
            f"attacker:{name}",
            "attacker",
            account,
            iam_user_identity(account.id, user, ids.key_id("AIDA"), ids.key_id("AKIA")),
            (ip,),
            (rng.choice(ATTACKER_AGENTS),),
            user_name=user,
        )
        lo, hi = ATTACK_SPAN
        t = float(int(start + duration * rng.uniform(lo, hi)))
        kit = Kit(
            org,
            Shapes(rng, ids),
            ids,
            rng,
            start,
            start + duration,
            name,
            account,
            actor,
            ip,
            account.regions[0],
            config,
        )
        ATTACKS[name].run(kit, t)
        events.extend(kit.events)
        expected.extend(kit.expected)
    return events, expected


def _run_attacks(
    names: Sequence[str],
    org: Organization,
    shapes: Shapes,
    rng: random.Random,
    ids: Ids,
    start: float,
    duration: float,
    config: Config,
    conditions: dict[str, Condition],
) -> tuple[list[dict[str, Any]], list[Expected]]:
    """Each attack starts at its own point within ATTACK_SPAN of the scenario: after the first-seen
    warm-up, early enough for stateful deadlines to fall before the end. Targets rotate over the
    member accounts."""
    events: list[dict[str, Any]] = []
    expected: list[Expected] = []
    members = org.accounts[1:] or org.accounts
    n = max(len(names), 1)
    for i, name in enumerate(names):
        account = members[i % len(members)]
        ip = f"{ATTACKER_NETS[i % len(ATTACKER_NETS)]}.{rng.randrange(2, 254)}"
        agent = ATTACKER_AGENTS[i % len(ATTACKER_AGENTS)]
        user = "ci-legacy-deployer"
        actor = Actor(
            f"attacker:{name}",
            "attacker",
            account,
            iam_user_identity(account.id, user, ids.key_id("AIDA"), ids.key_id("AKIA")),
            (ip,),
            (agent,),
            user_name=user,
        )
        lo, hi = ATTACK_SPAN
        t = float(int(start + duration * (lo + (hi - lo) * (i + rng.random()) / n)))
        kit = Kit(org, shapes, ids, rng, start, start + duration, name, account, actor, ip, account.regions[0], config)
        if name in conditions:
            moment = _moment(conditions[name], t, _span(start, duration))
            kit.placed = moment is not None
            t = t if moment is None else moment
        ATTACKS[name].run(kit, t)
        events.extend(kit.events)
        expected.extend(kit.expected)
    return events, expected
