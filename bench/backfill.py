"""Backfill: events/s of `trailwarden backfill` against cores, beside `scan` and the decode floor of the same files.

`run()` writes a scenario (BENCH_BACKFILL_EVENTS, default 100,000 events) as a CloudTrail organization
archive and times the commands end to end, best of BENCH_REPEAT (default 2; listing, downloads,
decoding, both stages; findings to /dev/null): scan over the local copy, backfill over the local copy
with 1 process and with 2 and more (up to the usable cores; worker processes run decoding and stage 1),
then (unless BENCH_BACKFILL_S3=0) starts an emulator on a free port (stopped after), uploads the archive
to a bucket and times backfill from S3 with 1 and 8 download threads. The baseline, measured in the same
run: the decode floor of the same files (gunzip and orjson of each file, nothing else) on one core;
each row's "/floor" is its events/s over the floor's.
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


def _floor(files: list[tuple[str, bytes]], repeat: int) -> float:
    """Best seconds (wall clock, like the commands) of the decode floor over every file: gunzip and orjson."""
    import zlib

    import orjson

    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _, data in files:
            orjson.loads(zlib.decompress(data, 31))
        best = min(best, time.perf_counter() - started)
    return best


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
    from pipeline.commands.backfill import usable_cores
    from pipeline.encode import cloudtrail_files
    from pipeline.scenario import build

    n = int(os.environ.get("BENCH_BACKFILL_EVENTS", "100000"))
    scenario = build(n, seed=7)
    files = cloudtrail_files(scenario.events, seed=7, org_id=ORG)
    events = len(scenario.events)
    first = datetime.fromtimestamp(scenario.start, UTC).strftime("%Y-%m-%d")
    last = datetime.fromtimestamp(scenario.end, UTC).strftime("%Y-%m-%d")
    size = sum(len(d) for _, d in files)
    print(
        f"{events:,} events in {len(files):,} CloudTrail files ({size / 2**20:.1f} MiB gzip), "
        f"{len(scenario.accounts)} accounts, {first}..{last}"
    )

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

        repeat = max(1, int(os.environ.get("BENCH_REPEAT", "2")))
        floor_s = _floor(files, repeat)
        rows = [
            ("decode floor (gunzip + orjson), 1 core", floor_s),
            ("scan, local directory", _timed(["scan", str(local), *common], repeat)),
        ]
        cores = usable_cores()
        for processes in sorted({1, *range(2, cores + 1)}):
            rows.append(
                (
                    f"backfill, local directory, {processes} process{'es' if processes > 1 else ''}",
                    _timed(["backfill", str(local), *window, *common, "--processes", str(processes)], repeat),
                )
            )
        if os.environ.get("BENCH_BACKFILL_S3", "1") == "0":
            _report(rows, events, floor_s, cores)
            return

        handle = emulator.start(emulator.free_port(), pid_file=root / "emulator.pid", log_file=root / "emulator.log")
        try:
            target = aws.emulator(handle.endpoint)
            s3 = target.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda f: s3.put_object(Bucket=BUCKET, Key=f[0], Body=f[1]), files))
            remote = ["backfill", f"s3://{BUCKET}", *window, *common, "--endpoint-url", handle.endpoint]
            for workers in (1, 8):
                rows.append(
                    (
                        f"backfill, emulator S3, {workers} download thread{'s' if workers > 1 else ''}, "
                        f"{cores} process{'es' if cores > 1 else ''}",
                        _timed([*remote, "--workers", str(workers)], repeat),
                    )
                )
        finally:
            handle.stop()
    _report(rows, events, floor_s, cores)


def _report(rows: list[tuple[str, float]], events: int, floor_s: float, cores: int) -> None:
    print(f"  {cores} usable core{'s' if cores > 1 else ''}; best of the runs; /floor: events/s over the floor's")
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(
            f"  {name:<{width}}  {events / seconds:>10,.0f} events/s  ({seconds:.2f} s)  "
            f"{floor_s / seconds:5.2f} /floor"
        )
