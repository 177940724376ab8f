"""The snapshot format of stage 2: the whole keyed state of one shard as bytes, and the hand-offs
to child shards after a reshard.

A snapshot holds every rule's keys and state, the facts still waiting for the watermark, the
watermark and largest event time, the sweep schedule and the seen-fact digests. Timers are not
stored: each is rebuilt from the state that set it. Bytes: b"TWS", a version byte, zlib(JSON).

Versions: v1 stored each key's state as a list of values in an order only the code knew. v2 also
names them once per rule (`fields`: the kind's State fields), so a later release can map them by name;
v1 snapshots are read by attaching the names v1 used. v3 adds two fields to threshold
state (its open finding, so that it can resolve: `alerted`, `alert_meta`, `repeats`); v1 and v2 rows are upgraded
with no finding open. v4 (written now) writes once what many keys share: a rule's `shared` tables hold each
distinct value of its kind's shared fields (an absence key's folded value, e.g. its tag set, and the fields of
the fact that opened its lapse but its event id: `where`), and the rows their index in the table; an absence
row's `meta` became `event_id` and `where`. v1 to v3 snapshots are upgraded to v4 when read, so any snapshot
an earlier release wrote loads. A version newer than this build reads is refused with SnapshotVersionError.

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
from functools import partial
from typing import Any

import orjson

from pipeline.stateful.facts import Fact, key_hash
from pipeline.stateful.state import KeyedState
from pipeline.stateful.steps import STEP_RANK

log = logging.getLogger(__name__)

MAGIC = b"TWS"
VERSION = 4  # written by this build, which reads 1 to 4

# The per-key layouts v1 wrote without naming them: by kind, and for a threshold rule by what it
# counted (a count rule's entries are [time, event id] pairs, a distinct rule's [value, time, event id]).
V1_FIELDS: dict[str, tuple[str, ...]] = {
    "absence": ("value", "active", "since", "fired", "last", "meta"),
    "sequence": ("firsts", "last"),
    "first_seen": ("first", "values", "last"),
}
V1_COUNT_FIELDS = ("entries", "quiet", "last", "meta")
V1_DISTINCT_FIELDS = ("values", "quiet", "last", "meta")


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this version can read."""


class SnapshotVersionError(SnapshotError):
    """A snapshot written by a newer release, in a format this build does not know."""


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
    """The snapshot of `state` as a dict (current version). It shares lists with the state: encode it
    before the state changes."""
    rules: dict[str, Any] = {}
    for rule_id, states in state.states.items():
        logic = state.logics[rule_id]
        dump = logic.dump
        keys = [[k, dump(s)] for k, s in states.items()]
        entry: dict[str, Any] = {"kind": logic.kind, "fields": list(logic.state_fields), "keys": keys}
        if logic.shared_fields:
            entry["shared"] = {
                name: _share(logic.state_fields.index(name), keys, partial(logic.dump_shared, name))
                for name in logic.shared_fields
            }
        rules[rule_id] = entry
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


def _share(i: int, keys: list[list[Any]], dump: Any) -> list[Any]:
    """Replace field `i` of every row by its index in the table returned: each distinct object dumped once,
    and objects that dump the same share one entry (so a restored state writes the snapshot it came from)."""
    by_id: dict[int, int] = {}
    by_json: dict[bytes, int] = {}
    held: list[Any] = []  # the objects indexed, kept alive so that their ids stay theirs
    table: list[Any] = []
    for _, row in keys:
        value = row[i]
        n = by_id.get(id(value))
        if n is None:
            held.append(value)
            dumped = dump(value)
            n = by_id[id(value)] = by_json.setdefault(orjson.dumps(dumped), len(table))
            if n == len(table):
                table.append(dumped)
        row[i] = n
    return table


def encode(d: dict[str, Any]) -> bytes:
    return MAGIC + bytes([VERSION]) + zlib.compress(orjson.dumps(d), 1)


def decode(data: bytes) -> dict[str, Any]:
    """The snapshot dict of `data`, in the current version whatever version wrote it."""
    if not isinstance(data, bytes | bytearray | memoryview) or bytes(data[:3]) != MAGIC or len(data) < 4:
        raise SnapshotError("not a trailwarden state snapshot")
    _check_version(data[3])
    try:
        d = orjson.loads(zlib.decompress(bytes(data[4:])))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"snapshot is corrupt: {exc}") from None
    if type(d) is not dict:
        raise SnapshotError("snapshot is corrupt: not an object")
    if d.get("v") != data[3]:
        raise SnapshotError(f"snapshot is corrupt: its header says v{data[3]} and its content v{d.get('v')}")
    return current(d)


def _check_version(version: Any) -> None:
    if type(version) is not int or version < 1:
        raise SnapshotError(f"snapshot is corrupt: version {version!r}")
    if version > VERSION:
        raise SnapshotVersionError(
            f"snapshot format v{version} was written by a newer trailwarden; this build reads v1 to v{VERSION}. "
            "Run the newer release (or delete the shard's snapshot to start it with empty state)"
        )


def current(d: dict[str, Any]) -> dict[str, Any]:
    """A snapshot dict of any version this build reads, in the current version (v1 is upgraded in place)."""
    _check_version(d.get("v"))
    if d["v"] == 1:
        for entry in d.get("rules", {}).values():
            fields = _v1_fields(entry.get("kind"), entry.get("keys", ()))
            entry["fields"] = None if fields is None else list(fields)
        d["v"] = 2
    if d["v"] == 2:
        for entry in d.get("rules", {}).values():
            _add_v3_fields(entry)
        d["v"] = 3
    if d["v"] == 3:
        for entry in d.get("rules", {}).values():
            if entry.get("kind") == "absence":
                _absence_v4(entry)
        d["v"] = 4
    return d


def _absence_v4(entry: dict[str, Any]) -> None:
    """A v3 absence entry as v4 writes it: `meta` split into `event_id` and `where`, and the folded value and
    `where` in shared tables (equal values once)."""
    fields = entry.get("fields")
    if not isinstance(fields, list) or "meta" not in fields or "value" not in fields:
        return  # the loader cannot map it and drops the rule's state, saying so
    m = fields.index("meta")
    entry["fields"] = [*fields[:m], "event_id", "where", *fields[m + 1 :]]
    tables: dict[str, list[Any]] = {"value": [], "where": []}
    seen: dict[str, dict[bytes, int]] = {"value": {}, "where": {}}

    def index(name: str, raw: Any) -> int:
        return seen[name].setdefault(orjson.dumps(raw), len(tables[name]))

    v = fields.index("value")
    for kv in entry.get("keys", ()):
        row = kv[1] if isinstance(kv, list) and len(kv) == 2 and isinstance(kv[1], list) else None
        if row is None or len(row) != len(fields):
            continue
        meta = row[m] if isinstance(row[m], list) and len(row[m]) == 6 else ["", "", "", "", "", ""]
        where = meta[1:]
        row[m : m + 1] = [meta[0], index("where", where)]
        if len(tables["where"]) < len(seen["where"]):
            tables["where"].append(where)
        value = row[v]
        row[v] = index("value", value)
        if len(tables["value"]) < len(seen["value"]):
            tables["value"].append(value)
    entry["shared"] = tables


# Fields v3 added, per kind, with the value a v2 row has for them.
V3_ADDED: dict[str, dict[str, Any]] = {
    "threshold": {"alerted": None, "alert_meta": ["", "", "", "", "", ""], "repeats": 0}
}


def _add_v3_fields(entry: dict[str, Any]) -> None:
    added = V3_ADDED.get(str(entry.get("kind")), {})
    fields = entry.get("fields")
    if not added or not isinstance(fields, list):
        return
    new = [name for name in added if name not in fields]
    entry["fields"] = fields + new
    for kv in entry.get("keys", ()):
        if isinstance(kv, list) and len(kv) == 2 and isinstance(kv[1], list):
            kv[1].extend(added[name] for name in new)


def _v1_fields(kind: Any, keys: Any) -> tuple[str, ...] | None:
    if kind != "threshold":
        return V1_FIELDS.get(kind)
    try:
        entry = next(row[0][0] for _, row in keys if row[0])  # one key's first counted entry
    except StopIteration:
        return V1_COUNT_FIELDS  # no key holds any: either layout reads nothing
    except (TypeError, ValueError, IndexError, KeyError):
        return None  # malformed: the loader drops the rule's state and says so
    return V1_DISTINCT_FIELDS if len(entry) == 3 else V1_COUNT_FIELDS


def dumps(state: KeyedState) -> bytes:
    """The shard's whole state as bytes."""
    with _no_gc():
        return encode(to_dict(state))


def load_into(state: KeyedState, data: bytes | dict[str, Any]) -> KeyedState:
    """Restore a snapshot (bytes or dict, any version this build reads) into a freshly built KeyedState
    (bound to the current rules and config). State of rules no longer configured, whose kind changed
    or whose state fields this build cannot map, is dropped and logged."""
    with _no_gc():
        if isinstance(data, dict):
            return _load(state, current(data), owned=False)
        return _load(state, decode(data), owned=True)


def _load(state: KeyedState, d: dict[str, Any], *, owned: bool) -> KeyedState:
    """Restore `d` into `state`; `owned`: `d` is this call's own (its rows may be rewritten in place)."""
    state.max_time = _inf(d.get("max_time"))
    state.watermark = _inf(d.get("watermark"))
    state._seq = int(d.get("seq", 0))
    state.next_sweep = {k: float(v) for k, v in d.get("next_sweep", {}).items() if k in state.logics}
    for rule_id, entry in d.get("rules", {}).items():
        if not entry.get("keys"):
            continue  # nothing to restore (and a v1 threshold rule without keys has no telling layout)
        logic = state.logics.get(rule_id)
        if logic is None or entry.get("kind") != logic.kind:
            log.warning(
                "snapshot: dropping state of rule %s (%d keys): not configured or kind changed",
                rule_id,
                len(entry.get("keys", ())),
            )
            continue
        states = state.states[rule_id]
        order = _field_order(entry.get("fields"), logic.state_fields)
        if order is None:
            log.warning(
                "snapshot: dropping state of rule %s (%d keys): it holds fields %s, this build keeps %s",
                rule_id,
                len(entry.get("keys", ())),
                entry.get("fields"),
                list(logic.state_fields),
            )
            continue
        try:
            shared = _shared_columns(logic, entry)
            plan = [(i, shared.get(i)) for i in (range(len(logic.state_fields)) if order is _SAME else order)]
            in_place = order is _SAME and (owned or not shared)
            load, deadline_of, timers = logic.load, logic.deadline, state.timers
            for key, dumped in entry["keys"]:
                if in_place:
                    for i, table in shared.items():
                        dumped[i] = table[dumped[i]]
                    s = load(dumped)
                else:
                    s = load([dumped[i] if t is None else t[dumped[i]] for i, t in plan])
                states[key] = s
                deadline = deadline_of(s)
                if deadline is not None:
                    timers.append((deadline, rule_id, key))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            log.warning("snapshot: dropping state of rule %s: %s", rule_id, exc)
            states.clear()
    heapq.heapify(state.timers)
    for seq, raw in enumerate(d.get("pending", ())):  # stored in heap order: seq only breaks ties
        fact = Fact.from_dict(raw)
        if fact.rule in state.logics:
            state.pending.append(
                (
                    fact.time,
                    STEP_RANK.get(fact.step, 1),
                    fact.rule,
                    fact.key,
                    fact.event_id,
                    -len(d["pending"]) + seq,
                    fact,
                )
            )
    heapq.heapify(state.pending)
    digests = array("q")
    for bucket, blob in d.get("seen", ()):
        # A bucket may be listed more than once (hand-offs of two parents joined): extend, never replace,
        # or the digests replaced would stay in `seen` unexpired and be missing from the next snapshot.
        arr = state.seen_buckets.setdefault(int(bucket), array("q"))
        added = array("q")
        added.frombytes(base64.b64decode(blob))
        arr.extend(added)
        digests.extend(added)
    state.seen.update(digests)
    return state


_SAME: list[int] = []


def _shared_columns(logic: Any, entry: dict[str, Any]) -> dict[int, list[Any]]:
    """Place in the stored row -> the values read back, for each shared table of a rule's entry."""
    fields, tables = entry.get("fields"), entry.get("shared") or {}
    if not isinstance(tables, dict) or not isinstance(fields, list):
        raise TypeError("shared tables are not an object")
    return {fields.index(name): [logic.load_shared(name, raw) for raw in table] for name, table in tables.items()}


def _field_order(stored: Any, wanted: tuple[str, ...]) -> list[int] | None:
    """Where each wanted field is in a stored row (_SAME if in place), or None if one is missing."""
    if not isinstance(stored, list | tuple):
        return None
    if tuple(stored) == wanted:
        return _SAME
    try:
        return [list(stored).index(name) for name in wanted]
    except ValueError:
        return None


def split_for_child(parent: KeyedState | bytes | dict[str, Any], start_hash: int, end_hash: int) -> bytes:
    """The snapshot a child shard starts from: the parent's keys whose hash is in [start_hash, end_hash]."""
    with _no_gc():
        d = (
            to_dict(parent)
            if isinstance(parent, KeyedState)
            else decode(parent)
            if not isinstance(parent, dict)
            else current(parent)
        )
        return _split(d, int(start_hash), int(end_hash))


def _split(d: dict[str, Any], start: int, end: int) -> bytes:
    def mine(key: Any) -> bool:
        return isinstance(key, str) and start <= key_hash(key) <= end

    child = dict(d)
    child["rules"] = {
        rid: {**e, "keys": [kv for kv in e.get("keys", ()) if mine(kv[0])]} for rid, e in d.get("rules", {}).items()
    }
    child["pending"] = [f for f in d.get("pending", ()) if mine(f.get("k"))]
    return encode(child)


def merge_for_child(parents: Iterable[KeyedState | bytes | dict[str, Any]]) -> bytes:
    """The snapshot a child shard starts from after MergeShards: the union of its parents' snapshots
    (or hand-offs). Keys, their state and pending facts are joined (a key found in two parents, which
    disjoint hash ranges rule out, keeps the first parent's entry, logged); seen-fact digests are joined
    per expiry bucket. The child's watermark is the smaller of the parents' (no fact a slower parent still
    buffers is judged late), its largest event time the larger; each rule's next sweep is the earlier."""
    with _no_gc():
        docs = [
            to_dict(p) if isinstance(p, KeyedState) else current(p) if isinstance(p, dict) else decode(p)
            for p in parents
        ]
        return encode(merge_docs(docs))


def _join_shared(into: dict[str, Any], entry: dict[str, Any]) -> list[tuple[int, int]]:
    """Append `entry`'s shared tables to `into`'s: (place in a row, how far its indices move) per table."""
    shift = []
    tables = into.setdefault("shared", {})
    for name, table in (entry.get("shared") or {}).items():
        joined = tables.setdefault(name, [])
        shift.append((entry["fields"].index(name), len(joined)))
        joined.extend(table)
    return [(i, offset) for i, offset in shift if offset]


def merge_docs(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The snapshot dict a child starts from after a merge, from its parents' (current version; see
    `merge_for_child`)."""
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
            if not entry.get("keys"):
                continue
            into = rules.setdefault(
                rule_id,
                {"kind": entry.get("kind"), "fields": entry.get("fields"), "keys": []}
                | ({"shared": {name: [] for name in entry["shared"]}} if entry.get("shared") else {}),
            )
            if entry.get("kind") != into["kind"] or entry.get("fields") != into["fields"]:
                log.warning(
                    "snapshot merge: rule %s holds %s %s in one parent and %s %s in another: keeping the first",
                    rule_id,
                    into["kind"],
                    into["fields"],
                    entry.get("kind"),
                    entry.get("fields"),
                )
                continue
            shift = _join_shared(into, entry)
            for kv in entry.get("keys", ()):
                if owner.setdefault((rule_id, kv[0]), n) != n:
                    clashes += 1
                    continue
                if shift:
                    row = list(kv[1])
                    for i, offset in shift:
                        row[i] += offset
                    kv = [kv[0], row]
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
    pending.sort(
        key=lambda f: (f.get("t", 0), STEP_RANK.get(f.get("s", ""), 1), f.get("r", ""), f.get("k", ""), f.get("i", ""))
    )
    return {
        "v": VERSION,
        "max_time": max(times) if times else None,
        "watermark": min(marks) if marks else None,
        "next_sweep": next_sweep,
        "seq": max((int(d.get("seq", 0)) for d in docs), default=0),
        "rules": rules,
        "pending": pending,
        "seen": [
            [b, base64.b64encode(array("q", sorted(digests)).tobytes()).decode()] for b, digests in sorted(seen.items())
        ],
    }
