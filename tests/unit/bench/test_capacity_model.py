"""The capacity model of `python -m bench capacity` (docs/capacity.md), on fixed figures: no timing here, the
measured ones come from the bench. The corpus it sizes events from is the vendored one."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from bench.capacity import PRICES, RATES, Measured, Prices, corpus_events, plan, report, shards

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


def test_prices_are_named_parameters_for_a_region_and_a_date() -> None:
    given = Prices.parse("region=eu-west-1, as_of=2026-11 checked=true cwl_ingest_per_gb=1.0")
    assert (given.region, given.as_of, given.checked, given.cwl_ingest_per_gb) == ("eu-west-1", "2026-11", True, 1.0)
    assert given.kinesis_shard_hour == PRICES.kinesis_shard_hour
    assert Prices.parse("") == PRICES and not PRICES.checked
    lines = given.lines()
    assert lines[0] == "prices (USD): eu-west-1, as of 2026-11, checked against the AWS pricing pages"
    assert any(line.split()[:2] == ["cwl_ingest_per_gb", "1"] and "default" not in line for line in lines)
    assert any(line.split()[0] == "kinesis_shard_hour" and f"(default: {PRICES.region}" in line for line in lines)
    assert "NOT checked against the AWS pricing pages" in PRICES.lines()[0]
    for bad, named in (("cwl_ingest=1", "cwl_ingest"), ("fargate_gb_hour=cheap", "fargate_gb_hour")):
        with pytest.raises(ValueError, match=named):
            Prices.parse(bad)


def test_each_line_is_billed_at_the_prices_given() -> None:
    base = plan(10_000, FIGURES)
    dearer = plan(
        10_000, FIGURES, replace(PRICES, cwl_ingest_per_gb=2 * PRICES.cwl_ingest_per_gb, kinesis_shard_hour=0)
    )
    assert dearer["lines"]["Kinesis shard hours"] == 0
    ingest = base["ingested_gb"] * PRICES.cwl_ingest_per_gb
    assert dearer["lines"]["CloudWatch Logs ingestion"] == pytest.approx(
        base["lines"]["CloudWatch Logs ingestion"] + ingest
    )
    assert dearer["lines"]["Fargate"] == base["lines"]["Fargate"] and dearer["trail_shards"] == base["trail_shards"]
    printed = report(FIGURES, replace(PRICES, region="eu-west-1", as_of="2026-11"))
    assert "monthly cost, USD, at eu-west-1 prices as of 2026-11" in printed
    assert "prices (USD): eu-west-1, as of 2026-11, NOT checked" in printed
