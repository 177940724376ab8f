"""Destinations against real protocol ends: local HTTP receivers for Slack, PagerDuty and the webhook, the
emulator's server for EventBridge and Security Hub. Payloads are checked against the documented formats,
and hostile CloudTrail text must come out escaped and bounded."""

from __future__ import annotations

import json
import socket
import time

import pytest

from consumers.destinations import slack
from consumers.destinations.base import DeliveryError, delivery_id
from consumers.destinations.eventbridge import DETAIL_TYPE, EventBridgeDestination
from consumers.destinations.pagerduty import PagerDutyDestination, event
from consumers.destinations.securityhub import SecurityHubDestination, asff, finding_types
from consumers.destinations.slack import SlackDestination
from consumers.destinations.webhook import DELIVERY, SIGNATURE, TIMESTAMP, WebhookDestination, verify
from infra.receivers import Receiver
from tests.support.destinations import HOSTILE, finding_dict, hostile_dict

SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver():
    r = Receiver("hook").start()
    yield r
    r.stop()


def slack_texts(payload: dict) -> list[tuple[str, str]]:
    """(type, text) of every text object in a Block Kit payload."""
    out = []
    for block in payload["blocks"]:
        if "text" in block:
            out.append((block["text"]["type"], block["text"]["text"]))
        out += [(f["type"], f["text"]) for f in block.get("fields", [])]
        out += [(e["type"], e["text"]) for e in block.get("elements", [])]
    return out


def test_slack_posts_block_kit_with_every_part_of_the_finding(receiver):
    SlackDestination(
        "team",
        receiver.url,
        link="https://findings.example/{id}",
        runbooks={"iam-user-created": "check who asked for the user"},
    ).send(finding_dict(1))
    (payload,) = receiver.bodies()
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "section", "section", "context"]
    flat = "\n".join(t for _, t in slack_texts(payload))
    for part in (
        "[HIGH] IAM user created",
        "alice created user new-1",
        "user/alice",
        "123456789012 / eu-west-1",
        "user/new-1",
        "runbook: check who asked",
        f"https://findings.example/{finding_dict(1)['id']}",
    ):
        assert part in flat
    assert payload["text"].startswith("🟠 [HIGH]")


def test_slack_resolution_and_digest_are_told_apart(receiver):
    dest = SlackDestination("team", receiver.url)
    dest.send(finding_dict(1, occurrences=5))
    dest.send(finding_dict(1, status="resolved", resolution="tags added", occurrences=5))
    digest, resolved = receiver.bodies()
    assert digest["blocks"][0]["text"]["text"].endswith("(5 occurrences)")
    assert resolved["blocks"][0]["text"]["text"].startswith("✅ Resolved")
    assert "Resolved: tags added" in resolved["blocks"][1]["text"]["text"]


def test_hostile_text_cannot_break_a_slack_message(receiver):
    payload = slack.message(hostile_dict(), "https://findings.example/{id}", HOSTILE)
    SlackDestination("team", receiver.url).send(hostile_dict())
    assert receiver.bodies()[0]["blocks"] == json.loads(json.dumps(slack.message(hostile_dict())))["blocks"]
    limits = {"header": slack.HEADER, "section": slack.SECTION, "context": slack.CONTEXT}
    for block in payload["blocks"]:
        if "text" in block:
            assert len(block["text"]["text"]) <= limits[block["type"]]
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= slack.FIELD for f in block.get("fields", []))
    for kind, value in slack_texts(payload):
        assert "\n\n" not in value and "\r" not in value and "\u202e" not in value and "\x00" not in value
        if kind == "mrkdwn":  # the only parsed texts: no raw <, > or & from the finding survive
            assert "<!channel>" not in value and "<@U123>" not in value and "<https://evil" not in value
    assert len(json.dumps(payload)) < 40_000


def test_pagerduty_triggers_then_resolves_with_the_finding_id_as_dedup_key(receiver):
    dest = PagerDutyDestination("oncall", routing_key="R0UTINGKEY0123456789012345678901", url=receiver.url)
    dest.send(finding_dict(2))
    dest.send(finding_dict(2, status="resolved", resolution="user deleted"))
    trigger, resolve = receiver.bodies()
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == finding_dict(2)["id"]
    assert trigger["routing_key"] == resolve["routing_key"] == "R0UTINGKEY0123456789012345678901"
    p = trigger["payload"]
    assert p["severity"] in {"critical", "error", "warning", "info"} and p["severity"] == "error"
    assert p["summary"] and len(p["summary"]) <= 1024 and p["source"] and p["timestamp"].endswith("Z")
    hostile = event(hostile_dict(), "k")
    assert len(hostile["payload"]["summary"]) <= 1024 and len(json.dumps(hostile)) < 60_000


def test_webhook_is_signed_over_timestamp_and_body_and_replay_safe(receiver):
    WebhookDestination("siem", receiver.url, SECRET).send(finding_dict(3))
    WebhookDestination("siem", receiver.url, SECRET).send(hostile_dict())
    (first, second) = receiver.requests
    headers = {k.title(): v for k, v in first.headers.items()}
    assert verify(SECRET.encode(), headers, first.body)
    assert json.loads(first.body)["id"] == finding_dict(3)["id"]
    assert not verify(SECRET.encode(), headers, first.body.replace(b"new-3", b"new-4"))  # tampered body
    assert not verify(b"other-secret", headers, first.body)
    assert not verify(SECRET.encode(), headers, first.body, now=int(headers[TIMESTAMP]) + 301)  # replayed later
    assert headers[DELIVERY] == delivery_id(finding_dict(3), "siem") != delivery_id(finding_dict(3), "other")
    assert headers[SIGNATURE].startswith("v1=")
    assert isinstance(json.loads(second.body), dict)  # hostile text is still one valid JSON document


@pytest.mark.parametrize(("status", "transient"), [(503, True), (429, True), (400, False), (404, False)])
def test_http_failures_are_classified_and_never_name_the_url_or_key(receiver, status, transient):
    receiver.status = status
    url = receiver.url + "/T0SECRET/B0SECRET/xoxsecretpart"
    for dest in (
        SlackDestination("s", url),
        PagerDutyDestination("p", "ROUTINGSECRETKEY", url=url),
        WebhookDestination("w", url, SECRET),
    ):
        with pytest.raises(DeliveryError) as caught:
            dest.send(finding_dict(4))
        assert caught.value.transient is transient
        for secret in ("T0SECRET", "xoxsecretpart", "ROUTINGSECRETKEY", SECRET):
            assert secret not in str(caught.value)
        if status == 429:
            assert caught.value.retry_after == 1.0


def test_an_unreachable_endpoint_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    for dest in (SlackDestination("s", url), WebhookDestination("w", url, "k")):
        with pytest.raises(DeliveryError) as caught:
            dest.send(finding_dict(5))
        assert caught.value.transient


def test_asff_types_severity_and_bounds():
    doc = asff(finding_dict(1), "111122223333", "eu-west-1")
    assert doc["Types"] == ["TTPs/Persistence/T1136", "TTPs/Persistence/T1098.003"]
    assert doc["Severity"] == {"Label": "HIGH"} and doc["Workflow"] == {"Status": "NEW"}
    assert doc["Resources"][0] == {
        "Type": "AwsIamUser",
        "Id": "arn:aws:iam::123456789012:user/new-1",
        "Region": "eu-west-1",
    }
    assert finding_types(["T1537", "T1486", "T9999"]) == [
        "Effects/Data Exfiltration/T1537",
        "Effects/Data Destruction/T1486",
    ]
    bad = asff(hostile_dict(), "111122223333", "eu-west-1")
    assert len(bad["Title"]) <= 256 and len(bad["Description"]) <= 1024 and len(bad["Resources"]) <= 32
    assert all(len(k) <= 128 and len(v) <= 2048 for k, v in bad["ProductFields"].items())
    assert len(json.dumps(bad)) < 240_000


@pytest.mark.slow
def test_security_hub_imports_then_resolves_the_same_id(aws_target):
    client = aws_target.client("securityhub")
    client.enable_security_hub()
    account = aws_target.client("sts").get_caller_identity()["Account"]
    dest = SecurityHubDestination("hub", client, account, aws_target.region)
    dest.send(finding_dict(6))
    dest.send(hostile_dict())
    dest.send(finding_dict(6, status="resolved", resolution="tags added", updated_at="2023-11-14T22:20:00Z"))
    found = client.get_findings()["Findings"]
    assert len(found) == 2  # the resolution updated the finding of the same Id, it did not add one
    (doc,) = [f for f in found if f["Id"] == finding_dict(6)["id"]]
    assert doc["Workflow"]["Status"] == "RESOLVED" and doc["RecordState"] == "ARCHIVED"
    assert doc["ProductFields"]["trailwarden/resolution"] == "tags added"


@pytest.mark.slow
def test_eventbridge_puts_the_finding_on_the_bus(aws_target):
    events, sqs = aws_target.client("events"), aws_target.client("sqs")
    events.create_event_bus(Name="security")
    url = sqs.create_queue(QueueName="bus-watch")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="findings",
        EventBusName="security",
        EventPattern=json.dumps({"source": ["trailwarden"], "detail-type": [DETAIL_TYPE]}),
    )
    events.put_targets(Rule="findings", EventBusName="security", Targets=[{"Id": "q", "Arn": arn}])
    dest = EventBridgeDestination("bus", events, "security")
    dest.send(finding_dict(8, status="resolved", resolution="gone"))
    dest.send(hostile_dict())
    got, deadline = [], time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        got += [
            json.loads(m["Body"])
            for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", [])
        ]
    assert len(got) == 2
    first = next(g for g in got if g["detail"]["id"] == finding_dict(8)["id"])
    assert first["detail-type"] == DETAIL_TYPE and first["detail"]["status"] == "resolved"
    assert first["detail"]["resolution"] == "gone"
