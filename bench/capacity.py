"""Capacity and monthly cost at 1k, 10k and 100k CloudTrail events/s, from figures measured in this run.

`python -m bench capacity` measures (1) the size of a CloudTrail event, raw and as the subscription's gzip
records carry it, over the vendored Stratus Red Team corpus; (2) one core's router throughput (decode, match
rules, fact extraction: `bench.engine.router_stage`) and the keyed facts per event and their bytes, over the
generated scenario; (3) one core's stage-2 rate (`bench.stateful.throughput`). From them it sizes each stream,
each service and the monthly bill by line, at the prices of `Prices`: named, for a region and a month, printed
with the figures. The default prices were written from memory and are not checked against AWS's pricing pages:
give yours as BENCH_PRICES="region=eu-west-1 as_of=2026-11 checked=true kinesis_shard_hour=0.017 ...".
BENCH_EVENTS sets the router's scenario volume (default 30,000). docs/capacity.md explains the model.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import orjson

from bench.engine import PER_RECORD, pin_one_core, router_stage
from bench.stateful import throughput as stateful_throughput
from pipeline.decode import DecodeStats, iter_decode
from pipeline.detector import Detector
from pipeline.encode import cwl_records
from pipeline.event import Event
from pipeline.scenario import build

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stratus-red-team" / "detonation-logs"
RATES = (1_000, 10_000, 100_000)  # CloudTrail events/s
SECONDS_PER_MONTH = 730 * 3600  # AWS bills a month as 730 hours
GB = 2**30

# --- prices -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prices:
    """The prices the model bills with, USD, each named, for one region at one date. The defaults were written
    from memory of AWS's list prices, without access to the pricing pages: check every one against
    aws.amazon.com/<service>/pricing for your region and date, and give the right ones (BENCH_PRICES)."""

    region: str = "us-east-1"
    as_of: str = "2025-06"  # the month the prices are assumed for
    checked: bool = False  # False: not compared with the pricing pages (the defaults)
    cwl_ingest_per_gb: float = 0.50  # CloudWatch Logs, standard log class, data ingested (uncompressed bytes)
    cwl_store_per_gb_month: float = 0.03  # CloudWatch Logs archived storage (compressed), per GB-month
    kinesis_shard_hour: float = 0.015  # Kinesis Data Streams, provisioned mode, per shard-hour
    kinesis_put_units_per_million: float = 0.014  # per million PUT payload units (25 KB each, a record rounded up)
    fargate_vcpu_hour: float = 0.04048  # Fargate Linux/x86, per vCPU-hour
    fargate_gb_hour: float = 0.004445  # Fargate Linux/x86, per GB-hour of memory
    firehose_per_gb: float = 0.029  # Firehose Direct PUT ingestion, records rounded up to 5 KB
    ddb_write_per_million: float = 0.625  # DynamoDB on-demand, per million write request units
    ddb_read_per_million: float = 0.125  # DynamoDB on-demand, per million read request units
    s3_put_per_thousand: float = 0.005  # S3 Standard PUT, COPY, POST, LIST requests per 1,000
    s3_store_per_gb_month: float = 0.023  # S3 Standard storage, first 50 TB, per GB-month
    cloudtrail_data_events_per_100k: float = (
        0.10  # CloudTrail data events (the first copy of management events is free)
    )

    @classmethod
    def parse(cls, text: str) -> Prices:
        """`name=value` pairs (spaces or commas between them) over the defaults, e.g. BENCH_PRICES="region=eu-west-1
        as_of=2026-11 checked=true kinesis_shard_hour=0.017"; ValueError naming an unknown name or a bad number."""
        known = {f.name: f for f in fields(cls)}
        given: dict[str, Any] = {}
        for pair in text.replace(",", " ").split():
            name, sep, value = pair.partition("=")
            if not sep or name not in known:
                raise ValueError(f"BENCH_PRICES: {pair!r} is not NAME=VALUE with NAME one of {', '.join(known)}")
            if name in ("region", "as_of"):
                given[name] = value
            elif name == "checked":
                given[name] = value.lower() in ("1", "true", "yes")
            else:
                try:
                    given[name] = float(value)
                except ValueError:
                    raise ValueError(f"BENCH_PRICES: {name}={value!r} is not a number (USD)") from None
        return replace(cls(), **given)

    def lines(self) -> list[str]:
        """Every price by name, and for when and where, as the bench prints them."""
        status = (
            "checked against the AWS pricing pages" if self.checked else "NOT checked against the AWS pricing pages"
        )
        out = [f"prices (USD): {self.region}, as of {self.as_of}, {status}"]
        default = type(self)()
        for f in fields(self):
            if f.type in ("float", float):
                value = getattr(self, f.name)
                note = f"  (default: {default.region}, {default.as_of})" if value == getattr(default, f.name) else ""
                out.append(f"  {f.name:34} {value:<10g}{note}")
        return out


PRICES = Prices()

# --- the model's assumptions (docs/capacity.md says why) ----------------------------------------------------
HEADROOM = 1.5  # streams sized for 1.5 x the mean rate (bursts, a lagging consumer catching up)
CPU_TARGET = 0.60  # the template's CpuTargetPercent: tasks run at 60 % of their vCPUs
ROUTER_TASK = (1.0, 2.0)  # vCPU, GB of one router task (the template's defaults)
STATEFUL_TASK = (0.5, 2.0)  # vCPU, GB of one stateful task
FINDINGS_PER_MILLION_EVENTS = 50  # findings archived per million events (a quiet organisation's order of magnitude)
FINDING_BYTES = 2_000  # one finding as JSON
CHECKPOINTS_PER_SHARD_SECOND = 1.0  # a KCL checkpoint (lease table write) per shard per batch, about one a second
LEASE_RENEWALS_PER_SHARD_SECOND = 0.3  # lease renewals (failover time 10 s, renewed every third of it)
SNAPSHOTS_PER_SHARD_SECOND = 1.0  # stage 2 writes its snapshot before each checkpoint (TRAILWARDEN_SNAPSHOT_SECONDS)
CWL_RETENTION_DAYS = 14  # the template's LogRetentionDays
CWL_COMPRESSION = 0.15  # stored log bytes per ingested byte (CloudWatch Logs compresses archived data)


@dataclass(frozen=True)
class Measured:
    event_bytes: float  # one CloudTrail event as compact JSON (the corpus)
    record_bytes: float  # one subscription record (gzip, PER_RECORD events) on the trail stream
    events_per_record: float
    router_eps_per_core: float  # events/s one core routes (decode, match rules, fact extraction)
    facts_per_event: float  # keyed facts the router puts on the keyed stream per event
    fact_bytes: float  # one keyed record (data + partition key)
    stateful_fps_per_core: float  # facts/s one core applies in stage 2
    corpus_events: int
    scenario_events: int


def corpus_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted(CORPUS.glob("*.json")):
        loaded = json.loads(path.read_text())
        events += loaded if isinstance(loaded, list) else loaded.get("Records", [])
    return events


def measure(scenario_events: int = 30_000, stateful_facts: int = 60_000) -> Measured:
    corpus = corpus_events()
    event_bytes = sum(len(orjson.dumps(e)) for e in corpus) / len(corpus)
    # As one busy account-region's log stream delivers them: PER_RECORD events a record (the corpus's regions and
    # accounts are scrubbed at random, which would split it into many small streams).
    one_stream = [{**e, "awsRegion": "us-east-1", "recipientAccountId": "111122223333"} for e in corpus]
    records = cwl_records(one_stream, per_record=PER_RECORD)
    record_bytes = sum(map(len, records)) / len(records)
    events_per_record = len(corpus) / len(records)

    scenario = build(scenario_events, seed=42)
    scenario_records = cwl_records(scenario.events, per_record=PER_RECORD)
    router_stage(scenario_records[: len(scenario_records) // 10], scenario.overrides)  # warm-up
    best = math.inf
    for _ in range(2):
        started = time.process_time()
        routed = router_stage(scenario_records, scenario.overrides)
        best = min(best, time.process_time() - started)
    detector, stats = Detector(overrides=scenario.overrides), DecodeStats()
    facts = fact_bytes = 0
    for i, blob in enumerate(scenario_records):
        for item in iter_decode(blob, f"record-{i}", stats):
            if type(item) is Event:
                for fact in detector.extractor.facts(item):
                    facts += 1
                    fact_bytes += len(fact.to_bytes()) + len(fact.partition_key.encode())
    stateful = stateful_throughput(stateful_facts)
    return Measured(
        event_bytes,
        record_bytes,
        events_per_record,
        routed / best,
        facts / routed,
        fact_bytes / max(facts, 1),
        stateful["facts_per_s"],
        len(corpus),
        routed,
    )


def shards(bytes_per_s: float, records_per_s: float, readers: int = 1) -> int:
    """Provisioned shards for this write load with HEADROOM: 1 MB/s and 1,000 records/s in, 2 MB/s out per shard
    shared by the polling readers."""
    need = max(bytes_per_s / 1e6, records_per_s / 1000, bytes_per_s * readers / 2e6) * HEADROOM
    return max(1, math.ceil(need))


def plan(rate: float, m: Measured, prices: Prices = PRICES) -> dict[str, Any]:
    """Sizes and monthly cost by line for `rate` CloudTrail events/s, billed at `prices`."""
    p = prices
    month = SECONDS_PER_MONTH
    trail_records = rate / m.events_per_record
    trail_shards = shards(rate / m.events_per_record * m.record_bytes, trail_records)
    facts = rate * m.facts_per_event
    keyed_shards = shards(facts * m.fact_bytes, facts)
    router_vcpu = rate / (m.router_eps_per_core * CPU_TARGET)
    router_tasks = min(max(1, math.ceil(router_vcpu / ROUTER_TASK[0])), trail_shards)
    stateful_vcpu = facts / (m.stateful_fps_per_core * CPU_TARGET)
    stateful_tasks = min(max(1, math.ceil(stateful_vcpu / STATEFUL_TASK[0])), keyed_shards)
    if router_tasks * ROUTER_TASK[0] < router_vcpu:  # more vCPU per task rather than more tasks than shards
        router_task_vcpu = 2 ** math.ceil(math.log2(router_vcpu / router_tasks))
    else:
        router_task_vcpu = ROUTER_TASK[0]
    ingested_gb = rate * m.event_bytes * month / GB
    findings = rate * FINDINGS_PER_MILLION_EVENTS / 1e6
    put_units = (trail_records * math.ceil(m.record_bytes / 25_000) + facts * math.ceil(m.fact_bytes / 25_000)) * month
    all_shards = trail_shards + keyed_shards
    router_hour = router_task_vcpu * p.fargate_vcpu_hour + ROUTER_TASK[1] * p.fargate_gb_hour
    stateful_hour = STATEFUL_TASK[0] * p.fargate_vcpu_hour + STATEFUL_TASK[1] * p.fargate_gb_hour
    fargate = 730 * (router_tasks * router_hour + stateful_tasks * stateful_hour)
    lease_writes = all_shards * (CHECKPOINTS_PER_SHARD_SECOND + LEASE_RENEWALS_PER_SHARD_SECOND) * month
    dedupe = findings * month  # one read before, one write after each finding
    archive_gb = ingested_gb * (m.record_bytes * 1.0 / (m.event_bytes * m.events_per_record))  # gzip like the records
    lines = {
        "CloudWatch Logs ingestion": ingested_gb * p.cwl_ingest_per_gb
        + ingested_gb * CWL_COMPRESSION * CWL_RETENTION_DAYS / 30 * p.cwl_store_per_gb_month,
        "Kinesis shard hours": all_shards * 730 * p.kinesis_shard_hour,
        "Kinesis PUT payload units": put_units / 1e6 * p.kinesis_put_units_per_million,
        "Fargate": fargate,
        "Firehose": findings * month * max(FINDING_BYTES, 5_000) / GB * p.firehose_per_gb,
        "DynamoDB": (lease_writes + dedupe) / 1e6 * p.ddb_write_per_million + dedupe / 1e6 * p.ddb_read_per_million,
        "S3": keyed_shards * SNAPSHOTS_PER_SHARD_SECOND * month / 1000 * p.s3_put_per_thousand
        + archive_gb * p.s3_store_per_gb_month,
    }
    return {
        "rate": rate,
        "trail_shards": trail_shards,
        "keyed_shards": keyed_shards,
        "router_tasks": router_tasks,
        "router_task_vcpu": router_task_vcpu,
        "router_vcpu": router_vcpu,
        "stateful_tasks": stateful_tasks,
        "stateful_vcpu": stateful_vcpu,
        "memory_gb": router_tasks * ROUTER_TASK[1] + stateful_tasks * STATEFUL_TASK[1],
        "ingested_gb": ingested_gb,
        "lines": lines,
        "total": sum(lines.values()),
        "data_events_if_all": rate * month / 1e5 * p.cloudtrail_data_events_per_100k,
    }


def report(m: Measured, prices: Prices = PRICES) -> str:
    out = [
        f"measured: a CloudTrail event is {m.event_bytes:,.0f} bytes of JSON ({m.corpus_events} events of the corpus); "
        f"a subscription record of {m.events_per_record:.0f} events is {m.record_bytes:,.0f} bytes of gzip",
        f"measured: one core routes {m.router_eps_per_core:,.0f} events/s and puts {m.facts_per_event:.3f} keyed facts "
        f"per event ({m.fact_bytes:,.0f} bytes each); stage 2 applies {m.stateful_fps_per_core:,.0f} facts/s per core",
        f"streams sized at {HEADROOM} x the rate, tasks at {CPU_TARGET:.0%} CPU",
        *prices.lines(),
        "",
    ]
    plans = [plan(rate, m, prices) for rate in RATES]
    header = f"{'':34}" + "".join(f"{p['rate']:>14,.0f}/s" for p in plans)
    out.append(header)
    rows: list[tuple[str, Any]] = [
        ("trail / keyed shards", lambda p: f"{p['trail_shards']} / {p['keyed_shards']}"),
        ("router tasks x vCPU", lambda p: f"{p['router_tasks']} x {p['router_task_vcpu']:g}"),
        ("stateful tasks x vCPU", lambda p: f"{p['stateful_tasks']} x {STATEFUL_TASK[0]:g}"),
        ("vCPU needed (router + stateful)", lambda p: f"{p['router_vcpu']:.2f} + {p['stateful_vcpu']:.2f}"),
        ("task memory GB", lambda p: f"{p['memory_gb']:g}"),
        ("CloudWatch Logs GB ingested", lambda p: f"{p['ingested_gb']:,.0f}"),
    ]
    for label, cell in rows:
        out.append(f"{label:34}" + "".join(f"{cell(p):>16}" for p in plans))
    out.append(f"monthly cost, USD, at {prices.region} prices as of {prices.as_of}")
    for line in plans[0]["lines"]:
        out.append(f"  {line:32}" + "".join(f"{p['lines'][line]:>16,.0f}" for p in plans))
    out.append(f"  {'total':32}" + "".join(f"{p['total']:>16,.0f}" for p in plans))
    for p in plans:
        top = max(p["lines"], key=p["lines"].get)
        out.append(f"at {p['rate']:,.0f}/s, {top} is {p['lines'][top] / p['total']:.0%} of the bill")
    out.append(
        "if every event were a CloudTrail data event, CloudTrail itself would add: "
        + ", ".join(f"{p['data_events_if_all']:,.0f}" for p in plans)
        + " USD a month"
    )
    return "\n".join(out)


def run() -> None:
    try:  # before the measuring: a typo stops it at once
        prices = Prices.parse(os.environ.get("BENCH_PRICES", ""))
    except ValueError as error:
        raise SystemExit(f"bench capacity: {error}") from None
    where = pin_one_core()
    n = int(os.environ.get("BENCH_EVENTS", "30000"))
    print(f"{where}; {n:,} scenario events for the router figure")
    print(report(measure(scenario_events=n), prices))


if __name__ == "__main__":
    run()
