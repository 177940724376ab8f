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
DIGEST = 8  # seconds: the [alerts] digest_interval of the test configuration
SG_CHANGES = "cis-security-group-changes"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("live")
    with live_stack(directory, config_file(directory, GRACE, alerts=f'digest_interval = "{DIGEST}s"\n')) as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def destinations(stack: Live):
    """Every destination type fed from the findings topic by the deliverers `trailwarden deliver` runs, for the
    missing-tags rule: their queues subscribed from the module's start (the deliverers, started by the test
    that uses them, find what came since); returns what each destination shows of a finding id."""
    import json

    from consumers.deliverer import DeliveryThreads, build_deliverers
    from consumers.sinks.dedupe import MemoryDedupe
    from infra.receivers import Receiver
    from pipeline.config import Config
    from pipeline.routing import Routing

    receivers = {name: Receiver(name).start() for name in ("slack", "pagerduty", "webhook")}
    target = stack.target
    target.client("securityhub").enable_security_hub()
    events, sqs = target.client("events"), target.client("sqs")
    events.create_event_bus(Name="security")
    bus_queue = sqs.create_queue(QueueName="live-bus-watch")["QueueUrl"]
    bus_arn = sqs.get_queue_attributes(QueueUrl=bus_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="findings", EventBusName="security", EventPattern=json.dumps({"source": ["trailwarden"]}))
    events.put_targets(Rule="findings", EventBusName="security", Targets=[{"Id": "q", "Arn": bus_arn}])
    config = Config.from_dict(
        {
            "destinations": {
                "team": {"type": "slack", "url": receivers["slack"].url},
                "oncall": {"type": "pagerduty", "routing_key": "live-key", "url": receivers["pagerduty"].url},
                "siem": {"type": "webhook", "url": receivers["webhook"].url, "secret": "live-hmac"},
                "hub": {"type": "securityhub"},
                "bus": {"type": "eventbridge", "bus": "security"},
            },
            "routes": [{"destinations": ["team", "oncall", "siem", "hub", "bus"], "rules": [MISSING_TAGS]}],
        }
    )
    deliverers, _ = build_deliverers(target, stack.outputs, Routing.from_config(config), env={}, dedupe=MemoryDedupe())
    threads = DeliveryThreads(deliverers)  # started by the test: until then their queues keep what comes
    on_bus: list[dict] = []

    def shown(finding_id: str) -> dict[str, list[str]]:
        on_bus.extend(
            json.loads(m["Body"])["detail"]
            for m in sqs.receive_message(QueueUrl=bus_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
        )
        hub = [f for f in target.client("securityhub").get_findings()["Findings"] if f["Id"] == finding_id]
        return {
            "slack": [
                "resolved" if b["blocks"][0]["text"]["text"].startswith("✅") else "open"
                for b in receivers["slack"].bodies()
                if finding_id in json.dumps(b)
            ],
            "pagerduty": [b["event_action"] for b in receivers["pagerduty"].bodies() if b["dedup_key"] == finding_id],
            "webhook": [b["status"] for b in receivers["webhook"].bodies() if b["id"] == finding_id],
            "hub": [f["Workflow"]["Status"] for f in hub],
            "bus": [d["status"] for d in on_bus if d["id"] == finding_id],
        }

    def stop() -> None:
        """The deliverers stopped and their queues unsubscribed: the tests after see the topic as it was."""
        threads.stop()
        for r in receivers.values():
            r.stop()
        sns = target.client("sns")
        arns = {d.queue.arn for d in deliverers}
        for sub in sns.list_subscriptions_by_topic(TopicArn=stack.outputs["FindingsTopicArn"])["Subscriptions"]:
            if sub.get("Endpoint") in arns:
                sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])

    shown.stop = stop  # type: ignore[attr-defined]
    shown.threads = threads  # type: ignore[attr-defined]
    yield shown
    stop()


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
    assert first.attributes == {
        "severity": "low",
        "rule_id": MISSING_TAGS,
        "account": first.finding.account,
        "status": "open",
    }
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


def test_an_instance_tagged_after_its_alert_resolves_it_on_the_topic_with_the_same_id(stack: Live):
    iid = instance_id()
    launched = time.time()
    stack.play([run_instances(iid, launched)])
    assert stack.wait_for(lambda: stack.about(iid), 120), stack.logs()
    opened = stack.about(iid)[0].finding
    tagged = time.time()
    stack.play([create_tags(iid, tagged)])
    assert stack.wait_for(lambda: len(stack.about(iid)) >= 2, 120), stack.logs()
    stack.wait_for(lambda: False, 4)  # time for a duplicate to show
    alerts = stack.about(iid)
    assert [(a.finding.id, a.finding.status, a.attributes["status"]) for a in alerts] == [
        (opened.id, "open", "open"),
        (opened.id, "resolved", "resolved"),
    ]
    resolution = alerts[1].finding
    assert resolution.resolution == "tags added" and resolution.occurrences == 1
    assert resolution.updated_at is not None and abs(resolution.updated_at - tagged) < 1.5
    assert resolution.updated_at > opened.event_time
    assert stack.wait_for(
        lambda: {("open", opened.id), ("resolved", opened.id)} <= {(f["status"], f["id"]) for f in stack.archived()},
        120,
    )


def test_repeats_of_an_open_finding_are_alerted_at_once_then_counted_in_digests_with_the_same_id(stack: Live):
    """The same security group opened four times in its finding's dedup window: the first alert at once, the
    three repeats counted into digests (same id, status open, occurrences above 1), at most one per interval."""
    group = "sg-0digest1"
    now = time.time()
    stack.play([open_sg(group, now)])
    assert stack.wait_for(lambda: stack.about(group), 120), stack.logs()
    first = stack.about(group)[0]
    assert (first.finding.rule_id, first.finding.status, first.finding.occurrences) == (SG_OPEN, "open", 1)
    stack.play([open_sg(group, now + 1 + i) for i in range(3)])  # again and again: the same finding id
    assert stack.wait_for(lambda: stack.about(group)[-1].finding.occurrences >= 4, 120), [
        a.finding.occurrences for a in stack.about(group)
    ]
    stack.wait_for(lambda: False, DIGEST + 2)  # no digest without new repeats
    alerts = stack.about(group)
    assert {(a.finding.id, a.finding.rule_id, a.finding.status, a.attributes["status"]) for a in alerts} == {
        (first.finding.id, SG_OPEN, "open", "open")
    }
    counts = [a.finding.occurrences for a in alerts]
    assert counts[0] == 1 and counts[-1] == 4 and counts == sorted(set(counts)), counts  # each digest a new total
    assert all(a.finding.updated_at >= first.finding.updated_at for a in alerts[1:])
    assert stack.wait_for(  # the archive holds the digest too
        lambda: (first.finding.id, 4) in {(f["id"], f.get("occurrences")) for f in stack.archived()}, 120
    )


def test_every_destination_shows_the_untagged_instance_alerted_then_resolved(stack: Live, destinations):
    """The instance of the test above, tagged after its alert: Slack, PagerDuty and the webhook (local
    receivers), Security Hub and EventBridge (the emulator) each show its finding open, then resolved."""
    resolved = [a.finding for a in stack.alerts if a.finding.rule_id == MISSING_TAGS and a.finding.status == "resolved"]
    assert resolved, "the test above resolves an instance's finding on the topic"
    finding_id = resolved[0].id
    expected = {
        "slack": ["open", "resolved"],
        "pagerduty": ["trigger", "resolve"],
        "webhook": ["open", "resolved"],
        "hub": ["RESOLVED"],
        "bus": ["open", "resolved"],
    }
    destinations.threads.start()
    try:
        assert stack.wait_for(lambda: destinations(finding_id) == expected, 60), destinations(finding_id)
    finally:
        destinations.stop()


def test_no_processor_crashed(stack: Live):
    # (before the SIGKILL test, whose killed daemons may leave a child's interrupted checkpoint in the log)
    # a processor that raises, or writes to stdout (the daemon's protocol), shows up as a traceback
    # or a protocol error in the daemon's log
    text = "\n".join(d.log_file.read_text(errors="replace") for d in stack.pipeline.daemons.values())
    assert "Traceback" not in text
    assert "Caught exception from action dispatch" not in text
    assert "Unable to parse" not in text


def test_sigkill_of_each_daemon_mid_stream_loses_nothing_and_alerts_once(stack: Live):
    """Nothing here restarts a daemon: the pipeline's supervisor does, the stateful one as a new worker."""
    start = len(stack.alerts)
    restarts = {stage: stack.restarts(stage) for stage in ("router", "stateful")}
    groups = [f"sg-0kill{n:04d}" for n in range(90)]
    instances = [instance_id() for _ in range(6)]
    now = time.time()
    records = [open_sg(g, now + i * 0.05) for i, g in enumerate(groups)]
    records += [run_instances(iid, now + i) for i, iid in enumerate(instances)]
    records.sort(key=lambda r: r["eventTime"])

    def feed() -> None:
        for i in range(0, len(records), 8):
            stack.play(records[i : i + 8])
            time.sleep(0.25)

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(1.5)
    stack.pipeline.router.kill()  # restarted under the same worker id: the seeded leases are its own
    time.sleep(2.0)
    stack.pipeline.replace_worker("stateful", "trailwarden-stateful-replacement")
    stack.pipeline.stateful.kill()  # restarted as a new worker, which takes the dead one's leases
    feeder.join()

    def complete() -> bool:
        new = stack.alerts[start:]
        seen_groups = {r for a in new if a.finding.rule_id == SG_OPEN for r in a.finding.resources}
        seen_instances = {r for a in new if a.finding.rule_id == MISSING_TAGS for r in a.finding.resources}
        return all(any(g in r for r in seen_groups) for g in groups) and all(
            any(i in r for r in seen_instances) for i in instances
        )

    assert stack.wait_for(complete, 180), f"alerts so far: {len(stack.alerts) - start}\n{stack.logs()}"
    stack.wait_for(lambda: False, 8)  # let any duplicate arrive
    # first alerts only: records read again after a kill are counted again as repeats, into digests (occurrences
    # above 1), as docs/findings.md says
    ids = Counter(a.finding.id for a in stack.alerts[start:] if a.finding.occurrences == 1)
    assert [i for i, n in ids.items() if n > 1] == []
    archived = Counter(f["id"] for f in stack.archived())
    assert set(ids) <= set(archived)
    assert all(stack.pipeline.alive().values())
    assert {stage: stack.restarts(stage) - n for stage, n in restarts.items()} == {"router": 1, "stateful": 1}
