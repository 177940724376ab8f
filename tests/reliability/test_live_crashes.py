"""Crashes: SIGKILL of a daemon (router or stateful) or of one of its record processor children, or SIGTERM of a
daemon (a stop during a batch), at a random point, seeded; the pipeline's supervisor restarts every daemon that
exits (the test restarts nothing itself); every expected finding delivered (SNS -> SQS and Firehose), none
alerted twice, stage-2 state restored (an untagged instance launched before the crash is reported after it).
The tags of the tagged instance are played after the crash: a router victim is held down (the supervisor
restarts it only after OUTAGE, longer than the grace period) with them unread, and stage 2 must neither report
the tagged instance nor anything before the router is back.

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
OUTAGE = GRACE + 6  # seconds a router victim stays down, at least: longer than the grace
VICTIMS = (
    "router daemon",
    "router processor",
    "stateful daemon",
    "stateful processor",
    "router sigterm",
    "stateful sigterm",
)


pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUNS * 240 + 300)]


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
    resumed_at: float = 0.0  # a router victim: when the supervisor started its daemon again
    supervised: int = 0  # restarts of the victim's stage by the pipeline's supervisor during the run


def crash(stack: Live, victim: str, rng: random.Random) -> str:
    """SIGKILL the victim (a processor's daemon exits when it notices), or SIGTERM its daemon (it shuts down
    gracefully, the batch in hand finished or abandoned); the supervisor restarts the daemon either way, under
    the same worker id (its leases are its own again). Returns what was done."""
    stage, kind = victim.split()
    if stage == "router":  # held down longer than the grace, with the tags unread upstream
        stack.pipeline.supervisor.hold(stage, OUTAGE)
    daemon = stack.pipeline.daemons[stage]
    children = sorted(daemon.processors())
    if kind == "sigterm":
        daemon.stop()
        return f"daemon {daemon.pid} stopped (SIGTERM)"
    if kind == "daemon" or not children:
        daemon.kill()
        return f"daemon {daemon.pid} killed"
    child = rng.choice(children)
    os.kill(child, signal.SIGKILL)
    return f"processor {child} of {len(children)} killed"


def one_run(stack: Live, index: int, rng: random.Random) -> Run:
    victim = VICTIMS[index % len(VICTIMS)]
    tag = uuid.uuid4().hex[:8]
    groups = [f"sg-0c{index:02d}{n}{tag}" for n in range(4)]
    untagged, tagged = instance_id(), instance_id()
    now = time.time()
    before = [
        run_instances(untagged, now),
        run_instances(tagged, now),
        open_sg(groups[0], now),
        open_sg(groups[1], now + 0.1),
    ]
    # The tags join a launch across the crash. A router victim stays down for OUTAGE, longer than the grace,
    # with them unread in the trail stream: stage 2 moves event time only as far as every router has read.
    after = [create_tags(tagged, now + 1), open_sg(groups[2], now + 2.1), open_sg(groups[3], now + 2.2)]
    stage, kind = victim.split()
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
    restarts = stack.restarts(stage)

    def done() -> bool:  # a daemon stopped or killed must have been restarted by the supervisor
        if stage == "router" and not run.resumed_at and stack.restarts(stage) > restarts:
            run.resumed_at = time.time()
        restarted = kind == "processor" or stack.restarts(stage) > restarts
        return restarted and len(found(stack, run)) == len(expected)

    stack.wait_for(done, 240)
    run.supervised = stack.restarts(stage) - restarts
    run.restarted += f"; restarted by the supervisor {run.supervised} time(s)"
    run.delivered = len(found(stack, run))
    run.seconds = time.monotonic() - started
    return run


def found(stack: Live, run: Run) -> set[tuple[str, str]]:
    return {(rule, part) for rule, part in run.expected if any(a.finding.rule_id == rule for a in stack.about(part))}


def sweep(stack: Live) -> set[tuple[str, str]]:
    """A record straight into every trail shard (ExplicitHashKey): a router whose killed processor has not met
    a record yet exits now (and is restarted). Returns the findings expected from them."""
    kinesis, stream = stack.target.client("kinesis"), stack.outputs["TrailStreamName"]
    tag, now = uuid.uuid4().hex[:8], time.time()
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    groups = [f"sg-0sweep{n}{tag}" for n in range(len(shards))]
    for shard, group in zip(shards, groups, strict=True):
        start = shard["HashKeyRange"]["StartingHashKey"]
        kinesis.put_record(
            StreamName=stream,
            PartitionKey=group,
            ExplicitHashKey=start,
            Data=subscription_record([open_sg(group, now)], stack.outputs["TrailLogGroupName"]),
        )
    return {(SG_OPEN, g) for g in groups}


def final_sweep(stack: Live) -> Run:
    run = Run(-1, "final sweep", 0.0, sweep(stack), "", "", 2)

    def done() -> bool:
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
            print(
                f"\n[crashes] run {index:2d}: {run.victim:18s} at +{run.delay:.1f}s: {run.restarted}; "
                f"{run.delivered}/{len(run.expected)} findings in {run.seconds:.0f}s",
                flush=True,
            )
    sweep = final_sweep(stack)
    stack.wait_for(lambda: False, 8)  # time for a late duplicate to show

    ids = Counter(a.finding.id for a in stack.alerts)
    duplicated = sum(n - 1 for n in ids.values() if n > 1)
    archived = Counter(f["id"] for f in stack.archived())
    expected = sum(len(r.expected) for r in runs)
    delivered = sum(len(found(stack, r)) for r in runs)  # by the end: a loaded machine restarts daemons slowly
    missing = [
        (r.index, r.victim, sorted(r.expected - found(stack, r)))
        for r in [*runs, sweep]
        if found(stack, r) != r.expected
    ]
    not_archived = sorted(set(ids) - set(archived))
    false_alerts = [r.index for r in runs if stack.about(r.tagged)]
    runs.append(sweep)
    unrestarted = [r.index for r in runs if r.index >= 0 and "processor" not in r.victim and not r.supervised]
    late_state = [
        r.index
        for r in runs  # the untagged instance must be reported after the crash
        if r.untagged and any(a.received < r.crashed_at for a in stack.about(r.untagged))
    ]
    early = [
        r.index
        for r in runs  # nor, with a router down, before it is back: stage 2 waits for its progress
        if r.resumed_at and any(a.enqueued < r.resumed_at for a in stack.about(r.untagged))
    ]
    kinds = Counter(r.victim for r in runs if r.index >= 0)
    ok = (
        not missing
        and not duplicated
        and not not_archived
        and not false_alerts
        and not late_state
        and not unrestarted
        and not early
    )
    row = reliability_row(
        Row(
            "crashes",
            len(runs) - 1,
            sum(r.records for r in runs),
            expected,
            delivered,
            duplicated,
            ok=ok,
            seconds=time.monotonic() - started,
            figure=(
                f"seed {SEED}: "
                + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                + f"; {stack.restarts()} daemon restarts by the supervisor; {len(archived)} in Firehose; "
                f"router outages of {OUTAGE}s+ with the tags unread against a {GRACE}s grace: "
                f"{len(false_alerts)} false, {len(early)} early; longest run {max(r.seconds for r in runs):.0f}s"
            ),
        )
    )
    assert not missing, missing
    assert not duplicated, [i for i, n in ids.items() if n > 1]
    assert not not_archived, not_archived
    assert not false_alerts, f"tagged instances reported in runs {false_alerts}"
    assert not late_state, late_state
    assert not early, f"reported while the router was down in runs {early}"
    assert not unrestarted, f"daemons not restarted by the supervisor in runs {unrestarted}"
    assert row.ok
