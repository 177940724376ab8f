"""Snapshots: the whole keyed state of one shard as bytes, and the hand-off to child shards.

A snapshot holds every rule's keys and state, the facts still waiting for the watermark, the
watermark and largest event time, the sweep schedule and the seen-fact digests. Timers are not
stored: each is rebuilt from the state that set it. Layout: b"TWS" + version byte + zlib(JSON).

On a reshard the stage-2 processor hands each child shard `split_for_child(parent, start, end)`:
the parent's keys (with their state, pending facts and therefore timers) whose Kinesis hash,
int(md5(partition key)), falls in the child's [start, end] hash key range. Seen-fact digests
cannot be mapped to keys, so both children get all of them (they expire with the rules' TTL).
After a merge, `merge_for_child(parents)` gives the child the union of its parents' hand-offs (their
keys are disjoint: each key hashes into one parent's range).
"""

from __future__ import annotations

import base64
import gc
import heapq
import logging
import math
import zlib
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from pipeline.stateful.facts import Fact, key_hash
from pipeline.stateful.kinds import STEP_RANK
from pipeline.stateful.state import KeyedState

log = logging.getLogger(__name__)

MAGIC = b"TWS"
VERSION = 1


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this version can read."""


@contextmanager
def _no_gc() -> Iterator[None]:
    """Snapshots build and drop millions of small containers and no cycles: the cyclic collector
    would only rescan the whole heap over and over (4x slower at a million keys)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _num(x: float) -> float | None:
    return None if math.isinf(x) else x


def _inf(x: Any) -> float:
    return -math.inf if x is None else float(x)


def to_dict(state: KeyedState) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for rule_id, states in state.states.items():
        logic = state.logics[rule_id]
        rules[rule_id] = {"kind": logic.rule.kind, "keys": [[k, logic.dump(s)] for k, s in states.items()]}
    seen = [[b, base64.b64encode(arr.tobytes()).decode()] for b, arr in state.seen_buckets.items()]
    return {
        "v": VERSION,
        "max_time": _num(state.max_time),
        "watermark": _num(state.watermark),
        "next_sweep": state.next_sweep,
        "seq": state._seq,
        "rules": rules,
        "pending": [entry[6].to_dict() for entry in sorted(state.pending)],
        "seen": seen,
    }


def encode(d: dict[str, Any]) -> bytes:
    return MAGIC + bytes([VERSION]) + zlib.compress(orjson.dumps(d), 1)


def decode(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview) or bytes(data[:3]) != MAGIC or len(data) < 4:
        raise SnapshotError("not a trailwarden state snapshot")
    if data[3] != VERSION:
        raise SnapshotError(f"snapshot version {data[3]} is not supported (this build reads {VERSION})")
    try:
        d = orjson.loads(zlib.decompress(bytes(data[4:])))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"snapshot is corrupt: {exc}") from None
    if type(d) is not dict:
        raise SnapshotError("snapshot is corrupt: not an object")
    return d


def dumps(state: KeyedState) -> bytes:
    """The shard's whole state as bytes."""
    with _no_gc():
        return encode(to_dict(state))


def load_into(state: KeyedState, data: bytes | dict[str, Any]) -> KeyedState:
    """Restore a snapshot into a freshly built KeyedState (bound to the current rules and config).
    State of rules no longer configured, or whose kind changed, is dropped and logged."""
    with _no_gc():
        return _load(state, decode(data) if not isinstance(data, dict) else data)


def _load(state: KeyedState, d: dict[str, Any]) -> KeyedState:
    state.max_time = _inf(d.get("max_time"))
    state.watermark = _inf(d.get("watermark"))
    state._seq = int(d.get("seq", 0))
    state.next_sweep = {k: float(v) for k, v in d.get("next_sweep", {}).items() if k in state.logics}
    for rule_id, entry in d.get("rules", {}).items():
        logic = state.logics.get(rule_id)
        if logic is None or entry.get("kind") != logic.rule.kind:
            log.warning("snapshot: dropping state of rule %s (%d keys): not configured or kind changed",
                        rule_id, len(entry.get("keys", ())))
            continue
        states = state.states[rule_id]
        try:
            for key, dumped in entry["keys"]:
                s = logic.load(dumped)
                states[key] = s
                deadline = logic.deadline(s)
                if deadline is not None:
                    state.timers.append((deadline, rule_id, key))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            log.warning("snapshot: dropping state of rule %s: %s", rule_id, exc)
            states.clear()
    heapq.heapify(state.timers)
    for seq, raw in enumerate(d.get("pending", ())):  # stored in heap order: seq only breaks ties
        fact = Fact.from_dict(raw)
        if fact.rule in state.logics:
            state.pending.append((fact.time, STEP_RANK.get(fact.step, 1), fact.rule, fact.key, fact.event_id,
                                  -len(d["pending"]) + seq, fact))
    heapq.heapify(state.pending)
    for bucket, blob in d.get("seen", ()):
        # A bucket may be listed more than once (hand-offs of two parents joined): extend, never replace,
        # or the digests replaced would stay in `seen` unexpired and be missing from the next snapshot.
        arr = state.seen_buckets.setdefault(int(bucket), array("q"))
        added = array("q")
        added.frombytes(base64.b64decode(blob))
        arr.extend(added)
        state.seen.update(added)
    return state


def split_for_child(parent: KeyedState | bytes | dict[str, Any], start_hash: int, end_hash: int) -> bytes:
    """The snapshot a child shard starts from: the parent's keys whose hash is in [start_hash, end_hash]."""
    with _no_gc():
        d = to_dict(parent) if isinstance(parent, KeyedState) else decode(parent) if not isinstance(parent, dict) \
            else parent
        return _split(d, int(start_hash), int(end_hash))


def _split(d: dict[str, Any], start: int, end: int) -> bytes:
    def mine(key: Any) -> bool:
        return isinstance(key, str) and start <= key_hash(key) <= end

    child = dict(d)
    child["rules"] = {rid: {"kind": e.get("kind"), "keys": [kv for kv in e.get("keys", ()) if mine(kv[0])]}
                      for rid, e in d.get("rules", {}).items()}
    child["pending"] = [f for f in d.get("pending", ()) if mine(f.get("k"))]
    return encode(child)


def merge_for_child(parents: Iterable[KeyedState | bytes | dict[str, Any]]) -> bytes:
    """The snapshot a child shard starts from after MergeShards: the union of its parents' snapshots
    (or hand-offs). Keys, their state and pending facts are joined (a key found in two parents, which
    disjoint hash ranges rule out, keeps the first parent's entry, logged); seen-fact digests are joined
    per expiry bucket. The child's watermark is the smaller of the parents' (no fact a slower parent still
    buffers is judged late), its largest event time the larger; each rule's next sweep is the earlier."""
    with _no_gc():
        docs = [to_dict(p) if isinstance(p, KeyedState) else p if isinstance(p, dict) else decode(p) for p in parents]
        return encode(_merge(docs))


def _merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    times = [d["max_time"] for d in docs if d.get("max_time") is not None]
    marks = [d["watermark"] for d in docs if d.get("watermark") is not None]
    rules: dict[str, dict[str, Any]] = {}
    owner: dict[tuple[str, Any], int] = {}  # (rule, key) -> the parent whose entry the child keeps
    next_sweep: dict[str, float] = {}
    seen: dict[int, set[int]] = {}
    pending: list[dict[str, Any]] = []
    clashes = 0
    for n, d in enumerate(docs):
        for rule_id, entry in d.get("rules", {}).items():
            into = rules.setdefault(rule_id, {"kind": entry.get("kind"), "keys": []})
            if entry.get("kind") != into["kind"]:
                log.warning("snapshot merge: rule %s has kind %s in one parent and %s in another: keeping %s",
                            rule_id, into["kind"], entry.get("kind"), into["kind"])
                continue
            for kv in entry.get("keys", ()):
                if owner.setdefault((rule_id, kv[0]), n) != n:
                    clashes += 1
                    continue
                into["keys"].append(kv)
        for rule_id, due in d.get("next_sweep", {}).items():
            next_sweep[rule_id] = min(float(due), next_sweep.get(rule_id, math.inf))
        for bucket, blob in d.get("seen", ()):
            arr = array("q")
            arr.frombytes(base64.b64decode(blob))
            seen.setdefault(int(bucket), set()).update(arr)
    for n, d in enumerate(docs):
        pending.extend(f for f in d.get("pending", ()) if owner.setdefault((f.get("r"), f.get("k")), n) == n)
    if clashes:
        log.warning("snapshot merge: %d keys held by more than one parent: kept the first parent's", clashes)
    pending.sort(key=lambda f: (f.get("t", 0), STEP_RANK.get(f.get("s", ""), 1), f.get("r", ""), f.get("k", ""),
                                f.get("i", "")))
    return {
        "v": VERSION,
        "max_time": max(times) if times else None,
        "watermark": min(marks) if marks else None,
        "next_sweep": next_sweep,
        "seq": max((int(d.get("seq", 0)) for d in docs), default=0),
        "rules": rules,
        "pending": pending,
        "seen": [[b, base64.b64encode(array("q", sorted(digests)).tobytes()).decode()]
                 for b, digests in sorted(seen.items())],
    }
