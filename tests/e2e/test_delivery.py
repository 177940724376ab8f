"""Durable delivery per destination, on the emulator's SNS and SQS with local HTTP receivers: routing, dedupe
of (id, destination, status, occurrences), an outage of one destination that the others do not notice and
after which it receives everything once, the dead-letter queue and its redrive, and no secret anywhere."""

from __future__ import annotations

import json
import logging
import time

import pytest

from consumers.deliverer import Backoff, Deliverer, DeliveryThreads, RateLimit
from consumers.destinations.build import build_all
from consumers.sinks import MemoryDedupe, SnsSink
from infra import destination_queues
from infra.receivers import Receiver
from pipeline.config import Config
from pipeline.finding import Finding
from pipeline.routing import Routing
from tests.support.destinations import finding_dict

pytestmark = pytest.mark.slow

SLACK_SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxsecretslack"
HMAC_SECRET = "hmac-secret-4f1c2a"
PD_KEY = "pd-routing-secret-9e8d"


@pytest.fixture
def receivers():
    made = {name: Receiver(name).start() for name in ("slack", "pagerduty", "webhook")}
    yield made
    for r in made.values():
        r.stop()


FAST = Backoff(1, 2)


def setup(target, receivers, routes, max_receives=10, backoff=FAST):
    env = {"TW_SLACK": receivers["slack"].url + SLACK_SECRET_PATH, "TW_PD": PD_KEY, "TW_HMAC": HMAC_SECRET}
    config = Config.from_dict(
        {
            "destinations": {
                "team": {"type": "slack", "url": "env:TW_SLACK"},
                "oncall": {"type": "pagerduty", "routing_key": "env:TW_PD", "url": receivers["pagerduty"].url},
                "siem": {"type": "webhook", "url": receivers["webhook"].url, "secret": "env:TW_HMAC"},
            },
            "routes": routes,
        }
    )
    routing = Routing.from_config(config)
    built, secrets = build_all(routing, target, env=env)
    topic = target.client("sns").create_topic(Name="findings")["TopicArn"]
    sqs = target.client("sqs")
    deliverers = {
        name: Deliverer(
            dest,
            destination_queues.ensure(target, topic, name, max_receives),
            sqs,
            routing,
            MemoryDedupe(),
            backoff=backoff,
        )
        for name, dest in built.items()
    }
    return topic, deliverers, secrets


def publish(target, topic, *docs):
    for doc in docs:
        target.client("sns").publish(TopicArn=topic, Message=json.dumps(doc))


def drain(deliverers, until, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        for d in deliverers:
            d.step(wait=0)
        time.sleep(0.1)
    return until()


ROUTES = [{"destinations": ["oncall"], "min_severity": "critical"}, {"destinations": ["team", "siem"], "default": True}]


def test_each_destination_gets_each_delivery_once_by_route(aws_target, receivers):
    topic, deliverers, _ = setup(aws_target, receivers, ROUTES)
    high, critical = finding_dict(1), finding_dict(2, severity="critical")
    SnsSink(aws_target.client("sns"), topic).deliver([Finding.from_dict(high)])  # the publisher's own path
    publish(
        aws_target,
        topic,
        critical,
        high,  # `high` again: a duplicate
        {**high, "occurrences": 3},
        {**high, "status": "resolved", "resolution": "user deleted"},
    )
    everything = list(deliverers.values())
    assert drain(everything, lambda: len(receivers["slack"].requests) >= 3 and receivers["pagerduty"].requests)
    drain(everything, lambda: False, timeout=2)  # anything more that would come
    slack = receivers["slack"].bodies()
    assert len(slack) == 3  # open, digest, resolution of `high`; the duplicate dropped; `critical` not routed here
    assert [m["blocks"][0]["text"]["text"] for m in slack][1].endswith("(3 occurrences)")
    assert slack[2]["blocks"][0]["text"]["text"].startswith("✅ Resolved")
    assert [b["dedup_key"] for b in receivers["pagerduty"].bodies()] == [critical["id"]]
    assert [(b["id"], b.get("status"), b.get("occurrences")) for b in receivers["webhook"].bodies()] == [
        (high["id"], "open", 1),
        (high["id"], "open", 3),
        (high["id"], "resolved", 1),
    ]
    assert deliverers["team"].stats.duplicates == 1 and deliverers["team"].stats.not_routed == 1


OUTAGE = 30.0  # seconds Slack is down


def test_a_destination_down_does_not_hold_the_others_and_then_receives_everything_once(aws_target, receivers):
    """Slack down for 30 s, findings published at its start and in its middle: the webhook gets each of them
    during the outage, Slack none, and once it is back every one, once (the backoff capped at 8 s here, so 30 s
    of retries stay below the 10 receives that would dead-letter a finding)."""
    routes = [{"destinations": ["team", "siem"], "default": True}]
    topic, deliverers, _ = setup(aws_target, receivers, routes, backoff=Backoff(1, 8))
    threads = DeliveryThreads(deliverers.values(), wait=1).start()

    def until(count: int, receiver: str, deadline: float) -> int:
        while len(receivers[receiver].requests) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return len(receivers[receiver].requests)

    try:
        receivers["slack"].status = 503  # Slack is down
        outage_end = time.monotonic() + OUTAGE
        publish(aws_target, topic, *[finding_dict(n) for n in range(12)])
        assert until(12, "webhook", outage_end) == 12  # the webhook had them during the outage
        time.sleep(max(0.0, outage_end - OUTAGE / 2 - time.monotonic()))
        publish(aws_target, topic, *[finding_dict(n) for n in range(12, 24)])  # more, in the middle of the outage
        assert until(24, "webhook", outage_end) == 24
        time.sleep(max(0.0, outage_end - time.monotonic()))
        assert receivers["slack"].refused >= 1 and not receivers["slack"].requests  # down the whole time
        receivers["slack"].status = 200
        back = time.monotonic()
        assert until(24, "slack", back + 30) == 24, receivers["slack"].refused
        time.sleep(2)  # anything more that would come
    finally:
        threads.stop()
    ids = [b["blocks"][-1]["elements"][0]["text"] for b in receivers["slack"].bodies()]
    assert len(ids) == 24 and len(set(ids)) == 24  # everything, once
    assert len(receivers["webhook"].requests) == 24
    assert deliverers["team"].stats.retried >= 1 and deliverers["team"].stats.dead_lettered == 0


def test_refused_findings_go_to_the_dead_letter_queue_and_redrive_brings_them_back(aws_target, receivers, caplog):
    caplog.set_level(logging.DEBUG)
    topic, deliverers, secrets = setup(
        aws_target,
        receivers,
        [{"destinations": ["team", "oncall", "siem"], "default": True}],
        max_receives=2,
        backoff=Backoff(0, 0),
    )
    receivers["slack"].status = 400  # refused: permanent, at once to the dead-letter queue
    receivers["pagerduty"].status = 503  # down: after maxReceiveCount (2) receives SQS moves it there
    receivers["webhook"].status = 403
    publish(aws_target, topic, finding_dict(1))
    sqs = aws_target.client("sqs")

    def dead(name):
        return destination_queues.depth(aws_target, deliverers[name].queue.dlq_url)

    assert drain(deliverers.values(), lambda: all(dead(n) == 1 for n in deliverers), timeout=40)
    dlq = sqs.receive_message(
        QueueUrl=deliverers["team"].queue.dlq_url, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"][0]
    assert dlq["MessageAttributes"]["reason"]["StringValue"] == "slack destination 'team': HTTP 400"
    for r in receivers.values():
        r.status = 200
    for name in deliverers:
        assert destination_queues.redrive(aws_target, deliverers[name].queue) == 1
    assert drain(deliverers.values(), lambda: all(len(r.requests) == 1 for r in receivers.values()), timeout=30)
    # no secret in what this run logged, dead-lettered or raised
    dead_letters = json.dumps(dlq)
    for secret in [*secrets.read_values, "xoxsecretslack", PD_KEY, HMAC_SECRET]:
        assert secret not in caplog.text and secret not in dead_letters


def test_rate_limit_spaces_sends():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    limit = RateLimit(30, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limit.wait()
    assert slept == [2.0, 2.0, 2.0]
    assert Backoff(5, 900).delay(1) == 5 and Backoff(5, 900).delay(4) == 40 and Backoff(5, 900).delay(20) == 900
    assert Backoff(5, 900).delay(1, retry_after=60) == 60
