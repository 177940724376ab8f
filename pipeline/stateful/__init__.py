"""Stateful rules: keyed facts (stage 1), keyed state with event-time timers (stage 2), snapshots.

- `facts`: `Step` (what an extractor returns), `Fact` (what travels on the keyed stream), partition keys.
- `kinds`: the rule kinds and their decorators: `absence`, `threshold`, `sequence`, `first_seen`.
- `extractor`: `FactExtractor`, stage 1's half: events to facts.
- `state`: stage 2, `KeyedState` with watermark, timers, TTL and at-most-once application.
- `snapshot`: `dumps`, `load_into`, `split_for_child`.
"""

from pipeline.stateful.extractor import FactExtractor
from pipeline.stateful.facts import Fact, Step, key_hash, partition_key
from pipeline.stateful.kinds import (
                                     END,
                                     FIRST,
                                     SATISFY,
                                     START,
                                     THEN,
                                     UNSATISFY,
                                     StatefulRule,
                                     absence,
                                     first_seen,
                                     sequence,
                                     threshold,
)
from pipeline.stateful.state import KeyedState

__all__ = ["END", "FIRST", "SATISFY", "START", "THEN", "UNSATISFY", "Fact", "FactExtractor", "KeyedState",
           "StatefulRule", "Step", "absence", "first_seen", "key_hash", "partition_key", "sequence", "threshold"]
