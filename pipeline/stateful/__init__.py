"""Stateful rules: keyed facts (stage 1), keyed state with event-time timers (stage 2), snapshots.

- `kinds`: what a rule file imports: the decorators `absence`, `threshold`, `sequence`, `first_seen`,
  the step names (`steps`) and `StatefulRule` (`rule`).
- `absence`, `threshold`, `sequence`, `first_seen`: one module per kind, each with its typed
  `Options`, its per-key `State` and its stage-2 `Logic` (base `KindLogic` in `logic`; options are
  resolved and checked by `options`).
- `facts`: `Step` (what an extractor returns), `Fact` (what travels on the keyed stream), partition keys.
- `extractor`: `FactExtractor`, stage 1's half: events to facts.
- `state`: stage 2, `KeyedState` with watermark, timers, TTL and at-most-once application.
- `snapshot`: the versioned snapshot format: `dumps`, `load_into`, `split_for_child`, `merge_for_child`.
- `findings`: findings built from facts; `synthetic`: generated facts for tests and the bench.
"""

from pipeline.stateful.extractor import FactExtractor
from pipeline.stateful.facts import Fact, Step, key_hash, partition_key
from pipeline.stateful.rule import StatefulRule
from pipeline.stateful.state import KeyedState
from pipeline.stateful.steps import StepName

__all__ = ["Fact", "FactExtractor", "KeyedState", "StatefulRule", "Step", "StepName", "key_hash", "partition_key"]
