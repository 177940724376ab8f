"""A snapshot written by the first release (format v1) restores into today's code: the same keys and
state, timers, watermark, pending facts and seen-fact digests, and then the same findings.

The fixture in tests/fixtures/snapshots/ was written once, with the code of the release that wrote v1
snapshots, by running this file (`.venv/bin/python
tests/unit/pipeline/stateful/test_stateful_snapshot_v1.py`): generated facts for every stateful rule kind,
arriving out of order within the allowed lateness, plus a brute-force burst, a spraying burst and an
access-key sequence straddling the cut. The facts before the cut went through a keyed state saved as the KCL
processor saves it (`snapshot.dumps`); the JSON records the configuration, the facts after the cut (a stretch
of those before it sent again, as after a stage-1 crash), the state that release restored from the bytes and
the findings it raised from there to the end of input. The fixture is never rewritten: running this file
refuses once the code writes another format."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.finding import Finding
from pipeline.rules import builtin_rules
from pipeline.stateful import absence, first_seen, sequence, snapshot, threshold
from pipeline.stateful.facts import Fact
from pipeline.stateful.kinds import StatefulRule
from pipeline.stateful.state import KeyedState

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "snapshots"
SNAPSHOT = FIXTURES / "v1-mixed.snapshot"
RECORDED = FIXTURES / "v1-mixed.json"
RESENT = 20  # facts before the cut delivered again after it
# What of a finding comes from the state and the facts (title, severity and attack come from the rule).
FINDING_FIELDS = (
    "id",
    "rule_id",
    "summary",
    "account",
    "region",
    "principal",
    "source_ip",
    "user_agent",
    "resources",
    "event_ids",
    "event_time",
    "dedup_key",
    "window_start",
    "context",
)


def fresh(config: dict[str, Any]) -> KeyedState:
    rules = [r for r in builtin_rules() if isinstance(r, StatefulRule)]
    return KeyedState.for_rules(rules, Config.from_dict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# The classes of a key's state in the v1 release, and the ones that hold it now (same attributes).
V1_STATE_TYPES = {
    "AbsenceState": absence.State,
    "CountState": threshold.CountState,
    "DistinctState": threshold.DistinctState,
    "SequenceState": sequence.State,
    "FirstSeenState": first_seen.State,
}
NOW = {now: v1 for v1, now in V1_STATE_TYPES.items()}


# Attributes added since v1, with the value a key restored from v1 has (threshold: no finding open).
ADDED_SINCE_V1 = {"alerted": None, "alert_meta": ("", "", "", "", "", ""), "repeats": 0}


def key_state(s: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A key's state as its v1 attributes (`fields`, its rule's snapshot fields), in plain JSON (its type by its
    v1 name); those added since must hold their restored values."""
    for name, value in ADDED_SINCE_V1.items():
        assert getattr(s, name, value) == value, name
    return _comparable(
        {
            "type": NOW.get(type(s), type(s).__name__),
            **{name: _plain(getattr(s, name)) for name in fields if name not in ADDED_SINCE_V1},
        }
    )


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """An absence key whose lapse is closed no longer keeps the metadata of the fact that opened it (only an
    open lapse's finding reads it): what v1 restored there is not compared."""
    if doc["type"] == "AbsenceState" and doc.get("since") is None:
        doc.pop("meta", None)
    return doc


def state_doc(state: KeyedState) -> dict[str, Any]:
    """What a restored state holds, in plain JSON (a copy: the state goes on changing)."""
    return {
        "watermark": state.watermark,
        "max_time": state.max_time,
        "next_sweep": dict(sorted(state.next_sweep.items())),
        "keys": {
            rid: {
                k: key_state(s, snapshot.V1_FIELDS.get(state.logics[rid].kind, state.logics[rid].state_fields))
                for k, s in sorted(states.items())
            }
            for rid, states in sorted(state.states.items())
            if states
        },
        "timers": sorted([list(t) for t in state.timers]),
        "pending": [entry[6].to_dict() for entry in sorted(state.pending)],
        "seen_buckets": {str(b): sorted(arr) for b, arr in sorted(state.seen_buckets.items())},
        "open_watches": dict(sorted(state.open_watches().items())),
    }


def finding_doc(f: Finding) -> dict[str, Any]:
    d = f.to_dict()
    return {name: d[name] for name in FINDING_FIELDS}


def test_a_v1_snapshot_restores_the_state_the_v1_release_restored() -> None:
    recorded = json.loads(RECORDED.read_text())
    restored = snapshot.load_into(fresh(recorded["config"]), SNAPSHOT.read_bytes())
    now = state_doc(restored)
    assert recorded["restored"]["keys"] and recorded["restored"]["timers"] and recorded["restored"]["pending"]
    for part, want in recorded["restored"].items():
        if part == "keys":
            want = {rid: {k: _comparable(doc) for k, doc in keys.items()} for rid, keys in want.items()}
        assert now[part] == want, part


def test_a_v1_snapshot_then_the_rest_of_the_input_gives_the_findings_of_the_v1_release() -> None:
    recorded = json.loads(RECORDED.read_text())
    restored = snapshot.load_into(fresh(recorded["config"]), SNAPSHOT.read_bytes())
    found = [f for raw in recorded["after"] for f in restored.add([Fact.from_dict(raw)])] + restored.flush()
    assert len({f["rule_id"] for f in recorded["findings_after"]}) >= 7  # every kind fires after the cut
    # The v1 release raised no resolutions (they came later): its findings are today's open ones, and each
    # resolution today resolves one of them.
    opened = [f for f in found if f.status == "open"]
    assert [finding_doc(f) for f in opened] == recorded["findings_after"]
    assert {f.id for f in found if f.status == "resolved"} <= {f.id for f in opened}
    assert restored.stats.duplicates == recorded["duplicates_after"] == RESENT


# --- how the fixture was written (once, with the v1 release) --------------------------------------


def _stream(config: dict[str, Any]) -> tuple[list[Fact], int]:
    """(the facts in arrival order, the index of the cut)."""
    from pipeline.stateful.synthetic import mixed_facts

    facts = mixed_facts(300, seed=5, mean_gap=8.0)
    middle = facts[len(facts) // 2].time
    acct, ip = "100000000000", "203.0.113.250"
    meta = {"account": acct, "region": "us-east-1", "user_agent": "aws-cli/2.17.13"}
    for i in range(10):  # ten failures over 90 s: five before the cut, five after
        facts.append(
            Fact("console-login-brute-force", ip, f"brute-{i:02d}", middle - 45 + 10 * i, source_ip=ip, **meta)
        )
    for i in range(5):
        facts.append(
            Fact(
                "console-login-password-spraying",
                "203.0.113.251",
                f"spray-{i:02d}",
                middle - 50 + 25 * i,
                value=f"victim{i}",
                source_ip="203.0.113.251",
                **meta,
            )
        )
    admin = f"arn:aws:iam::{acct}:user/mallory"
    facts.append(
        Fact(
            "iam-access-key-then-privilege",
            f"{acct}:etl-runner",
            "seq-first",
            middle - 300,
            "first",
            principal=admin,
            **meta,
        )
    )
    facts.append(
        Fact(
            "iam-access-key-then-privilege",
            f"{acct}:etl-runner",
            "seq-then",
            middle + 400,
            "then",
            fields={"action": "CreateLoginProfile"},
            principal=admin,
            **meta,
        )
    )
    rng = random.Random(5)
    arrival = sorted(facts, key=lambda f: f.time + rng.uniform(0, 0.9 * config["engine"]["allowed_lateness"]))
    cut = next(i for i, f in enumerate(arrival) if f.time >= middle)
    return arrival, cut


def write() -> int:
    if snapshot.VERSION != 1:
        print(
            f"this code writes snapshot version {snapshot.VERSION}; the v1 fixture comes from the release "
            "that wrote v1 and is never rewritten",
            file=sys.stderr,
        )
        return 2
    from pipeline.stateful.synthetic import FAST

    config: dict[str, Any] = {"engine": {"allowed_lateness": 120, "idle_after": 10}, "rules": FAST}
    arrival, cut = _stream(config)
    state = fresh(config)
    before = [f for fact in arrival[:cut] for f in state.add([fact])]
    data = snapshot.dumps(state)
    restored = snapshot.load_into(fresh(config), data)
    after = [Fact.from_bytes(f.to_bytes()) for f in arrival[cut - RESENT : cut]] + arrival[cut:]
    expected = state_doc(restored)
    found = [f for fact in after for f in restored.add([fact])] + restored.flush()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_bytes(data)
    doc = {
        "about": (
            "written by tests/unit/pipeline/stateful/test_stateful_snapshot_v1.py with the release that "
            "wrote v1 snapshots"
        ),
        "config": config,
        "findings_before_cut": len(before),
        "after": [f.to_dict() for f in after],
        "restored": expected,
        "duplicates_after": restored.stats.duplicates,
        "findings_after": [finding_doc(f) for f in found],
    }
    RECORDED.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(
        f"wrote {SNAPSHOT.name} ({len(data)} bytes: {sum(map(len, expected['keys'].values()))} keys, "
        f"{len(expected['timers'])} timers, {len(expected['pending'])} pending facts, {len(restored.seen)} "
        f"seen-fact digests) and {RECORDED.name} ({len(found)} findings after the cut)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(write())
