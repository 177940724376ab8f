"""Replay: events/s of `trailwarden replay` on the emulator, every event of the trail stream replayed.

`run()` starts its own emulator (a free port, stopped after), provisions the stack, puts a scenario
(BENCH_REPLAY_EVENTS, default 100,000 events, every attack) on the trail stream as CloudWatch Logs
subscription records (75 events each, random partition keys, as the subscription filter writes them),
then replays the whole range through both replay daemons (no live pipeline: this is the replay alone).
It reports the time end to end (keyed stream, daemons, leases, reading, both stages, clean-up) and the
rate once records flow (first replayed event to the last stateful shard done).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def _put(kinesis: Any, stream: str, records: list[bytes]) -> None:
    for i in range(0, len(records), 250):
        entries = [{"Data": data, "PartitionKey": uuid.uuid4().hex} for data in records[i : i + 250]]
        while entries:
            response = kinesis.put_records(StreamName=stream, Records=entries)
            entries = [e for e, r in zip(entries, response["Records"], strict=True) if r.get("ErrorCode")]


def measure(events: int) -> dict[str, Any]:
    from consumers.replay import Replay
    from infra import aws, emulator, provision
    from pipeline.encode import cwl_records
    from pipeline.scenario import build
    from pipeline.stages import Stage

    directory = Path(tempfile.mkdtemp(prefix="trailwarden-bench-replay-"))
    handle = emulator.start(emulator.free_port(), log_file=directory / "emulator.log")
    try:
        target = aws.emulator(handle.endpoint)
        outputs = provision.provision(target)
        now = time.time()
        scenario = build(events, seed=11, end=now, duration=3600)
        config = directory / "scenario.toml"
        config.write_text(scenario.config_toml())
        records = cwl_records(scenario.events)
        start = time.time()
        _put(target.client("kinesis"), outputs["TrailStreamName"], records)
        end = time.time()

        job = Replay(target, outputs, start, end, config=config, directory=directory / "runs")
        began = time.monotonic()
        try:
            job.start()
            if not job.wait(timeout=900):
                raise RuntimeError(f"replay not done after 900 s; logs in {job.directory / 'kcl'}")
            done = time.monotonic()
            status = job.status()
            first = min(p.first_record_at for p in status.router.values() if p.first_record_at is not None)
            last = max(p.updated for p in status.stateful.values())
            findings = {f.id for f in job.findings()}
        finally:
            job.close()
        closed = time.monotonic()
        return {
            "events": status.events(),
            "records": len(records),
            "shards": len(status.shards(Stage.ROUTER)),
            "findings": len(findings),
            "to_done": done - began,
            "with_cleanup": closed - began,
            "flowing": last - first,
        }
    finally:
        handle.stop()


def run() -> None:
    n = int(os.environ.get("BENCH_REPLAY_EVENTS", "100000"))
    r = measure(n)
    print(
        f"{r['events']:,} events in {r['records']:,} trail records on {r['shards']} shards, "
        f"{r['findings']:,} distinct findings"
    )
    print(
        f"  end to end (start-up, both stages, end markers): {r['events'] / r['to_done']:>8,.0f} events/s  "
        f"({r['to_done']:.1f} s; {r['with_cleanup']:.1f} s with clean-up)"
    )
    print(
        f"  once records flow (first event to last shard done): {r['events'] / r['flowing']:>8,.0f} events/s  "
        f"({r['flowing']:.1f} s)"
    )
