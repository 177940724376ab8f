"""Keyed state: order independence within the lateness, at-most-once facts, TTL eviction, live ticks."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stateful.facts import Fact
from pipeline.stateful.synthetic import GOOD_TAGS, TAGS, mixed_facts
from tests.support.stateful import LATENESS, fresh, run, signature, stateful_rules

FACTS = mixed_facts(1500, seed=7)


def test_the_stream_raises_findings_of_every_kind():
    kinds = {f.context["kind"] for f in run(fresh(), FACTS)}
    assert kinds == {"absence", "threshold", "sequence", "first_seen"}


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32), st.floats(0.05, 0.95))
def test_out_of_order_within_lateness_gives_in_order_findings(seed, spread):
    rng = random.Random(seed)
    # each fact arrives up to spread * lateness after its event time: never behind the watermark
    arrival = sorted(FACTS, key=lambda f: f.time + rng.uniform(0, spread * LATENESS))
    assert arrival != FACTS
    shuffled = fresh()
    assert signature(run(shuffled, arrival)) == signature(run(fresh(), FACTS))
    assert shuffled.stats.late == 0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, len(FACTS)), min_size=1, max_size=4))
def test_facts_sent_again_after_a_router_crash_change_nothing(cuts):
    """The router re-reads records after its last checkpoint: a stretch of facts arrives twice, as new objects."""
    replayed = list(FACTS)
    for cut in sorted(cuts, reverse=True):
        back = max(0, cut - 50)
        replayed[cut:cut] = [Fact.from_bytes(f.to_bytes()) for f in FACTS[back:cut]]
    state = fresh()
    assert signature(run(state, replayed)) == signature(run(fresh(), FACTS))
    assert state.stats.duplicates == len(replayed) - len(FACTS)


def test_a_count_never_includes_the_same_event_twice():
    t = 1_720_000_000.0
    facts = [
        Fact("console-login-brute-force", "203.0.113.9", f"id-{i % 5}", t + i % 5, source_ip="203.0.113.9")
        for i in range(30)
    ]  # five distinct events, each delivered six times
    state = fresh()
    assert run(state, facts) == []
    assert state.stats.duplicates == 25


def test_ttl_eviction_is_counted_and_memory_stays_bounded():
    t0 = 1_720_000_000.0
    state = fresh()
    most_keys = most_seen = 0
    n = 20_000
    for i in range(n):  # a new address every 30 s for a week: threshold state lives window + dedup (70 min)
        state.add(
            [Fact("console-login-brute-force", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"e{i}", t0 + 30 * i)]
        )
        most_keys = max(most_keys, state.keys())
        most_seen = max(most_seen, len(state.seen))
    assert most_keys < 70 * 60 / 30 * 1.5
    assert most_seen < (70 * 60 + 2 * 3600) / 30 * 1.5  # seen ids live for the TTL, in hour buckets
    assert state.stats.evictions["console-login-brute-force"] > n * 0.9
    state.flush()  # the last facts were still waiting for the watermark
    assert state.stats.evictions["console-login-brute-force"] + state.keys() == n


def test_facts_older_than_the_state_ttl_are_dropped_as_expired():
    t0 = 1_720_000_000.0
    state = fresh()
    state.add([Fact("console-login-brute-force", "203.0.113.1", "new", t0 + 10 * 86400)])
    state.add([Fact("console-login-brute-force", "203.0.113.1", "old", t0)])
    assert state.stats.expired == 1


def _launch(t: float, eid: str = "launch-1") -> Fact:
    return Fact(
        TAGS,
        "111122223333:us-east-1:i-0123456789abcdef0",
        eid,
        t,
        "start",
        account="111122223333",
        region="us-east-1",
        principal="arn:aws:iam::111122223333:user/alice",
    )


def test_live_tick_fires_missing_tags_with_no_further_events():
    event_time, wall = 1_720_000_000.0, 1_800_000_000.0
    state = fresh(lateness=LATENESS, idle_after=10)
    assert state.add([_launch(event_time)], now=wall) == []
    assert state.tick(wall + 5) == []
    due = 900 + LATENESS  # grace, then the lateness the watermark keeps
    assert state.tick(wall + due - 1) == []
    fired = state.tick(wall + due + 1)
    assert [f.rule_id for f in fired] == [TAGS]
    assert state.tick(wall + due + 600) == []  # one finding per lapse


def test_live_tick_stays_quiet_when_tags_arrived():
    event_time, wall = 1_720_000_000.0, 1_800_000_000.0
    state = fresh()
    state.add([_launch(event_time)], now=wall)
    state.add([Fact(TAGS, _launch(0).key, "tags-1", event_time + 40, "tags", fields={"set": GOOD_TAGS})], now=wall + 40)
    assert state.tick(wall + 5000) == []
    assert state.open_watches() == {}


def test_a_fact_behind_the_watermark_is_applied_and_counted_late():
    t = 1_720_000_000.0
    state = fresh()
    state.add([Fact("console-login-brute-force", "203.0.113.1", "a", t + 3600)])
    fired = state.add([_launch(t)])  # its deadline is already behind the watermark: due at once
    assert state.stats.late == 1
    assert [f.rule_id for f in fired] == [TAGS]


def test_implausibly_future_facts_are_dropped_in_live_mode():
    state = fresh()
    state.add([_launch(1_900_000_000.0)], now=1_800_000_000.0)
    assert state.stats.future == 1 and state.keys() == 0


def test_rule_errors_are_counted_not_raised():
    state = fresh()

    def broken(*args):
        raise RuntimeError("rule bug")

    state.logics[TAGS].apply = broken  # type: ignore[method-assign]
    t = 1_720_000_000.0
    state.add([_launch(t), Fact("console-login-brute-force", "203.0.113.1", "a", t + 3600)])
    assert state.stats.rule_errors[TAGS] == 1
    assert "rule bug" in state.stats.last_errors[0]


def test_several_facts_of_one_event_count_once_each_even_when_sent_again():
    """One GetParameters call decrypting nine names is nine facts of one event for one key: stage 2 counts
    each name once, and the whole batch sent again (after a router crash, through the keyed stream's
    bytes) adds nothing."""
    from pipeline.cases import call
    from pipeline.event import Event
    from pipeline.ruletest import complete_record
    from pipeline.stateful.extractor import FactExtractor

    extractor = FactExtractor.for_rules([r for r in stateful_rules() if r.id == "ssm-securestring-harvesting"])
    batches = [
        call(
            "ssm.amazonaws.com",
            "GetParameters",
            {"names": [f"/creds/p{9 * b + i}" for i in range(9)], "withDecryption": True},
        )
        for b in range(3)
    ]
    facts = [
        f
        for b, partial in enumerate(batches)
        for f in extractor.facts(Event.from_record(complete_record(partial, b, "batches")))
    ]
    assert len(facts) == 27 and {f.nth for f in facts} == set(range(9))
    sent = [Fact.from_bytes(f.to_bytes()) for f in facts]
    state = fresh()
    findings = run(state, sent[:18] + sent[:18] + sent[18:])
    assert [f.rule_id for f in findings] == ["ssm-securestring-harvesting"]
    assert state.stats.duplicates == 18
