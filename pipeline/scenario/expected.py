"""What a scenario expects the detector to find, and how findings are matched against it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.finding import OPEN, RESOLVED, Finding


@dataclass(frozen=True)
class Expected:
    """A finding an attack must raise (or, with `present=False`, must not raise).

    `account` and each value of `facts` must be found in the finding: `facts` may name
    "principal", "source_ip", "region" (compared for equality) and "resource" (a substring of a
    resource, of the dedup key or of the summary). `stateful` marks rules of the stateful stage.
    `status` is the finding's: "resolved" expects its resolution (the same id, resolved later).
    """

    rule_id: str
    attack: str
    account: str = ""
    facts: dict[str, str] = field(default_factory=dict)
    stateful: bool = False
    present: bool = True
    status: str = OPEN

    def matches(self, finding: Finding) -> bool:
        if finding.rule_id != self.rule_id or finding.status != self.status:
            return False
        if self.account and finding.account and finding.account != self.account:
            return False
        for name, value in self.facts.items():
            if name == "resource":
                haystack = (*finding.resources, finding.dedup_key, finding.summary)
                if not any(value in h for h in haystack):
                    return False
            elif name in ("principal", "source_ip", "region") and getattr(finding, name) != value:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Expected:
        return cls(
            rule_id=str(d["rule_id"]),
            attack=str(d.get("attack", "")),
            account=str(d.get("account", "")),
            facts={str(k): str(v) for k, v in dict(d.get("facts") or {}).items()},
            stateful=bool(d.get("stateful", False)),
            present=bool(d.get("present", True)),
            status=RESOLVED if d.get("status") == RESOLVED else OPEN,
        )


@dataclass
class Comparison:
    """Expected findings against what the detector raised."""

    found: list[tuple[Expected, Finding]] = field(default_factory=list)
    missing: list[Expected] = field(default_factory=list)
    no_rule: list[Expected] = field(default_factory=list)  # the pack has no rule with that id (yet)
    unwanted: list[tuple[Expected, Finding]] = field(default_factory=list)  # present=False but raised

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unwanted


def compare(expected: Iterable[Expected], findings: Iterable[Finding], rule_ids: Iterable[str]) -> Comparison:
    """Match each expectation to a finding; expectations naming a rule absent from `rule_ids` are set aside."""
    known = set(rule_ids)
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule_id, []).append(f)
    result = Comparison()
    for exp in expected:
        if exp.rule_id not in known:
            result.no_rule.append(exp)
            continue
        hit = next((f for f in by_rule.get(exp.rule_id, ()) if exp.matches(f)), None)
        if exp.present and hit is not None:
            result.found.append((exp, hit))
        elif exp.present:
            result.missing.append(exp)
        elif hit is not None:
            result.unwanted.append((exp, hit))
    return result
