"""Sink outages: the record processors' AWS calls go through a fault-injecting proxy (faultproxy.py) that,
for a while, throttles (400), fails (500/503) or refuses every entry of the batch calls, for SNS, Firehose,
DynamoDB (the dedupe table) and Kinesis PutRecords (the keyed facts), then recovers. Nothing is lost, no
alert is sent twice, the router's checkpoints stay behind every record put during the outage, and the
backlog drains after it.

TRAILWARDEN_OUTAGE_SECONDS (default 12): how long each outage lasts.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.support.live import (
    MISSING_TAGS,
    SG_OPEN,
    Live,
    config_file,
    emulator_target,
    instance_id,
    open_sg,
    run_instances,
    stack_on,
    subscription_record,
)

from .faultproxy import SERVICES, FaultProxy
from .results import Row

GRACE = 10
OUTAGE = float(os.environ.get("TRAILWARDEN_OUTAGE_SECONDS", "10"))
# (services down, how): each service alone (the publisher consults DynamoDB before SNS, SNS before Firehose, and
# the router puts facts after the findings, so one service down at a time reaches each), then pairs and all.
PHASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("sns",), "throttle"),
    (("firehose",), "5xx"),
    (("dynamodb",), "throttle"),
    (("kinesis",), "entries"),
    (("sns", "firehose"), "entries"),
    (("kinesis",), "throttle"),
    (SERVICES, "5xx"),
)


pytestmark = [pytest.mark.slow, pytest.mark.timeout(len(PHASES) * 150 + 300)]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("outages")
    with emulator_target(directory) as target, FaultProxy(target.endpoint_url or "") as proxy:
        env = {"TRAILWARDEN_TARGET": proxy.endpoint, "AWS_ENDPOINT_URL": proxy.endpoint}  # processors only
        with stack_on(target, directory, config_file(directory, GRACE), env=env) as stack:
            yield stack, proxy


@dataclass
class Phase:
    services: tuple[str, ...]
    mode: str
    expected: set[tuple[str, str]] = field(default_factory=set)
    first: dict[str, int] = field(default_factory=dict)  # shard -> first sequence number put in the outage
    last: dict[str, int] = field(default_factory=dict)
    records: int = 0
    early: int = 0  # findings of this phase alerted while the sinks were down
    held: int = 0  # checkpoint readings during the outage that stayed behind the outage's records
    passed: list[str] = field(default_factory=list)  # readings past them (must stay empty)
    faults: int = 0
    drained: float = 0.0


def found(stack: Live, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(rule, part) for rule, part in expected if any(a.finding.rule_id == rule for a in stack.about(part))}


def checkpoint_numbers(stack: Live) -> dict[str, int]:
    return {shard: int(mark) for shard, mark in stack.checkpoints("router").items() if mark.isdigit()}


def held_back(phase: Phase) -> set[tuple[str, str]]:
    """The findings that cannot be alerted while `phase.services` are down (SNS is acknowledged before
    Firehose, so a Firehose outage alone does not hold alerts back; a Kinesis one holds only stage 2's)."""
    if {"sns", "dynamodb"} & set(phase.services):
        return phase.expected
    if "kinesis" in phase.services:
        return {(rule, part) for rule, part in phase.expected if rule == MISSING_TAGS}
    return set()


def outage(stack: Live, proxy: FaultProxy, services: tuple[str, ...], mode: str, kinesis, stream: str) -> Phase:
    phase = Phase(services, mode)
    faults_before = sum(proxy.faults.values())
    proxy.fail(services, mode)
    t = time.time()
    tag = uuid.uuid4().hex[:8]
    for n in range(6):
        group, iid = f"sg-0o{n}{tag}", instance_id()
        records = [open_sg(group, t + n * 0.1), run_instances(iid, t + n * 0.1)]
        phase.expected |= {(SG_OPEN, group), (MISSING_TAGS, iid)}
        response = kinesis.put_record(
            StreamName=stream,
            PartitionKey=uuid.uuid4().hex,
            Data=subscription_record(records, stack.outputs["TrailLogGroupName"]),
        )
        shard, seq = response["ShardId"], int(response["SequenceNumber"])
        phase.first.setdefault(shard, seq)
        phase.last[shard] = seq
        phase.records += len(records)
    deadline = time.monotonic() + OUTAGE
    while time.monotonic() < deadline:
        marks = checkpoint_numbers(stack)
        for shard, first in phase.first.items():
            if marks.get(shard, 0) >= first:
                phase.passed.append(f"{shard} at {marks[shard]} >= {first}")
            else:
                phase.held += 1
        stack.poll()
    phase.early = len(found(stack, held_back(phase)))
    phase.faults = sum(proxy.faults.values()) - faults_before
    proxy.recover()
    recovered = time.monotonic()
    stack.wait_for(lambda: found(stack, phase.expected) == phase.expected, 120)
    phase.drained = time.monotonic() - recovered
    return phase


def test_sink_outages(
    proxied: tuple[Live, FaultProxy], reliability_row: Callable[[Row], Row], capsys: pytest.CaptureFixture
) -> None:
    stack, proxy = proxied
    started = time.monotonic()
    warm = f"sg-0warm{uuid.uuid4().hex[:8]}"
    stack.play([open_sg(warm, time.time())])
    assert stack.wait_for(lambda: stack.about(warm), 120), stack.logs()
    kinesis, stream = stack.target.client("kinesis"), stack.outputs["TrailStreamName"]  # direct, not proxied

    phases = []
    for services, mode in PHASES:
        phase = outage(stack, proxy, services, mode, kinesis, stream)
        phases.append(phase)
        with capsys.disabled():
            print(
                f"\n[sink outages] {'+'.join(services)} {mode}: {phase.faults} faults injected in {OUTAGE:.0f}s, "
                f"{phase.early} findings leaked early, checkpoint held {phase.held}x / passed {len(phase.passed)}x; "
                f"{len(found(stack, phase.expected))}/{len(phase.expected)} delivered {phase.drained:.1f}s after "
                f"recovery",
                flush=True,
            )

    def moved_on() -> bool:
        marks = checkpoint_numbers(stack)
        return all(marks.get(s, 0) >= seq for p in phases for s, seq in p.last.items())

    stack.wait_for(moved_on, 30)
    stack.wait_for(lambda: False, 6)  # time for a duplicate to show
    ids = Counter(a.finding.id for a in stack.alerts)
    duplicated = sum(n - 1 for n in ids.values() if n > 1)
    archived = Counter(f["id"] for f in stack.archived())
    expected = sum(len(p.expected) for p in phases)
    delivered = sum(len(found(stack, p.expected)) for p in phases)
    not_archived = sorted(set(ids) - set(archived))
    faults = Counter()
    for (service, _operation, _mode), n in proxy.faults.items():
        faults[service] += n
    ok = (
        delivered == expected
        and not duplicated
        and not not_archived
        and moved_on()
        and not any(p.passed or p.early for p in phases)
        and all(faults[s] for s in SERVICES)
    )
    row = reliability_row(
        Row(
            "sink outages",
            len(phases),
            sum(p.records for p in phases),
            expected,
            delivered,
            duplicated,
            ok=ok,
            seconds=time.monotonic() - started,
            figure=(
                f"{len(phases)} outages of {OUTAGE:.0f}s (throttling, 500/503, batch entries refused; each service "
                f"alone, SNS+Firehose, all): "
                + ", ".join(f"{s} {faults[s]}" for s in SERVICES)
                + " faults; checkpoints held in "
                f"{sum(p.held for p in phases)} readings, passed in {sum(len(p.passed) for p in phases)}; "
                f"drained in at most {max(p.drained for p in phases):.0f}s"
            ),
        )
    )
    assert delivered == expected, [sorted(p.expected - found(stack, p.expected)) for p in phases]
    assert not duplicated, [i for i, n in ids.items() if n > 1]
    assert not not_archived, not_archived
    assert not any(p.passed for p in phases), [p.passed for p in phases]
    assert not any(p.early for p in phases)
    assert all(faults[s] for s in SERVICES), faults
    assert moved_on()
    assert row.ok
