"""Rows of the reliability table that run without the live pipeline (see docs/reliability.md)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

from tests.support.stateful import fresh

from . import fuzz, reshard
from .results import Row

RESHARD_SEEDS = int(os.environ.get("TRAILWARDEN_RESHARD_SEEDS", "30"))
FUZZ_SECONDS = float(os.environ.get("TRAILWARDEN_RELIABILITY_FUZZ_SECONDS", "300"))


def test_resharding(reliability_row: Callable[[Row], Row]) -> None:
    """Seeded runs over a 2-shard keyed stream: split into 4 at random hash keys, two adjacent shards
    merged, lease moves and re-sent facts between; both merge paths (engine, live processor)."""
    started = time.monotonic()
    expected: Counter = Counter()
    delivered: Counter = Counter()
    facts = duplicated = runs = 0
    failed: list[str] = []
    for merge in (reshard.engine_merge, reshard.consumer_merge):
        for seed in range(RESHARD_SEEDS):
            outcome = reshard.run(seed, fresh, n=3000, merge=merge)
            runs += 1
            facts += outcome.facts
            expected.update({(merge.__name__, seed, k): v for k, v in outcome.expected.items()})
            delivered.update({(merge.__name__, seed, k): v for k, v in outcome.delivered.items()})
            duplicated += outcome.duplicated
            if not outcome.ok:
                failed.append(f"{merge.__name__} seed {seed}: {outcome.missing} missing, {outcome.extra} extra")
    row = reliability_row(
        Row(
            "resharding",
            runs,
            facts,
            sum(expected.values()),
            sum((expected & delivered).values()),
            duplicated,
            ok=not failed,
            seconds=time.monotonic() - started,
            figure=f"2 -> 4 shards (split), 2 -> 1 (merge), lease moves; {len(failed)} runs differ",
        )
    )
    assert row.ok, failed[:5]


def test_fuzz(reliability_row: Callable[[Row], Row]) -> None:
    seed = int(os.environ.get("TRAILWARDEN_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
    started = time.monotonic()
    error = ""
    try:
        tally = fuzz.run(FUZZ_SECONDS, seed)
    except fuzz.FuzzFailure as exc:
        error = str(exc)
        tally = fuzz.Tally()
    known = sum(tally.known.values())
    reliability_row(
        Row(
            "fuzz",
            1,
            tally.inputs,
            ok=not error,
            seconds=time.monotonic() - started,
            figure=error[:200]
            or (
                f"seed {seed}, {tally.inputs / max(FUZZ_SECONDS, 1):.0f} inputs/s: "
                f"{tally.events:,} events, {tally.dead_letters:,} dead letters, "
                f"{tally.findings:,} findings; {known} known weakness hits"
            ),
        )
    )
    assert not error, error


def _pytest_file(path: str) -> tuple[Counter, str]:
    """Run one test file in a subprocess; its outcome counts and last line."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path],
        cwd=fuzz.REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = (done.stdout.strip().splitlines() or [""])[-1]
    counts: Counter = Counter(
        {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|xfailed|xpassed|error)", last)}
    )
    if done.returncode:
        counts["failed"] = max(counts["failed"], 1)
    return counts, last


def test_output_safety(reliability_row: Callable[[Row], Row]) -> None:
    from tests.unit.pipeline.test_output_safety import TEXTS

    started = time.monotonic()
    counts, last = _pytest_file("tests/unit/pipeline/test_output_safety.py")
    row = reliability_row(
        Row(
            "output safety",
            sum(counts.values()),
            len(TEXTS),
            ok=not counts["failed"],
            seconds=time.monotonic() - started,
            figure=(
                f"{len(TEXTS)} hostile texts in every finding field and in real events; SNS, Firehose, table: {last}"
            ),
        )
    )
    assert row.ok, last


def test_least_privilege(reliability_row: Callable[[Row], Row]) -> None:
    from . import iam

    started = time.monotonic()
    counts, last = _pytest_file("tests/unit/infra/test_least_privilege.py")
    scanned = iam.calls()
    consumer = {c.action for c in iam.consumer_calls()}
    row = reliability_row(
        Row(
            "least privilege",
            sum(counts.values()),
            len(scanned),
            ok=not counts["failed"],
            seconds=time.monotonic() - started,
            figure=f"{len({c.action for c in scanned})} actions called in the code, {len(consumer)} by the consumers, "
            f"+{len(iam.KCL_ACTIONS)} KCL; {last}",
        )
    )
    assert row.ok, last
