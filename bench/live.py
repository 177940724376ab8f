"""Live pipeline on the emulator: end-to-end alert latency and sustained throughput of both stages.

`run()` starts its own emulator (a free port), provisions the stack and starts both KCL daemons, then:

1. latency: 220 security-group openings, one PutLogEvents call each at about 20/s; for each, the
   time from the PutLogEvents call returning to its alert arriving in an SQS queue subscribed to the
   findings topic (PutLogEvents -> subscription -> trail stream -> router -> dedupe -> SNS -> SQS);
   p50, p99 and max;
2. throughput: a burst of background CloudTrail (BURST events) put as fast as the emulator takes it;
   stage 1 is done when the router's checkpoints reach the end of every trail shard, stage 2 when
   the stateful stage's checkpoints reach the end of every keyed shard; events/s through both;
3. beside it, the emulator's raw GetRecords rate in the same run: one boto3 reader draining the
   trail stream from TRIM_HORIZON (records/s, MB/s, and events/s counting the events inside).

`python -m bench live` (or `python -m bench.live [--burst N] [--json]`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

BURST = 20_000
LATENCY_EVENTS = 220


def _open_sg(group: str, t: float) -> dict[str, Any]:
    from pipeline.finding import iso_time
    from pipeline.ruletest import complete_record

    return complete_record(
        {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "AuthorizeSecurityGroupIngress",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {
                "groupId": group,
                "ipPermissions": {
                    "items": [
                        {
                            "ipProtocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                        }
                    ]
                },
            },
            "responseElements": {"_return": True},
        }
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _drain(kinesis: Any, stream: str, count_events: bool) -> dict[str, Any]:
    """Read a whole stream from TRIM_HORIZON: records, bytes, events, last sequence number per shard, time."""
    from pipeline.decode import decode

    started = time.perf_counter()
    records = size = events = 0
    last: dict[str, str] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        shard_id = shard["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            batch = response["Records"]
            for r in batch:
                records += 1
                size += len(r["Data"])
                if count_events:
                    events += sum(1 for item in decode(r["Data"], "bench") if hasattr(item, "name"))
                last[shard_id] = r["SequenceNumber"]
            if not batch or response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return {"records": records, "bytes": size, "events": events, "last": last, "seconds": time.perf_counter() - started}


def _caught_up(ddb: Any, table: str, last: dict[str, str]) -> bool:
    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    checkpoints = {i["leaseKey"]["S"]: i.get("checkpoint", {}).get("S", "") for i in items}
    return all(
        checkpoints.get(shard, "").isdigit() and int(checkpoints[shard]) >= int(seq) for shard, seq in last.items()
    )


def _wait(predicate: Any, timeout: float, step: float = 0.25) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(step)
    return None


def measure(burst: int = BURST, latency_events: int = LATENCY_EVENTS) -> dict[str, Any]:
    from consumers import live
    from infra import aws, emulator, provision
    from infra.trail_player import Player
    from pipeline.scenario import build

    directory = Path(tempfile.mkdtemp(prefix="trailwarden-bench-live-"))
    handle = emulator.start(emulator.free_port(), log_file=directory / "emulator.log")
    pipeline = None
    try:
        target = aws.emulator(handle.endpoint)
        outputs = provision.provision(target)
        queue, _ = live.findings_queue(target, outputs["FindingsTopicArn"])
        pipeline = live.LivePipeline.start(target, outputs, directory / "kcl")
        logs, sqs = target.client("logs"), target.client("sqs")
        kinesis, ddb = target.client("kinesis"), target.client("dynamodb")
        group_name = outputs["TrailLogGroupName"]
        player = Player(logs, group_name)

        # 0. warm-up: both daemons hold their leases and read (start-up is not what latency measures)
        ready_at = time.monotonic()
        player.play([_open_sg("sg-0warmup", time.time())])
        while not any("sg-0warmup" in r for a in live.receive(sqs, queue, wait=1) for r in a.finding.resources):
            if time.monotonic() - ready_at > 120:
                raise RuntimeError("no alert within 120 s of start-up; see the daemon logs in " + str(directory))
        startup = time.monotonic() - ready_at

        # 1. latency, one PutLogEvents per event
        sent: dict[str, float] = {}
        arrived: dict[str, float] = {}
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                for alert in live.receive(sqs, queue, wait=1):
                    for resource in alert.finding.resources:
                        group = resource.rsplit("/", 1)[-1]
                        if group in sent and group not in arrived:
                            arrived[group] = alert.enqueued

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for _ in range(latency_events):
            group = f"sg-{uuid.uuid4().hex[:17]}"
            player.play([_open_sg(group, time.time())])
            sent[group] = time.time()
            time.sleep(0.05)
        _wait(lambda: len(arrived) >= len(sent), 180, 0.5)
        done.set()
        watcher.join()
        latencies = [arrived[g] - sent[g] for g in sent if g in arrived]

        # 2. throughput through both stages
        now = time.time()
        records = build(burst, seed=99, attacks="none", start=now - 3600, duration=3600).events
        started = time.monotonic()
        player.play(records)
        put_seconds = time.monotonic() - started
        time.sleep(1.0)  # the subscription filter delivers synchronously on the emulator; settle
        # 3. the emulator's own GetRecords rate, same run, while the daemons work
        raw = _drain(kinesis, outputs["TrailStreamName"], count_events=True)
        stage1 = _wait(lambda: _caught_up(ddb, outputs["RouterAppName"], raw["last"]), 600)
        keyed = _drain(kinesis, outputs["KeyedStreamName"], count_events=False)
        stage2 = _wait(lambda: _caught_up(ddb, outputs["StatefulAppName"], keyed["last"]), 600) if stage1 else None
        burst_events = len(records)
        return {
            "first_alert_after_start_s": round(startup, 2),
            "latency": {
                "findings": len(latencies),
                "sent": len(sent),
                "p50_s": round(statistics.median(latencies), 3) if latencies else None,
                "p99_s": round(_pct(latencies, 0.99), 3) if latencies else None,
                "max_s": round(max(latencies), 3) if latencies else None,
            },
            "throughput": {
                "events": burst_events,
                "put_events_per_s": round(burst_events / put_seconds, 1),
                "stage1_events_per_s": round(burst_events / (stage1 - started), 1) if stage1 else None,
                "both_stages_events_per_s": round(burst_events / (stage2 - started), 1) if stage2 else None,
                "keyed_facts": keyed["records"],
                "seconds_to_stage1": round(stage1 - started, 2) if stage1 else None,
                "seconds_to_stage2": round(stage2 - started, 2) if stage2 else None,
            },
            "emulator_get_records": {
                "records": raw["records"],
                "events": raw["events"],
                "bytes": raw["bytes"],
                "records_per_s": round(raw["records"] / raw["seconds"], 1),
                "events_per_s": round(raw["events"] / raw["seconds"], 1),
                "mb_per_s": round(raw["bytes"] / raw["seconds"] / 1e6, 2),
            },
        }
    finally:
        if pipeline is not None:
            pipeline.stop()
        handle.stop()


def _print(result: dict[str, Any]) -> None:
    lat, thr, raw = result["latency"], result["throughput"], result["emulator_get_records"]
    print(f"   first alert {result['first_alert_after_start_s']} s after both daemons were started")
    print(
        f"   alert latency PutLogEvents -> SQS over {lat['findings']}/{lat['sent']} findings: "
        f"p50 {lat['p50_s']} s, p99 {lat['p99_s']} s, max {lat['max_s']} s"
    )
    print(
        f"   burst of {thr['events']:,} events: put at {thr['put_events_per_s']:,} events/s; "
        f"stage 1 {thr['stage1_events_per_s']} events/s ({thr['seconds_to_stage1']} s); "
        f"both stages {thr['both_stages_events_per_s']} events/s ({thr['seconds_to_stage2']} s, "
        f"{thr['keyed_facts']:,} keyed facts)"
    )
    print(
        f"   emulator raw GetRecords, same run: {raw['records_per_s']:,} records/s, "
        f"{raw['events_per_s']:,} events/s, {raw['mb_per_s']} MB/s ({raw['records']} records)"
    )


def run() -> None:
    _print(measure())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=BURST)
    parser.add_argument("--latency-events", type=int, default=LATENCY_EVENTS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.burst, args.latency_events)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
