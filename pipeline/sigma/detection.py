"""A Sigma detection rule compiled for the engine, and the match rule made of it.

`Detection` keeps what the rest of the Sigma support needs: the condition tree (the example generator
reads it), the predicate, the index keys, and the metadata a trailwarden rule takes from Sigma:
severity from `level`, ATT&CK technique ids from the `attack.tNNNN` tags, the description, the false
positives as the runbook, and the upstream id, file and status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.event import Event
from pipeline.rule import Case, Hit, Kind, MatchRule, Params, metadata
from pipeline.sigma.condition import Node, Predicate, gates

# Sigma's levels onto trailwarden's ladder; a rule without a level is medium (a person should look).
SEVERITY = {"informational": "info", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
DEFAULT_LEVEL = "medium"
_TECHNIQUE = re.compile(r"t\d{4}(\.\d{3})?")


@dataclass
class Detection:
    """One Sigma detection rule, compiled. `refs` are the names a correlation may refer to it by."""

    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    description: str
    falsepositives: tuple[str, ...]
    node: Node
    predicate: Predicate
    events: Mapping[str, Any]
    upstream: dict[str, str]
    refs: tuple[str, ...] = ()
    cases: tuple[Case, ...] = field(default=())

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.level, SEVERITY[DEFAULT_LEVEL])

    @property
    def attack(self) -> tuple[str, ...]:
        """ATT&CK technique ids from tags such as `attack.t1562.008`."""
        found = []
        for tag in self.tags:
            namespace, _, name = tag.partition(".")
            if namespace == "attack" and _TECHNIQUE.fullmatch(name.lower()):
                found.append(name.upper())
        return tuple(dict.fromkeys(found))

    def rule_metadata(self, fn: Any) -> dict[str, Any]:
        """The keyword arguments of a trailwarden `Rule` for this detection (or a correlation over it)."""
        meta = metadata(
            id=self.rule_id,
            title=self.title,
            severity=self.severity,
            attack=self.attack,
            events=self.events,
            params=None,
            dedup="1h",
            runbook=runbook(self.falsepositives),
            cases=self.cases,
            fn=fn,
        )
        meta["description"] = describe(self.description, self.upstream)
        return meta


def runbook(falsepositives: tuple[str, ...]) -> str:
    known = [f for f in falsepositives if f and f.lower() not in ("unknown", "none")]
    return ("Known false positives (from the Sigma rule): " + "; ".join(known) + ".") if known else ""


def describe(description: str, upstream: Mapping[str, str]) -> str:
    """The Sigma description, then where the rule comes from."""
    origin = ", ".join(f"{k} {v}" for k, v in upstream.items() if v)
    text = " ".join(description.split()) or "(no description)"
    return f"{text}\n\nSigma rule: {origin}."


def match_rule(d: Detection) -> MatchRule:
    """The match rule that raises a finding for each event the detection matches."""
    predicate = d.predicate
    # The Detection Rule License asks that messages based on a rule's matches name its authors.
    context = {
        "sigma_id": d.upstream.get("id", ""),
        "sigma_level": d.level,
        "sigma_author": d.upstream.get("author", ""),
    }

    def check(e: Event, p: Params) -> Hit | None:
        if not predicate(e.raw):
            return None
        return Hit(summary=f"{d.title}: {e.name} by {e.principal or 'unknown principal'}", context=context)

    rule = MatchRule(**{**d.rule_metadata(check), "gates": gates(d.node)}, kind=Kind.MATCH, check=check)
    rule.origin, rule.upstream = "sigma", d.upstream
    return rule
