"""Realistic CloudTrail at any volume: an organization's benign activity with attacks injected.

    from pipeline.scenario import build
    scenario = build(events=20_000, seed=7, attacks="all")
    scenario.events     # CloudTrail records in event-time order
    scenario.expected   # Expected findings (rule id + key facts) the attacks must raise

Encode the records as any transport with `pipeline.encode`.
"""

from pipeline.scenario.attacks import ATTACKS, RULES
from pipeline.scenario.builder import Scenario, build, resolve_attacks
from pipeline.scenario.expected import Comparison, Expected, compare

__all__ = ["ATTACKS", "RULES", "Comparison", "Expected", "Scenario", "build", "compare", "resolve_attacks"]
