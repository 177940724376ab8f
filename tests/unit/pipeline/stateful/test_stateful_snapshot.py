"""Snapshots: cut anywhere, restore into a fresh engine, same findings; reshard hand-off by hash range."""

from __future__ import annotations

import copy
import random
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.snapshots import merge as consumer_merge
from pipeline.stateful import snapshot
from pipeline.stateful.facts import Fact, key_hash
from pipeline.stateful.synthetic import instance_facts, mixed_facts
from tests.support.stateful import LATENESS, fresh, run, signature

FACTS = mixed_facts(1200, seed=11)
# Out of order within the lateness and with a stretch delivered twice, so pending facts,
# seen ids and timers are all in flight at the cuts.
_rng = random.Random(3)
ARRIVAL = sorted(FACTS, key=lambda f: f.time + _rng.uniform(0, 0.9 * LATENESS))
ARRIVAL[600:600] = [Fact.from_bytes(f.to_bytes()) for f in ARRIVAL[550:600]]
UNINTERRUPTED = signature(run(fresh(), ARRIVAL))

# Kinesis hash key ranges: a two-shard stream's first shard, split in the middle as SplitShard does.
MAX_HASH = 2**128 - 1
PARENT = (0, 170141183460469231731687303715884105727)
CHILDREN = (
    (0, 85070591730234615865843651857942052863),
    (85070591730234615865843651857942052864, 170141183460469231731687303715884105727),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, len(ARRIVAL)), min_size=1, max_size=6))
def test_snapshot_restore_at_random_cuts_gives_the_uninterrupted_findings(cuts):
    state = fresh()
    found = []
    position = 0
    for cut in sorted(set(cuts)):
        for fact in ARRIVAL[position:cut]:
            found.extend(state.add([fact]))
        position = cut
        data = snapshot.dumps(state)
        state = snapshot.load_into(fresh(), data)  # a new worker takes the lease
    for fact in ARRIVAL[position:]:
        found.extend(state.add([fact]))
    found.extend(state.flush())
    assert signature(found) == UNINTERRUPTED
    assert UNINTERRUPTED  # the stream does raise findings


def test_snapshot_round_trip_keeps_keys_timers_watermark_and_seen_ids():
    state = fresh()
    for fact in ARRIVAL[:700]:
        state.add([fact])
    restored = snapshot.load_into(fresh(), snapshot.dumps(state))
    assert restored.keys() == state.keys()
    assert restored.watermark == state.watermark and restored.max_time == state.max_time
    assert restored.seen == state.seen
    assert restored.open_watches() == state.open_watches()
    live = {
        (state.logics[rid].deadline(s), rid, key)
        for rid, states in state.states.items()
        for key, s in states.items()
        if state.logics[rid].deadline(s) is not None
    }
    assert live and set(restored.timers) == live
    # Each restored timer stands in the live state too, or (a threshold finding waiting to resolve, whose
    # timer re-arms itself when facts came since it was set) an earlier one for the same key does.
    earliest = {}
    for deadline, rid, key in state.timers:
        earliest[rid, key] = min(deadline, earliest.get((rid, key), deadline))
    assert all(t in set(state.timers) or earliest[rid, key] <= t for t, rid, key in live)
    assert any(rid == "console-login-brute-force" for _, rid, _ in live)
    assert snapshot.dumps(restored) == snapshot.dumps(state)


def test_snapshot_rejects_foreign_bytes():
    for bad in (b"", b"hello", b"TWS\x09xx", b"TWS\x01not zlib"):
        with pytest.raises(snapshot.SnapshotError):
            snapshot.load_into(fresh(), bad)


def _owner(key: str) -> int:
    h = key_hash(key)
    return next(i for i, (lo, hi) in enumerate(CHILDREN) if lo <= h <= hi)


def test_split_for_child_hands_each_key_with_its_state_and_timers_to_exactly_one_child():
    facts = [f for f in instance_facts(3000, seed=5, rate=1.0, tagged=0.5) if PARENT[0] <= key_hash(f.key) <= PARENT[1]]
    cut = len(facts) // 2
    parent = fresh()
    before = []
    for fact in facts[:cut]:
        before.extend(parent.add([fact]))
    parent_keys = {k for states in parent.states.values() for k in states}
    assert parent.pending and parent.open_watches()

    children = [snapshot.load_into(fresh(), snapshot.split_for_child(parent, lo, hi)) for lo, hi in CHILDREN]
    child_keys = [{k for states in c.states.values() for k in states} for c in children]
    assert child_keys[0].isdisjoint(child_keys[1])
    assert child_keys[0] | child_keys[1] == parent_keys
    for (lo, hi), keys, child in zip(CHILDREN, child_keys, children, strict=True):
        assert all(lo <= key_hash(k) <= hi for k in keys)
        assert all(lo <= key_hash(entry[6].key) <= hi for entry in child.pending)
    assert len(children[0].pending) + len(children[1].pending) == len(parent.pending)
    assert children[0].open_watches() + children[1].open_watches() == parent.open_watches()

    # both sides continue: the children, each fed the keys of its range, find what the parent would
    after_children = []
    for fact in facts[cut:]:
        after_children.extend(children[_owner(fact.key)].add([fact]))
    for child in children:  # each shard's event time moves with its own facts; live, the wall clock evens them
        after_children.extend(child.observe(max(f.time for f in facts)))
        after_children.extend(child.flush())
    after_parent = []
    for fact in facts[cut:]:
        after_parent.extend(parent.add([fact]))
    after_parent.extend(parent.flush())
    assert after_parent
    assert sorted(signature(after_children)) == sorted(signature(after_parent))


def test_split_works_from_snapshot_bytes_too():
    parent = fresh()
    for fact in ARRIVAL[:400]:
        parent.add([fact])
    data = snapshot.dumps(parent)
    assert snapshot.split_for_child(data, 0, MAX_HASH) == snapshot.split_for_child(parent, 0, MAX_HASH)
    whole = snapshot.load_into(fresh(), snapshot.split_for_child(data, 0, MAX_HASH))
    assert whole.keys() == parent.keys()


# --- versions -------------------------------------------------------------------------------------

V1_SNAPSHOT = Path(__file__).resolve().parents[3] / "fixtures" / "snapshots" / "v1-mixed.snapshot"


def _blob(doc: dict, version: int) -> bytes:
    return snapshot.MAGIC + bytes([version]) + zlib.compress(orjson.dumps(doc))


def _held(state) -> dict[tuple[str, str], object]:
    return {(rule_id, key): s for rule_id, states in state.states.items() for key, s in states.items()}


def test_snapshots_are_written_in_the_current_version_with_each_rules_state_fields_named():
    state = fresh()
    for fact in ARRIVAL[:700]:
        state.add([fact])
    data = snapshot.dumps(state)
    assert data[3] == snapshot.VERSION == 4
    doc = snapshot.decode(data)
    assert doc["v"] == 4
    held = {rid: e for rid, e in doc["rules"].items() if e["keys"]}
    assert len(held) >= 7
    for rule_id, entry in held.items():
        assert entry["kind"] == state.logics[rule_id].kind
        assert entry["fields"] == list(state.logics[rule_id].state_fields)


def test_a_snapshot_from_a_newer_release_is_refused_saying_what_to_do():
    doc = snapshot.decode(snapshot.dumps(fresh())) | {"v": 5}
    for data in (_blob(doc, 5), doc):
        with pytest.raises(
            snapshot.SnapshotVersionError,
            match=r"v5 was written by a newer trailwarden; this build "
            r"reads v1 to v4\. Run the newer release",
        ):
            snapshot.load_into(fresh(), data)
    with pytest.raises(snapshot.SnapshotError, match="header says v4 and its content v5"):
        snapshot.load_into(fresh(), _blob(doc, 4))


def _as_v2(doc: dict) -> dict:
    """`doc` as the v2 release wrote it: threshold rows without the fields v3 added."""
    old = copy.deepcopy(doc) | {"v": 2}
    for entry in old["rules"].values():
        if entry["kind"] == "threshold":
            cut = len(entry["fields"]) - len(snapshot.V3_ADDED["threshold"])
            assert entry["fields"][cut:] == list(snapshot.V3_ADDED["threshold"])
            entry["fields"] = entry["fields"][:cut]
            for kv in entry["keys"]:
                kv[1] = kv[1][:cut]
    return old


def test_a_v2_snapshot_restores_with_no_threshold_finding_open_and_merges_with_a_v3_one():
    state = fresh()
    for fact in ARRIVAL[:700]:
        state.add([fact])
    doc = snapshot.decode(snapshot.dumps(state))
    assert doc["rules"]["console-login-brute-force"]["keys"]
    v2 = _as_v2(doc)
    restored = snapshot.load_into(fresh(), _blob(v2, 2))
    brute = restored.states["console-login-brute-force"]
    assert brute.keys() == state.states["console-login-brute-force"].keys()
    assert all(s.alerted is None for s in brute.values())
    assert _held(restored).keys() == _held(state).keys()
    child = snapshot.decode(snapshot.merge_for_child([_blob(_as_v2(doc), 2), snapshot.dumps(fresh())]))
    assert len(child["rules"]["console-login-brute-force"]["keys"]) == len(brute)


def _as_v3(doc: dict) -> dict:
    """`doc` as the v3 release wrote it: absence rows with their folded value and a `meta` list inline."""
    old = copy.deepcopy(doc) | {"v": 3}
    for entry in old["rules"].values():
        if entry["kind"] != "absence":
            continue
        shared = entry.pop("shared")
        fields = entry["fields"]
        v, e, w = fields.index("value"), fields.index("event_id"), fields.index("where")
        for kv in entry["keys"]:
            row = kv[1]
            row[v] = shared["value"][row[v]]
            row[e : w + 1] = [[row[e], *shared["where"][row[w]]]]
        entry["fields"] = [*fields[:e], "meta", *fields[w + 1 :]]
    return old


def test_a_v3_snapshot_restores_the_same_state_and_a_restored_state_writes_v4_again():
    state = fresh()
    for fact in ARRIVAL[:700]:
        state.add([fact])
    data = snapshot.dumps(state)
    doc = snapshot.decode(data)
    tags = doc["rules"]["ec2-instance-missing-required-tags"]
    assert tags["keys"] and len(tags["shared"]["value"]) < len(tags["keys"])  # equal tag sets written once
    restored = snapshot.load_into(fresh(), _blob(_as_v3(doc), 3))
    assert _held(restored) == _held(state)
    assert restored.open_watches() == state.open_watches() and restored.timers
    assert snapshot.dumps(restored) == data
    rest = ARRIVAL[700:]
    assert signature(run(restored, rest)) == signature(run(snapshot.load_into(fresh(), data), rest))


def test_state_fields_stored_in_another_order_are_read_by_name_and_a_missing_one_drops_only_that_rule(caplog):
    state = fresh()
    for fact in ARRIVAL[:700]:
        state.add([fact])
    doc = snapshot.decode(snapshot.dumps(state))
    brute, tags = doc["rules"]["console-login-brute-force"], doc["rules"]["ec2-instance-missing-required-tags"]
    assert brute["keys"] and tags["keys"]
    brute["fields"].reverse()
    for kv in brute["keys"]:
        kv[1].reverse()
    tags["fields"][0] = "renamed"
    restored = snapshot.load_into(fresh(), doc)
    assert restored.states["console-login-brute-force"] == state.states["console-login-brute-force"]
    assert not restored.states["ec2-instance-missing-required-tags"]
    assert "dropping state of rule ec2-instance-missing-required-tags" in caplog.text
    kept = {k: v for k, v in _held(state).items() if k[0] != "ec2-instance-missing-required-tags"}
    assert _held(restored) == kept


@pytest.mark.parametrize("merge", [snapshot.merge_for_child, consumer_merge], ids=["engine", "consumer"])
def test_a_child_merges_a_v1_hand_off_with_a_v2_one_during_a_rolling_upgrade(merge):
    """One parent still ran the v1 release (its hand-off is a v1 snapshot), the other this one."""
    old = snapshot.load_into(fresh(), V1_SNAPSHOT.read_bytes())
    new = fresh()
    for fact in instance_facts(300, seed=9, rate=1.0):
        new.add([Fact(fact.rule, "new:" + fact.key, fact.event_id, fact.time, fact.step, fields=fact.fields)])
    assert new.keys() and old.keys()
    child = snapshot.load_into(fresh(), merge([V1_SNAPSHOT.read_bytes(), snapshot.dumps(new)]))
    assert _held(child) == _held(old) | _held(new)
    assert len(child.pending) == len(old.pending) + len(new.pending)
    assert child.seen == old.seen | new.seen
