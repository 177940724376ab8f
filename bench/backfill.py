"""Backfill: events/s of `trailwarden backfill` against cores, beside `scan` and the decode floor of the same files.

`run()` writes a scenario (BENCH_BACKFILL_EVENTS, default 100,000 events) as a CloudTrail organization
archive and times the commands end to end, best of BENCH_REPEAT (default 2; listing, downloads,
decoding, both stages; findings to /dev/null): scan over the local copy, backfill over the local copy
with 1 worker (everything in one process) and with 2 and more (up to the usable cores; worker
processes decode and run stage 1, this process merges and runs stage 2), then (unless
BENCH_BACKFILL_S3=0) starts an emulator on a free port (stopped after), uploads the archive to a bucket
and times backfill from S3 with 1 and 8 download threads. The baseline, measured in the same run: the
decode floor of the same files (gunzip and orjson of each file, nothing else) on one core.

Each row gives the wall-clock events/s and the CPU seconds of this process and of the workers (their
start-up included; the fork server's one import of the rules is not). On a machine shared with other
work the wall clock says little, so each row also gives its CPU-bound rate on N cores of its own: the
events over max(this process's CPU, all CPU / N), and "/floor" is that rate over the floor's (CPU time,
one core). The load average is printed before and after.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

ORG = "o-benchorg001"
BUCKET = "bench-trail"


class Timing(NamedTuple):
    """One run: wall seconds, CPU seconds of this process and of the worker processes, and on how many cores."""

    wall: float
    cpu: float
    workers_cpu: float = 0.0
    cores: int = 1

    def bound(self) -> float:
        """Seconds on `cores` cores of its own: this process's CPU, or all CPU spread over the cores."""
        return max(self.cpu, (self.cpu + self.workers_cpu) / self.cores)


def _floor(files: list[tuple[str, bytes]], repeat: int) -> Timing:
    """The best run of the decode floor over every file: gunzip and orjson."""
    import zlib

    import orjson

    best = Timing(float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for _, data in files:
            orjson.loads(zlib.decompress(data, 31))
        best = min(best, Timing(time.perf_counter() - wall, time.process_time() - cpu), key=Timing.bound)
    return best


_WORKER_CPU = re.compile(r"worker cpu seconds: ([0-9.,]+)")


def _timed(argv: list[str], repeat: int = 2, cores: int = 1) -> Timing:
    """The best of `repeat` runs of the command (the first also warms imports and caches), by CPU-bound time.
    The workers' CPU comes from the command's summary on stderr."""
    from pipeline.cli import main

    best = Timing(float("inf"), float("inf"))
    for _ in range(repeat):
        err = io.StringIO()
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stderr(err):
            rc = main(argv)
        timing = Timing(time.perf_counter() - wall, time.process_time() - cpu, cores=cores)
        if rc != 0:
            raise RuntimeError(f"trailwarden {argv} exited {rc}: {err.getvalue()[-2000:]}")
        found = _WORKER_CPU.search(err.getvalue())
        if found:
            timing = timing._replace(workers_cpu=float(found.group(1).replace(",", "")))
        elif cores > 1:
            raise RuntimeError(f"trailwarden {argv}: no worker CPU in its summary")
        best = min(best, timing, key=Timing.bound)
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
        common = ["--config", str(config), "-o", os.devnull]  # the summary on stderr gives the workers' CPU
        window = ["--from", first, "--to", last]

        repeat = max(1, int(os.environ.get("BENCH_REPEAT", "2")))
        load = _load()
        floor = _floor(files, repeat)
        rows = [
            ("decode floor (gunzip + orjson), 1 core", floor),
            ("scan, local directory, 1 core", _timed(["scan", str(local), *common, "-q"], repeat)),
        ]
        cores = usable_cores()
        for workers in sorted({1, *range(2, cores + 1)}):
            rows.append(
                (
                    f"backfill, local directory, {workers} core{'s' if workers > 1 else ''} (--workers {workers})",
                    _timed(["backfill", str(local), *window, *common, "--workers", str(workers)], repeat, workers),
                )
            )
        if os.environ.get("BENCH_BACKFILL_S3", "1") == "0":
            _report(rows, events, floor, cores, load)
            return

        handle = emulator.start(emulator.free_port(), pid_file=root / "emulator.pid", log_file=root / "emulator.log")
        try:
            target = aws.emulator(handle.endpoint)
            s3 = target.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda f: s3.put_object(Bucket=BUCKET, Key=f[0], Body=f[1]), files))
            remote = ["backfill", f"s3://{BUCKET}", *window, *common, "--endpoint-url", handle.endpoint]
            for downloads in (1, 8):
                rows.append(
                    (
                        f"backfill, emulator S3, {downloads} download thread{'s' if downloads > 1 else ''}, "
                        f"{cores} core{'s' if cores > 1 else ''}",
                        _timed([*remote, "--downloads", str(downloads), "--workers", str(cores)], repeat, cores),
                    )
                )
        finally:
            handle.stop()
    _report(rows, events, floor, cores, load)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def _report(rows: list[tuple[str, Timing]], events: int, floor: Timing, cores: int, load: str) -> None:
    print(
        f"  {cores} usable core{'s' if cores > 1 else ''}; before: {load}; after: {_load()}; best of the runs\n"
        "  CPU-bound: events over max(this process's CPU, all CPU / cores); /floor: that over the floor's (CPU)"
    )
    width = max(len(name) for name, _ in rows)
    one = next((t for name, t in rows if "1 core (--workers 1)" in name), None)
    for name, t in rows:
        workers = f" + workers {t.workers_cpu:5.2f}" if t.workers_cpu else " " * 17
        versus_one = f"  {one.bound() / t.bound():4.2f}x 1 core" if one is not None and t.cores > 1 else ""
        print(
            f"  {name:<{width}}  wall {events / t.wall:>8,.0f}/s ({t.wall:5.2f} s)  CPU {t.cpu:5.2f} s{workers}  "
            f"CPU-bound {events / t.bound():>8,.0f}/s  {floor.bound() / t.bound():5.2f} /floor{versus_one}"
        )
