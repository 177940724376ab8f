"""Lease moves: a second worker (another daemon per stage, same applications, another worker id) joins,
takes a shard of each stream, then leaves (SIGTERM). Findings complete, none alerted twice, and stage-2
watches carried across: instances launched while worker A held their keyed shard are reported by worker B,
and instances launched while B held it are reported by A after B left.

If the KCL has not given the newcomer a lease within TRAILWARDEN_LEASE_WAIT seconds (default 25), one lease
per application is assigned to it in the lease table, as the KCL 3 leader does (leaseOwner, leaseCounter + 1);
the figure says which happened. The same for the leases B held when it left.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from consumers import launcher
from pipeline.stateful.facts import key_hash
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
)

from .results import Row

GRACE = 45
LEASE_WAIT = float(os.environ.get("TRAILWARDEN_LEASE_WAIT", "20"))
ACCOUNT, REGION = "111122223333", "us-east-1"  # what complete_record fills in


pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("leases")
    with live_stack(directory, config_file(directory, GRACE)) as running:
        yield running, directory


def owners(stack: Live, app: str) -> dict[str, str]:
    items = stack.target.client("dynamodb").scan(TableName=app, ConsistentRead=True).get("Items", [])
    return {i["leaseKey"]["S"]: i.get("leaseOwner", {}).get("S", "") for i in items}


def assign(stack: Live, app: str, shard: str, owner: str) -> None:
    """What the KCL 3 leader does to move a lease: a new owner and a higher counter."""
    ddb = stack.target.client("dynamodb")
    item = ddb.get_item(TableName=app, Key={"leaseKey": {"S": shard}}, ConsistentRead=True)["Item"]
    counter = int(item.get("leaseCounter", {}).get("N", "0")) + 1
    ddb.update_item(
        TableName=app,
        Key={"leaseKey": {"S": shard}},
        UpdateExpression="SET leaseOwner = :o, leaseCounter = :c",
        ExpressionAttributeValues={":o": {"S": owner}, ":c": {"N": str(counter)}},
    )


def wait_owned(stack: Live, app: str, worker: str, want: bool, forced_shard: str | None) -> str:
    """Wait for `worker` to hold (want) or no longer hold (not want) a lease of `app`; assign one if the KCL
    does not within LEASE_WAIT. Returns how it happened."""
    deadline = time.monotonic() + LEASE_WAIT
    while time.monotonic() < deadline:
        held = [s for s, o in owners(stack, app).items() if o == worker]
        if bool(held) == want:
            return "by the KCL"
        stack.poll()
    current = owners(stack, app)
    if want:
        assign(stack, app, forced_shard or sorted(current)[0], worker)
    else:
        for shard, owner in current.items():
            if owner == worker:
                assign(stack, app, shard, f"{app}-local")
    return "assigned in the lease table"


def keyed_shard_of(iid: str, shards: list[dict]) -> str:
    h = key_hash(f"{ACCOUNT}:{REGION}:{iid}")
    for shard in shards:
        r = shard["HashKeyRange"]
        if int(r["StartingHashKey"]) <= h <= int(r["EndingHashKey"]):
            return shard["ShardId"]
    raise AssertionError(iid)


def instances_on(shard: str, shards: list[dict], n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        iid = instance_id()
        if keyed_shard_of(iid, shards) == shard:
            out.append(iid)
    return out


def test_lease_moves(
    stack: tuple[Live, Path], reliability_row: Callable[[Row], Row], capsys: pytest.CaptureFixture
) -> None:
    stack, directory = stack
    started = time.monotonic()
    outputs = stack.outputs
    router_app, stateful_app = outputs["RouterAppName"], outputs["StatefulAppName"]
    a_worker, b_worker = f"{stateful_app}-local", f"{stateful_app}-b"
    keyed = stack.target.client("kinesis").list_shards(StreamName=outputs["KeyedStreamName"])["Shards"]
    warm = f"sg-0warm{uuid.uuid4().hex[:8]}"
    stack.play([open_sg(warm, time.time())])
    assert stack.wait_for(lambda: stack.about(warm), 120), stack.logs()
    played = 1

    tag = uuid.uuid4().hex[:6]
    # wave 1: watches begin on A (two instances per keyed shard); B joins before their grace ends
    wave1_instances = [i for shard in keyed for i in instances_on(shard["ShardId"], keyed, 2)]
    tagged = instance_id()
    t1 = time.time()
    groups = [f"sg-0la{n}{tag}" for n in range(4)]
    records = [run_instances(i, t1) for i in [*wave1_instances, tagged]] + [open_sg(g, t1) for g in groups[:2]]
    stack.play(records)
    time.sleep(4)
    stack.play([create_tags(tagged, t1 + 3)])
    b_daemons = {}
    for stage in ("router", "stateful"):
        spec = stack.pipeline.spec(stage)
        b_spec = launcher.AppSpec(
            spec.application,
            spec.stream,
            spec.processor,
            spec.initial_position,
            f"{spec.application}-b",
            spec.empty_batches,
            spec.settings,
            spec.env,
        )
        b_daemons[stage] = launcher.start(b_spec, stack.target, directory=directory / "worker-b")
    try:
        joined = {
            app: wait_owned(stack, app, f"{app}-b", True, keyed[-1]["ShardId"] if app == stateful_app else None)
            for app in (router_app, stateful_app)
        }
        b_keyed = sorted(s for s, o in owners(stack, stateful_app).items() if o == b_worker)
        stack.play([open_sg(g, time.time()) for g in groups[2:]])
        played += len(records) + 1 + 2

        fired_by: dict[str, str] = {}
        watched: list[str] = list(wave1_instances)

        def arrived(expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
            current = owners(stack, stateful_app)
            for iid in watched:
                if iid not in fired_by and any(a.finding.rule_id == MISSING_TAGS for a in stack.about(iid)):
                    fired_by[iid] = current.get(keyed_shard_of(iid, keyed), "")
            return {(r, p) for r, p in expected if any(a.finding.rule_id == r for a in stack.about(p))}

        wave1 = {(MISSING_TAGS, i) for i in wave1_instances} | {(SG_OPEN, g) for g in groups}
        stack.wait_for(lambda: arrived(wave1) == wave1, GRACE + 60)
        to_b = [i for i in wave1_instances if keyed_shard_of(i, keyed) in b_keyed]

        # wave 2: watches begin on B's keyed shard(s); B leaves (SIGTERM) before their grace ends
        wave2_instances = [i for shard in b_keyed for i in instances_on(shard, keyed, 2)]
        watched += wave2_instances
        t2 = time.time()
        more = [f"sg-0lb{n}{tag}" for n in range(3)]
        stack.play([run_instances(i, t2) for i in wave2_instances] + [open_sg(g, t2) for g in more])
        played += len(wave2_instances) + len(more)
        time.sleep(5)
    finally:
        for daemon in b_daemons.values():
            daemon.stop()
    left = {app: wait_owned(stack, app, f"{app}-b", False, None) for app in (router_app, stateful_app)}
    wave2 = {(MISSING_TAGS, i) for i in wave2_instances} | {(SG_OPEN, g) for g in more}
    stack.wait_for(lambda: arrived(wave2) == wave2, GRACE + 90)
    stack.wait_for(lambda: False, 6)  # time for a duplicate to show

    expected = wave1 | wave2
    got = arrived(expected)
    ids = Counter(a.finding.id for a in stack.alerts)
    duplicated = sum(n - 1 for n in ids.values() if n > 1)
    archived = {f["id"] for f in stack.archived()}
    not_archived = sorted(set(ids) - archived)
    on_b = [i for i in to_b if fired_by.get(i) == b_worker]
    back_on_a = [i for i in wave2_instances if fired_by.get(i) == a_worker]
    false_alerts = stack.about(tagged)
    with capsys.disabled():
        print(
            f"\n[lease moves] B joined ({joined}), held keyed {b_keyed}; watches from A fired on B: "
            f"{len(on_b)}/{len(to_b)}; B left ({left}); watches from B fired on A: {len(back_on_a)}/"
            f"{len(wave2_instances)}; fired by: {dict(Counter(fired_by.values()))}",
            flush=True,
        )
    ok = (
        got == expected
        and not duplicated
        and not not_archived
        and not false_alerts
        and to_b
        and len(on_b) == len(to_b)
        and len(back_on_a) == len(wave2_instances)
    )
    row = reliability_row(
        Row(
            "lease moves",
            2,
            played,
            len(expected),
            len(got),
            duplicated,
            ok=bool(ok),
            seconds=time.monotonic() - started,
            figure=(
                f"B joined ({'; '.join(sorted(set(joined.values())))}) and left by SIGTERM "
                f"({'; '.join(sorted(set(left.values())))}); watches A->B {len(on_b)}/{len(to_b)}, "
                f"B->A {len(back_on_a)}/{len(wave2_instances)}"
            ),
        )
    )
    assert got == expected, sorted(expected - got)
    assert not duplicated, [i for i, n in ids.items() if n > 1]
    assert not not_archived, not_archived
    assert not false_alerts
    assert to_b and len(on_b) == len(to_b), fired_by
    assert len(back_on_a) == len(wave2_instances), fired_by
    assert row.ok
