"""Capacity and monthly cost at 1k, 10k and 100k CloudTrail events/s, from figures measured in this run.

`python -m bench capacity` measures (1) the size of a CloudTrail event, raw and as the subscription's gzip
records carry it, over the vendored Stratus Red Team corpus; (2) one core's router throughput (decode, match
rules, fact extraction: `bench.engine.router_stage`) and the keyed facts per event and their bytes, over the
generated scenario; (3) one core's stage-2 rate (`bench.stateful.throughput`). From them it sizes each stream,
each service and the monthly bill by line, with the prices below. docs/capacity.md explains the model and its
assumptions; the prices are AWS list prices for us-east-1 (see PRICES_AS_OF), to be checked for your region.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
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

# --- prices: AWS list prices, us-east-1, as published on each service's pricing page -----------------------
PRICES_AS_OF = "2025-06"
CWL_INGEST_PER_GB = 0.50  # CloudWatch Logs, standard log class, data ingested (uncompressed bytes)
CWL_STORE_PER_GB_MONTH = 0.03  # CloudWatch Logs archived storage (compressed), per GB-month
KINESIS_SHARD_HOUR = 0.015  # Kinesis Data Streams, provisioned mode, per shard-hour
KINESIS_PUT_UNITS_PER_MILLION = 0.014  # per million PUT payload units (25 KB each, a record rounded up)
FARGATE_VCPU_HOUR = 0.04048  # Fargate Linux/x86, per vCPU-hour
FARGATE_GB_HOUR = 0.004445  # Fargate Linux/x86, per GB-hour of memory
FIREHOSE_PER_GB = 0.029  # Firehose Direct PUT ingestion, records rounded up to 5 KB
DDB_WRITE_PER_MILLION = 0.625  # DynamoDB on-demand, per million write request units
DDB_READ_PER_MILLION = 0.125  # DynamoDB on-demand, per million read request units
S3_PUT_PER_THOUSAND = 0.005  # S3 Standard PUT, COPY, POST, LIST requests per 1,000
S3_STORE_PER_GB_MONTH = 0.023  # S3 Standard storage, first 50 TB, per GB-month
CLOUDTRAIL_DATA_EVENTS_PER_100K = 0.10  # CloudTrail data events delivered (the first copy of management events is free)

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


def plan(rate: float, m: Measured) -> dict[str, Any]:
    """Sizes and monthly cost by line for `rate` CloudTrail events/s."""
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
    router_hour = router_task_vcpu * FARGATE_VCPU_HOUR + ROUTER_TASK[1] * FARGATE_GB_HOUR
    stateful_hour = STATEFUL_TASK[0] * FARGATE_VCPU_HOUR + STATEFUL_TASK[1] * FARGATE_GB_HOUR
    fargate = 730 * (router_tasks * router_hour + stateful_tasks * stateful_hour)
    lease_writes = all_shards * (CHECKPOINTS_PER_SHARD_SECOND + LEASE_RENEWALS_PER_SHARD_SECOND) * month
    dedupe = findings * month  # one read before, one write after each finding
    archive_gb = ingested_gb * (m.record_bytes * 1.0 / (m.event_bytes * m.events_per_record))  # gzip like the records
    lines = {
        "CloudWatch Logs ingestion": ingested_gb * CWL_INGEST_PER_GB
        + ingested_gb * CWL_COMPRESSION * CWL_RETENTION_DAYS / 30 * CWL_STORE_PER_GB_MONTH,
        "Kinesis shard hours": all_shards * 730 * KINESIS_SHARD_HOUR,
        "Kinesis PUT payload units": put_units / 1e6 * KINESIS_PUT_UNITS_PER_MILLION,
        "Fargate": fargate,
        "Firehose": findings * month * max(FINDING_BYTES, 5_000) / GB * FIREHOSE_PER_GB,
        "DynamoDB": (lease_writes + dedupe) / 1e6 * DDB_WRITE_PER_MILLION + dedupe / 1e6 * DDB_READ_PER_MILLION,
        "S3": keyed_shards * SNAPSHOTS_PER_SHARD_SECOND * month / 1000 * S3_PUT_PER_THOUSAND
        + archive_gb * S3_STORE_PER_GB_MONTH,
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
        "data_events_if_all": rate * month / 1e5 * CLOUDTRAIL_DATA_EVENTS_PER_100K,
    }


def report(m: Measured) -> str:
    out = [
        f"measured: a CloudTrail event is {m.event_bytes:,.0f} bytes of JSON ({m.corpus_events} events of the corpus); "
        f"a subscription record of {m.events_per_record:.0f} events is {m.record_bytes:,.0f} bytes of gzip",
        f"measured: one core routes {m.router_eps_per_core:,.0f} events/s and puts {m.facts_per_event:.3f} keyed facts "
        f"per event ({m.fact_bytes:,.0f} bytes each); stage 2 applies {m.stateful_fps_per_core:,.0f} facts/s per core",
        f"prices: us-east-1 list prices as of {PRICES_AS_OF}; streams sized at {HEADROOM} x the rate, tasks at "
        f"{CPU_TARGET:.0%} CPU",
        "",
    ]
    plans = [plan(rate, m) for rate in RATES]
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
    out.append("monthly cost, USD")
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
    where = pin_one_core()
    n = int(os.environ.get("BENCH_EVENTS", "30000"))
    print(f"{where}; {n:,} scenario events for the router figure")
    print(report(measure(scenario_events=n)))


if __name__ == "__main__":
    run()
