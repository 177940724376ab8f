"""Backfill: events/s of `trailwarden backfill` from the emulator's S3, beside `scan` of the same files locally.

`run()` writes a scenario (BENCH_BACKFILL_EVENTS, default 100,000 events) as a CloudTrail organization
archive, starts an emulator on a free port (stopped after), uploads the archive to a bucket, and times
the commands end to end, best of two (listing, downloads, decoding, both stages; findings to /dev/null):
scan over the local copy, backfill over the local copy, and backfill from S3 with 1 and 8 workers.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ORG = "o-benchorg001"
BUCKET = "bench-trail"


def _timed(argv: list[str], repeat: int = 2) -> float:
    """The best of `repeat` runs of the command (the first also warms imports and caches)."""
    from pipeline.cli import main

    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        rc = main(argv)
        best = min(best, time.perf_counter() - started)
        if rc != 0:
            raise RuntimeError(f"trailwarden {argv} exited {rc}")
    return best


def run() -> None:
    from infra import aws, emulator
    from pipeline.encode import cloudtrail_files
    from pipeline.scenario import build

    n = int(os.environ.get("BENCH_BACKFILL_EVENTS", "100000"))
    scenario = build(n, seed=7)
    files = cloudtrail_files(scenario.events, seed=7, org_id=ORG)
    events = len(scenario.events)
    first = datetime.fromtimestamp(scenario.start, UTC).strftime("%Y-%m-%d")
    last = datetime.fromtimestamp(scenario.end, UTC).strftime("%Y-%m-%d")
    size = sum(len(d) for _, d in files)
    print(f"{events:,} events in {len(files):,} CloudTrail files ({size / 2**20:.1f} MiB gzip), "
          f"{len(scenario.accounts)} accounts, {first}..{last}")

    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        root = Path(tmp)
        local = root / "archive"
        for key, data in files:
            path = local / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        config = root / "scenario.toml"
        config.write_text(scenario.config_toml())
        common = ["--config", str(config), "-q", "-o", os.devnull]
        window = ["--from", first, "--to", last]

        rows = [("scan, local directory", _timed(["scan", str(local), *common]))]
        rows.append(("backfill, local directory", _timed(["backfill", str(local), *window, *common])))

        handle = emulator.start(emulator.free_port(), pid_file=root / "emulator.pid", log_file=root / "emulator.log")
        try:
            target = aws.emulator(handle.endpoint)
            s3 = target.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda f: s3.put_object(Bucket=BUCKET, Key=f[0], Body=f[1]), files))
            remote = ["backfill", f"s3://{BUCKET}", *window, *common, "--endpoint-url", handle.endpoint]
            for workers in (1, 8):
                rows.append((f"backfill, emulator S3, {workers} worker{'s' if workers > 1 else ''}",
                             _timed([*remote, "--workers", str(workers)])))
        finally:
            handle.stop()

    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"  {name:<{width}}  {events / seconds:>10,.0f} events/s  ({seconds:.2f} s)")
