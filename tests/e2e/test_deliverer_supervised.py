"""`trailwarden run`'s deliverer is a `trailwarden deliver` process under a supervisor (slow): killed, it is
started again, and the findings published meanwhile reach every local receiver once, from its queues."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from pipeline.commands.run import LiveStack
from pipeline.config import Config
from tests.support.destinations import finding_dict

pytestmark = pytest.mark.slow


def _wait(until, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        time.sleep(0.2)
    return until()


def test_a_killed_deliverer_is_restarted_and_nothing_published_meanwhile_is_lost(aws_target, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAILWARDEN_STATE_DIR", str(tmp_path / "state"))
    stack = LiveStack(aws_target)
    sns = aws_target.client("sns")
    topic = sns.create_topic(Name="trailwarden-findings")["TopicArn"]
    aws_target.client("dynamodb").create_table(  # the stack's dedupe table, as the template declares it
        TableName="trailwarden-dedupe",
        AttributeDefinitions=[{"AttributeName": "finding_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "finding_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    stack.outputs = {"FindingsTopicArn": topic, "DedupeTableName": "trailwarden-dedupe"}  # what the deliverer reads
    try:
        stack.start_destinations(Config.from_dict({}))  # none configured: the local receivers
        receivers = stack.local_destinations.receivers
        first = stack.delivering["deliverer"]
        assert first.alive() and first.pid != os.getpid()

        before = finding_dict(1, severity="critical")
        sns.publish(TopicArn=topic, Message=json.dumps(before))
        assert _wait(lambda: all(r.requests for r in receivers.values())), {n: r.requests for n, r in receivers.items()}

        os.kill(first.pid, signal.SIGKILL)  # a crash: no goodbye
        during = [finding_dict(n, severity="critical") for n in (2, 3)]
        for doc in during:  # published while no deliverer runs: kept in the destinations' queues
            sns.publish(TopicArn=topic, Message=json.dumps(doc))
        assert _wait(lambda: stack.delivering["deliverer"].pid != first.pid and stack.delivering["deliverer"].alive())
        assert stack.deliverer_supervisor.restarts["deliverer"] == 1

        ids = sorted(d["id"] for d in (before, *during))  # each once; a standard queue keeps no order
        assert _wait(lambda: sorted(b["id"] for b in receivers["webhook"].bodies()) == ids), receivers[
            "webhook"
        ].bodies()
        assert _wait(lambda: sorted(b["dedup_key"] for b in receivers["pagerduty"].bodies()) == ids)
        assert _wait(lambda: len(receivers["slack"].requests) == 3)
        time.sleep(2)  # anything more that would come: nothing is delivered twice
        assert sorted(b["id"] for b in receivers["webhook"].bodies()) == ids
        assert len(receivers["slack"].requests) == 3 and stack.local_destinations.bad_signatures == 0
        # the run's summary line: what each receiver got
        assert stack.delivered(settle=0) == "slack 3, pagerduty 3, webhook 3 (every webhook signature verified)"
    finally:
        stack.stop()
    assert not stack.delivering["deliverer"].alive()  # stopped by the run, by its pid
    log = (tmp_path / "state" / "deliver" / "deliver.log").read_text()
    assert "delivering to local-pagerduty, local-slack, local-webhook" in log
    assert stack.local_destinations._hmac not in log
