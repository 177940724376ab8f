"""Build a scenario: benign background for an organization with attacks injected at chosen points."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.scenario.attacks import ATTACKER_AGENTS, ATTACKER_NETS, ATTACKS, Kit
from pipeline.scenario.background import Background
from pipeline.scenario.expected import Expected
from pipeline.scenario.ids import Ids, iso
from pipeline.scenario.org import Actor, Organization, iam_user_identity
from pipeline.scenario.shapes import Shapes

# Tuesday 04:30 UTC: outside business hours in the Americas and Europe, so an IAM user created by
# an attack is out of hours, while the background (which creates no IAM users) is unaffected.
DEFAULT_START = datetime(2024, 8, 6, 4, 30, tzinfo=UTC).timestamp()
MIN_DURATION = 2 * 3600.0
RATE = 25.0  # background events per second once the minimum duration is filled
WARMUP_SHARE = 0.25
ATTACK_SPAN = (0.35, 0.75)  # attacks start within this share of the scenario, after the warm-up, before the end


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
        return {"seed": self.seed, "events": len(self.events), "start": iso(self.start), "end": iso(self.end),
                "attacks": self.attacks, "accounts": self.accounts, "overrides": self.overrides,
                "expected": [e.to_dict() for e in self.expected]}

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


def build(events: int = 5000, seed: int = 1, attacks: Iterable[str] | str | None = "all", *,
          accounts: int = 6, start: float = DEFAULT_START, duration: float | None = None) -> Scenario:
    """About `events` records (at least the attacks' own) from `seed`; the same arguments give the same scenario."""
    rng = random.Random(seed)
    ids = Ids(rng)
    chosen = resolve_attacks(attacks)
    if duration is None:
        duration = max(MIN_DURATION, events / RATE)
    end = start + duration
    org = Organization(rng, ids, accounts, start)
    shapes = Shapes(rng, ids)

    attack_events, expected = _run_attacks(chosen, org, shapes, rng, ids, start, duration)
    background = Background(org, shapes, rng, ids).generate(max(0, events - len(attack_events)), start, duration)
    records = background + attack_events
    records.sort(key=_event_time)
    return Scenario(records, expected, seed, start, end, chosen, {a.id: a.name for a in org.accounts},
                    scaled_overrides(duration))


def _event_time(ev: dict[str, Any]) -> str:
    return ev["eventTime"]


def _run_attacks(names: Sequence[str], org: Organization, shapes: Shapes, rng: random.Random, ids: Ids,
                 start: float, duration: float) -> tuple[list[dict[str, Any]], list[Expected]]:
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
        actor = Actor(f"attacker:{name}", "attacker", account,
                      iam_user_identity(account.id, user, ids.key_id("AIDA"), ids.key_id("AKIA")),
                      (ip,), (agent,), user_name=user)
        lo, hi = ATTACK_SPAN
        t = start + duration * (lo + (hi - lo) * (i + rng.random()) / n)
        kit = Kit(org, shapes, ids, rng, start, start + duration, name, account, actor, ip, account.regions[0])
        ATTACKS[name].run(kit, float(int(t)))
        events.extend(kit.events)
        expected.extend(kit.expected)
    return events, expected
