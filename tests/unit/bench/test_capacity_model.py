"""The capacity model of `python -m bench capacity` (docs/capacity.md), on fixed figures: no timing here, the
measured ones come from the bench. The corpus it sizes events from is the vendored one."""

from __future__ import annotations

import itertools

from bench.capacity import RATES, Measured, corpus_events, plan, shards

FIGURES = Measured(
    event_bytes=1_340,
    record_bytes=15_464,
    events_per_record=62,
    router_eps_per_core=16_000,
    facts_per_event=0.5,
    fact_bytes=600,
    stateful_fps_per_core=6_500,
    corpus_events=310,
    scenario_events=30_000,
)


def test_the_corpus_gives_the_event_size() -> None:
    events = corpus_events()
    assert len(events) > 100 and all("eventName" in e for e in events)


def test_shards_follow_the_binding_kinesis_limit() -> None:
    assert shards(0, 0) == 1
    assert shards(10e6, 100) == 15  # 10 MB/s in: 10 shards, with 1.5 headroom
    assert shards(1e6, 20_000) == 30  # 20,000 records/s: 20 shards
    assert shards(3e6, 100, readers=2) == 5  # 3 MB/s read twice at 2 MB/s a shard: 3, with headroom 4.5


def test_sizes_grow_with_the_rate_and_the_lines_add_up() -> None:
    plans = [plan(rate, FIGURES) for rate in RATES]
    for small, large in itertools.pairwise(plans):
        assert large["trail_shards"] >= small["trail_shards"] and large["keyed_shards"] > small["keyed_shards"]
        assert large["total"] > small["total"]
    for p in plans:
        assert abs(sum(p["lines"].values()) - p["total"]) < 1e-6
        assert p["router_tasks"] <= p["trail_shards"] and p["stateful_tasks"] <= p["keyed_shards"]
        assert p["router_tasks"] * p["router_task_vcpu"] >= p["router_vcpu"]
    # 100,000 events/s of 1,340 bytes: 100000 * 1340 * 730 * 3600 / 2**30 GB ingested, at $0.50 a GB.
    assert round(plans[-1]["ingested_gb"]) == round(100_000 * 1_340 * 730 * 3600 / 2**30)
    assert max(plans[-1]["lines"], key=plans[-1]["lines"].get) == "CloudWatch Logs ingestion"
