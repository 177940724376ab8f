"""Crashes: SIGKILL of a daemon (router or stateful) or of one of its record processor children at a
random point, seeded; every expected finding delivered (SNS -> SQS and Firehose), none alerted twice,
stage-2 state restored (an untagged instance launched before the crash is reported after it).

TRAILWARDEN_CRASH_RUNS (default 20), TRAILWARDEN_CRASH_SEED (default 7) replays the same crash points.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support.live import (
    MISSING_TAGS,
    SG_OPEN,
    Live,
    config_file,
    create_tags,
    instance_id,
    live_stack,
    open_sg,
    run_instances,
    subscription_record,
)

from .results import Row

log = logging.getLogger(__name__)

RUNS = int(os.environ.get("TRAILWARDEN_CRASH_RUNS", "20"))
SEED = int(os.environ.get("TRAILWARDEN_CRASH_SEED", "7"))
GRACE = 10  # seconds of the missing-tags grace period
VICTIMS = ("router daemon", "router processor", "stateful daemon", "stateful processor")


pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUNS * 90 + 300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("crashes")
    with live_stack(directory, config_file(directory, GRACE)) as running:
        yield running


@dataclass
class Run:
    index: int
    victim: str
    delay: float
    expected: set[tuple[str, str]]  # (rule id, resource part)
    untagged: str
    tagged: str
    records: int
    crashed_at: float = 0.0
    restarted: str = ""
    seconds: float = 0.0
    delivered: int = 0


def crash(stack: Live, victim: str, rng: random.Random) -> str:
    """SIGKILL the victim (a daemon is restarted at once; a processor's daemon exits when it notices, and the
    run's supervision restarts it). Returns what was killed."""
    stage, kind = victim.split()
    daemon = stack.pipeline.daemons[stage]
    children = sorted(daemon.processors())
    if kind == "daemon" or not children:
        daemon.kill()
        stack.pipeline.start_stage(stage)  # same worker id: its leases are its own again
        return f"daemon {daemon.pid} killed, restarted"
    child = rng.choice(children)
    os.kill(child, signal.SIGKILL)
    return f"processor {child} of {len(children)} killed"


def one_run(stack: Live, index: int, rng: random.Random) -> Run:
    victim = VICTIMS[index % len(VICTIMS)]
    tag = uuid.uuid4().hex[:8]
    groups = [f"sg-0c{index:02d}{n}{tag}" for n in range(4)]
    untagged, tagged = instance_id(), instance_id()
    now = time.time()
    before = [run_instances(untagged, now), run_instances(tagged, now), open_sg(groups[0], now),
              open_sg(groups[1], now + 0.1)]
    after = [open_sg(groups[2], now + 2.1), open_sg(groups[3], now + 2.2)]
    # The tags join a launch across the crash when stage 2 is the victim. When the router is, they go in
    # before it: a router restart (10 to 20 s) outlasts the 10 s grace, and stage 2, idle, moves its watermark
    # with the wall clock and reports the instance whose tags are still upstream (see docs/reliability.md).
    (after if victim.startswith("stateful") else before).append(create_tags(tagged, now + 1))
    expected = {(SG_OPEN, g) for g in groups} | {(MISSING_TAGS, untagged)}
    run = Run(index, victim, rng.uniform(0.2, 5.0), expected, untagged, tagged, len(before) + len(after))
    started = time.monotonic()
    stack.play(before)
    time.sleep(run.delay)
    run.crashed_at = time.time()
    run.restarted = crash(stack, victim, rng)
    stack.play(after)
    if victim == "router processor":  # make the daemon meet the dead processor now, not in a later run
        swept = sweep(stack)
        expected |= swept  # run.expected is this set
        run.records += len(swept)
    restarts = stack.restarts

    def done() -> bool:
        stack.restart_dead()
        return len(found(stack, run)) == len(expected)

    stack.wait_for(done, 120)
    if stack.restarts > restarts:
        run.restarted += f"; {stack.restarts - restarts} daemon(s) exited and were restarted"
    run.delivered = len(found(stack, run))
    run.seconds = time.monotonic() - started
    return run


def found(stack: Live, run: Run) -> set[tuple[str, str]]:
    return {(rule, part) for rule, part in run.expected
            if any(a.finding.rule_id == rule for a in stack.about(part))}


def sweep(stack: Live) -> set[tuple[str, str]]:
    """A record straight into every trail shard (ExplicitHashKey): a router whose killed processor has not met
    a record yet exits now (and is restarted). Returns the findings expected from them."""
    kinesis, stream = stack.target.client("kinesis"), stack.outputs["TrailStreamName"]
    tag, now = uuid.uuid4().hex[:8], time.time()
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    groups = [f"sg-0sweep{n}{tag}" for n in range(len(shards))]
    for shard, group in zip(shards, groups, strict=True):
        start = shard["HashKeyRange"]["StartingHashKey"]
        kinesis.put_record(StreamName=stream, PartitionKey=group, ExplicitHashKey=start,
                           Data=subscription_record([open_sg(group, now)], stack.outputs["TrailLogGroupName"]))
    return {(SG_OPEN, g) for g in groups}


def final_sweep(stack: Live) -> Run:
    run = Run(-1, "final sweep", 0.0, sweep(stack), "", "", 2)

    def done() -> bool:
        stack.restart_dead()
        return found(stack, run) == run.expected

    stack.wait_for(done, 120)
    run.delivered = len(found(stack, run))
    return run


def test_crashes(stack: Live, reliability_row: Callable[[Row], Row], capsys: pytest.CaptureFixture) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    runs: list[Run] = []
    for index in range(RUNS):
        run = one_run(stack, index, rng)
        runs.append(run)
        with capsys.disabled():
            print(f"\n[crashes] run {index:2d}: {run.victim:18s} at +{run.delay:.1f}s: {run.restarted}; "
                  f"{run.delivered}/{len(run.expected)} findings in {run.seconds:.0f}s", flush=True)
    sweep = final_sweep(stack)
    stack.wait_for(lambda: False, 8)  # time for a late duplicate to show

    ids = Counter(a.finding.id for a in stack.alerts)
    duplicated = sum(n - 1 for n in ids.values() if n > 1)
    archived = Counter(f["id"] for f in stack.archived())
    expected = sum(len(r.expected) for r in runs)
    delivered = sum(r.delivered for r in runs)
    missing = [(r.index, r.victim, sorted(r.expected - found(stack, r)))
               for r in [*runs, sweep] if found(stack, r) != r.expected]
    not_archived = sorted(set(ids) - set(archived))
    false_alerts = [r.index for r in runs if stack.about(r.tagged)]
    runs.append(sweep)
    late_state = [r.index for r in runs  # the untagged instance must be reported after the crash
                  if r.untagged and any(a.received < r.crashed_at for a in stack.about(r.untagged))]
    kinds = Counter(r.victim for r in runs if r.index >= 0)
    ok = not missing and not duplicated and not not_archived and not false_alerts and not late_state
    row = reliability_row(Row(
        "crashes", len(runs) - 1, sum(r.records for r in runs), expected, delivered, duplicated, ok=ok,
        seconds=time.monotonic() - started,
        figure=(f"seed {SEED}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                + f", {stack.restarts} daemon exits after a processor died; {len(archived)} in Firehose; "
                f"longest run {max(r.seconds for r in runs):.0f}s")))
    assert not missing, missing
    assert not duplicated, [i for i, n in ids.items() if n > 1]
    assert not not_archived, not_archived
    assert not false_alerts, f"tagged instances reported in runs {false_alerts}"
    assert not late_state, late_state
    assert row.ok
