"""Resharding hand-off of stage-2 state (DESIGN §3), below the KCL: split and merge with real Kinesis hash
ranges, lease moves between, re-sent facts after each reshard; findings equal the uninterrupted run.
A few seeds here; `make reliability` runs many (tests/reliability/test_reliability.py)."""

from __future__ import annotations

import base64
from array import array

import pytest

from consumers.snapshots import merge as consumer_merge
from pipeline.stateful import snapshot
from pipeline.stateful.facts import key_hash
from tests.reliability import reshard
from tests.support.stateful import fresh

SEEDS = range(3)


@pytest.mark.parametrize("merge", [reshard.engine_merge, reshard.consumer_merge], ids=["engine", "consumer"])
@pytest.mark.parametrize("seed", SEEDS)
def test_split_then_merge_gives_the_uninterrupted_findings(seed: int, merge: reshard.Merge) -> None:
    outcome = reshard.run(seed, fresh, n=2000, merge=merge)
    assert sum(outcome.expected.values()) > 100  # the stream does raise findings, of timers too
    assert outcome.resent > 0 and outcome.shards == 7  # 2 shards, split into 4, two merged into 1
    assert outcome.ok, (outcome.missing, outcome.extra, outcome.duplicated, outcome.log)


def test_a_merge_that_keeps_one_parent_is_caught() -> None:
    outcome = reshard.run(1, fresh, n=2000, merge=lambda handoffs: handoffs[0])
    assert outcome.missing and not outcome.ok


def test_a_merge_that_forgets_seen_facts_is_caught() -> None:
    def forgetful(handoffs: list[bytes]) -> dict:
        d = snapshot.decode(snapshot.merge_for_child(handoffs))
        d["seen"] = []
        return d

    failed = [seed for seed in range(6) if not reshard.run(seed, fresh, n=2000, merge=forgetful).ok]
    assert failed  # re-sent facts after the merge are applied twice: counts and findings change


def _parents():
    facts = reshard.arrival(1500, seed=4, lateness=120.0)
    parents = [fresh(), fresh()]
    for fact in facts:
        parents[0 if key_hash(fact.key) <= reshard.TWO_SHARDS[0][1] else 1].add([fact])
    return parents


def _seen_union(docs: list[dict]) -> set[int]:
    out: set[int] = set()
    for d in docs:
        for _, blob in d["seen"]:
            arr = array("q")
            arr.frombytes(base64.b64decode(blob))
            out.update(arr)
    return out


@pytest.mark.parametrize("merge", [snapshot.merge_for_child, consumer_merge], ids=["engine", "consumer"])
def test_merged_child_keeps_every_key_pending_fact_and_seen_digest_across_a_later_lease_move(merge) -> None:
    a, b = _parents()
    handoffs = [snapshot.split_for_child(p, 0, reshard.MAX_HASH) for p in (a, b)]
    child = snapshot.load_into(fresh(), merge(handoffs))
    assert child.keys() == a.keys() + b.keys()
    assert len(child.pending) == len(a.pending) + len(b.pending)
    assert child.open_watches() == a.open_watches() + b.open_watches()
    assert child.watermark == min(a.watermark, b.watermark) and child.max_time == max(a.max_time, b.max_time)
    union = _seen_union([snapshot.decode(h) for h in handoffs])
    assert union and child.seen == union
    # Both parents fill the same hourly expiry buckets: a later restore must still hold every digest.
    moved = snapshot.load_into(fresh(), snapshot.dumps(child))
    assert moved.seen == union
    assert {d for arr in moved.seen_buckets.values() for d in arr} == union


def test_merge_keeps_one_entry_and_its_pending_facts_for_a_key_held_twice() -> None:
    a, _ = _parents()
    data = snapshot.dumps(a)
    merged = snapshot.load_into(fresh(), snapshot.merge_for_child([data, data]))
    assert a.pending and merged.keys() == a.keys() and len(merged.pending) == len(a.pending)
