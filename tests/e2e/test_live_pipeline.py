"""End to end through the real KCL daemons and the emulator's server (slow).

CloudTrail records -> PutLogEvents -> subscription filter -> trail stream -> router daemon ->
keyed stream -> stateful daemon -> dedupe table -> SNS (-> SQS) and Firehose (-> S3).

By default each module run starts its own emulator on a free port; with
TRAILWARDEN_TEST_ENDPOINT=http://host:port the same tests run against that endpoint (e.g. LocalStack).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

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
)

pytestmark = pytest.mark.slow

GRACE = 15  # seconds: the missing-tags grace period of the test configuration
SG_CHANGES = "cis-security-group-changes"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("live")
    with live_stack(directory, config_file(directory, GRACE)) as running:
        yield running


def test_untagged_instance_reported_once_after_grace_and_tagged_one_not(stack: Live):
    untagged, tagged = instance_id(), instance_id()
    launched = time.time()
    stack.play([run_instances(untagged, launched), run_instances(tagged, launched), open_sg("sg-0live1", launched)])
    time.sleep(5)
    stack.play([create_tags(tagged, launched + 5)])

    assert stack.wait_for(lambda: stack.about(untagged), 120), stack.logs()
    first = stack.about(untagged)[0]
    assert first.received - launched >= GRACE  # not before the grace period is over
    assert first.finding.rule_id == MISSING_TAGS
    assert first.attributes == {"severity": "low", "rule_id": MISSING_TAGS, "account": first.finding.account}
    stack.wait_for(lambda: False, 6)  # time for a duplicate or a late finding about the tagged one to show
    assert len(stack.about(untagged)) == 1
    assert stack.about(tagged) == []

    opened = [a for a in stack.about("sg-0live1") if a.finding.rule_id == SG_OPEN]
    assert len(opened) == 1 and opened[0].attributes["severity"] == "medium"
    assert len(opened[0].subject) <= 100

    archive = stack.archived()
    assert {first.finding.id, opened[0].finding.id} <= {f["id"] for f in archive}
    # the CIS change monitor's finding on the same call is info: archived, never alerted (the default policy)
    change = [f for f in archive if f["rule_id"] == SG_CHANGES and "sg-0live1" in f["resources"]]
    assert len(change) == 1 and change[0]["severity"] == "info"
    assert not [a for a in stack.about("sg-0live1") if a.finding.rule_id == SG_CHANGES]


def test_no_processor_crashed(stack: Live):
    # (before the SIGKILL test, whose killed daemons may leave a child's interrupted checkpoint in the log)
    # a processor that raises, or writes to stdout (the daemon's protocol), shows up as a traceback
    # or a protocol error in the daemon's log
    text = "\n".join(d.log_file.read_text(errors="replace") for d in stack.pipeline.daemons.values())
    assert "Traceback" not in text
    assert "Caught exception from action dispatch" not in text
    assert "Unable to parse" not in text


def test_sigkill_of_each_daemon_mid_stream_loses_nothing_and_alerts_once(stack: Live):
    start = len(stack.alerts)
    groups = [f"sg-0kill{n:04d}" for n in range(90)]
    instances = [instance_id() for _ in range(6)]
    now = time.time()
    records = [open_sg(g, now + i * 0.05) for i, g in enumerate(groups)]
    records += [run_instances(iid, now + i) for i, iid in enumerate(instances)]
    records.sort(key=lambda r: r["eventTime"])

    def feed() -> None:
        for i in range(0, len(records), 8):
            stack.play(records[i:i + 8])
            time.sleep(0.25)

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(1.5)
    stack.pipeline.router.kill()
    stack.pipeline.start_stage("router")  # same worker id: the seeded leases are its own
    time.sleep(2.0)
    stack.pipeline.stateful.kill()
    stack.pipeline.start_stage("stateful", worker_id="trailwarden-stateful-replacement")  # a new worker
    feeder.join()

    def complete() -> bool:
        new = stack.alerts[start:]
        seen_groups = {r for a in new if a.finding.rule_id == SG_OPEN for r in a.finding.resources}
        seen_instances = {r for a in new if a.finding.rule_id == MISSING_TAGS for r in a.finding.resources}
        return all(any(g in r for r in seen_groups) for g in groups) and \
            all(any(i in r for r in seen_instances) for i in instances)

    assert stack.wait_for(complete, 180), f"alerts so far: {len(stack.alerts) - start}\n{stack.logs()}"
    stack.wait_for(lambda: False, 8)  # let any duplicate arrive
    ids = Counter(a.finding.id for a in stack.alerts[start:])
    assert [i for i, n in ids.items() if n > 1] == []
    archived = Counter(f["id"] for f in stack.archived())
    assert set(ids) <= set(archived)
    assert all(stack.pipeline.alive().values())
