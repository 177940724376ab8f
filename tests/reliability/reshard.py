"""Resharding of the keyed stream, below the KCL: stage-2 state handed from parent to child shards.

A seeded run plays a stream of keyed facts (every built-in stateful rule, out of order within the allowed
lateness, with stretches re-sent as the router does after a crash) into the shards of a keyed stream whose
topology changes the way Kinesis changes it:

- the stream starts as CreateStream makes a 2-shard stream: hash ranges [0, 2^127 - 1] and [2^127, 2^128 - 1];
- SplitShard: each of the two is split at a random NewStartingHashKey (4 open shards); the parent's state is
  handed to each child with `snapshot.split_for_child(parent, child start, child end)`;
- MergeShards: two adjacent open shards are merged; the child starts from both parents' hand-offs, joined by
  `snapshot.merge_for_child` (the engine) or `consumers.snapshots.merge` (the live stage-2 processor);
- lease moves at random points: a shard's state is snapshotted and restored into a fresh engine.

Each fact goes to the open shard whose hash key range holds the MD5 of its partition key, as Kinesis routes
it. At the end every open shard is told the last event time (as the wall clock would, live) and flushed.
The findings of all shards together must equal those of one uninterrupted single-shard run: none missing,
none extra, none twice.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.finding import Finding
from pipeline.stateful import snapshot
from pipeline.stateful.facts import Fact, key_hash
from pipeline.stateful.state import KeyedState
from pipeline.stateful.synthetic import mixed_facts

MAX_HASH = 2**128 - 1
TWO_SHARDS = ((0, 2**127 - 1), (2**127, MAX_HASH))  # what CreateStream(ShardCount=2) gives


def signature(f: Finding) -> tuple[Any, ...]:
    """What must match between runs (detected_at is the wall clock and may differ)."""
    return (f.id, f.rule_id, f.dedup_key, f.event_ids, f.event_time, f.summary)


def arrival(n: int, seed: int, lateness: float) -> list[Fact]:
    """About `n` facts in arrival order: jittered within 0.9 x lateness, with re-sent stretches."""
    rng = random.Random(seed)
    facts = mixed_facts(n, seed=seed)
    order = sorted(facts, key=lambda f: f.time + rng.uniform(0, 0.9 * lateness))
    for _ in range(3):  # the router re-sends what followed its last checkpoint
        at = rng.randrange(50, len(order))
        back = rng.randint(10, 80)
        order[at:at] = [Fact.from_bytes(f.to_bytes()) for f in order[max(0, at - back) : at]]
    return order


@dataclass
class Shard:
    shard_id: str
    start: int
    end: int
    state: KeyedState
    parents: tuple[str, ...] = ()

    def holds(self, h: int) -> bool:
        return self.start <= h <= self.end


@dataclass
class Outcome:
    seed: int
    facts: int
    expected: Counter[tuple[Any, ...]]
    delivered: Counter[tuple[Any, ...]]
    log: list[str] = field(default_factory=list)
    shards: int = 0
    resent: int = 0

    @property
    def missing(self) -> int:
        return sum((self.expected - self.delivered).values())

    @property
    def extra(self) -> int:
        return sum((self.delivered - self.expected).values())

    @property
    def duplicated(self) -> int:
        """Findings delivered more often (by id) than the uninterrupted run raised them (a rule may raise
        one id twice in a dedup window; the dedupe table then alerts once)."""
        want = Counter(sig[0] for sig in self.expected.elements())
        got = Counter(sig[0] for sig in self.delivered.elements())
        return sum((got - want).values())

    @property
    def ok(self) -> bool:
        return self.expected == self.delivered and self.duplicated == 0


Merge = Callable[[list[bytes]], Any]


def engine_merge(handoffs: list[bytes]) -> bytes:
    return snapshot.merge_for_child(handoffs)


def consumer_merge(handoffs: list[bytes]) -> Any:
    from consumers.snapshots import merge

    return merge(handoffs)


def _owner(shards: list[Shard], fact: Fact) -> Shard:
    h = key_hash(fact.key)
    return next(s for s in shards if s.holds(h))


def uninterrupted(facts: list[Fact], fresh: Callable[[], KeyedState]) -> Counter[tuple[Any, ...]]:
    state = fresh()
    out: list[Finding] = []
    for fact in facts:
        out.extend(state.add([fact]))
    out.extend(state.flush())
    return Counter(signature(f) for f in out)


def run(
    seed: int,
    fresh: Callable[[], KeyedState],
    n: int = 1500,
    merge: Merge = engine_merge,
    lease_moves: int = 4,
    lateness: float = 120.0,
) -> Outcome:
    """One seeded run (see the module docstring)."""
    rng = random.Random(seed)
    facts = arrival(n, seed, lateness)
    outcome = Outcome(seed, len(facts), uninterrupted(facts, fresh), Counter())
    count = len(facts)
    # Where the topology changes, by arrival position: the two splits, then the merge, and lease moves.
    splits = sorted(rng.sample(range(count // 8, count // 2), 2))
    merge_at = rng.randrange(splits[1] + 1, count * 7 // 8)
    moves = sorted(rng.sample(range(1, count), lease_moves))
    plan: dict[int, list[str]] = {}
    plan.setdefault(splits[0], []).append("split")
    plan.setdefault(splits[1], []).append("split")
    plan.setdefault(merge_at, []).append("merge")
    for m in moves:
        plan.setdefault(m, []).append("move")

    shards = [Shard(f"shardId-{i:012d}", lo, hi, fresh()) for i, (lo, hi) in enumerate(TWO_SHARDS)]
    next_id = len(shards)
    found: list[Finding] = []

    def new_id() -> str:
        nonlocal next_id
        next_id += 1
        return f"shardId-{next_id - 1:012d}"

    for position, fact in enumerate(facts):
        for action in plan.get(position, ()):
            if action == "split":
                originals = [s for s in shards if not s.parents]  # split each of the stream's first two shards
                parent = originals[0]
                new_start = rng.randint(parent.start + 1, parent.end)  # SplitShard's NewStartingHashKey
                children = []
                for lo, hi in ((parent.start, new_start - 1), (new_start, parent.end)):
                    child = Shard(new_id(), lo, hi, fresh(), (parent.shard_id,))
                    snapshot.load_into(child.state, snapshot.split_for_child(parent.state, lo, hi))
                    children.append(child)
                shards.remove(parent)
                shards.extend(children)
                outcome.log.append(
                    f"@{position} split {parent.shard_id} at {new_start:#x} -> {[c.shard_id for c in children]}"
                )
            elif action == "merge":
                ordered = sorted(shards, key=lambda s: s.start)
                pairs = [(a, b) for a, b in itertools.pairwise(ordered) if a.end + 1 == b.start]
                a, b = rng.choice(pairs)
                child = Shard(new_id(), a.start, b.end, fresh(), (a.shard_id, b.shard_id))
                # As the live processors do: each parent, at its shard end, hands the child its keys in the
                # child's range; the child starts from the hand-offs of both.
                handoffs = [snapshot.split_for_child(p.state, child.start, child.end) for p in (a, b)]
                snapshot.load_into(child.state, merge(handoffs))
                shards = [s for s in shards if s not in (a, b)] + [child]
                outcome.log.append(f"@{position} merge {a.shard_id} + {b.shard_id} -> {child.shard_id}")
            else:
                shard = rng.choice(shards)
                moved = fresh()
                snapshot.load_into(moved, snapshot.dumps(shard.state))
                shard.state = moved
                outcome.log.append(f"@{position} lease of {shard.shard_id} moved")
            if action in ("split", "merge"):
                # The router crashes just after the reshard and re-sends what followed its last checkpoint:
                # facts the parents applied now reach the children, which must recognise them.
                back = rng.randint(20, 150)
                resent = [Fact.from_bytes(f.to_bytes()) for f in facts[max(0, position - back) : position]]
                for old in resent:
                    found.extend(_owner(shards, old).state.add([old]))
                outcome.resent += len(resent)
        found.extend(_owner(shards, fact).state.add([fact]))
    last = max(f.time for f in facts)
    for shard in shards:
        found.extend(shard.state.observe(last))
        found.extend(shard.state.flush())
    outcome.delivered = Counter(signature(f) for f in found)
    outcome.shards = next_id
    return outcome
