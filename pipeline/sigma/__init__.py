"""Sigma rules evaluated in the stream: pySigma reads the files, trailwarden compiles them.

- `load`: Sigma files and folders to rules, all or nothing (`SigmaLoadError` lists every problem).
- `translate`: pySigma's parsed condition to trailwarden's condition tree (`condition`), whose leaves
  are the tests of `checks` over the field values `fields` reads.
- `condition`: the tree's index keys (eventSource / eventName) and its compiled predicate.
- `detection`: a compiled detection rule and its match rule; `correlation`: correlation rules as
  stateful rules (threshold, sequence).
- `examples`: test cases generated from a rule's own condition.

`bundled()` is SigmaHQ's AWS CloudTrail rule set shipped in `pipeline/rules/sigma/`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pipeline.sigma.load import Loaded, SigmaLoadError, load

BUNDLED = Path(__file__).resolve().parent.parent / "rules" / "sigma"

__all__ = ["BUNDLED", "Loaded", "SigmaLoadError", "bundled", "load"]


# Bundled rules off unless configured on, and why (measured on the scenario's benign background).
OFF_BY_DEFAULT = {
    "sigma-aws-sts-assumerole-misuse": "it matches every call made with a role session (nine in ten calls of a "
    "working organization): a hunting query, not a detection",
}


@cache
def bundled() -> Loaded:
    """SigmaHQ's AWS CloudTrail rules as shipped (loaded once per process)."""
    loaded = load([BUNDLED], f"bundled Sigma rules ({BUNDLED})")
    for rule in loaded.rules:
        if rule.id in OFF_BY_DEFAULT:
            rule.enabled = False
            rule.description += (
                f"\n\nOff by default: {OFF_BY_DEFAULT[rule.id]}. `[rules.{rule.id}] enabled = true` turns it on."
            )
    return loaded
