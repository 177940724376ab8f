"""Finding ids and times: deterministic, per account, always writable."""

from __future__ import annotations

import orjson

from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import iso_time
from pipeline.ruletest import complete_record


def _admin_attach(account: str, event_id: str) -> Event:
    record = complete_record(
        {
            "eventSource": "iam.amazonaws.com",
            "eventName": "AttachUserPolicy",
            "recipientAccountId": account,
            "requestParameters": {"userName": "etl-runner", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        },
        0,
        "admin",
    )
    record["eventID"] = event_id
    event = Event.from_record(record)
    assert isinstance(event, Event)
    return event


def test_the_same_behaviour_in_two_accounts_is_two_findings() -> None:
    detector = Detector(only=["iam-admin-policy-attached"])
    first = detector.process(_admin_attach("111111111111", "e1"))
    second = detector.process(_admin_attach("222222222222", "e2"))
    again = detector.process(_admin_attach("111111111111", "e3"))
    assert len(first) == len(second) == len(again) == 1
    assert first[0].id != second[0].id
    assert first[0].id == again[0].id  # a repeat in one account within the window is one alert


def test_times_outside_years_1_to_9999_are_clamped_not_raised() -> None:
    assert iso_time(1e20) == "9999-12-31T23:59:59Z"
    assert iso_time(-1e20) == "0001-01-01T00:00:00Z"
    assert iso_time(1722431184.9) == "2024-07-31T13:06:24Z"


def test_context_is_bounded_so_every_finding_serializes() -> None:
    detector = Detector(only=["iam-admin-policy-attached"])
    (finding,) = detector.process(_admin_attach("111111111111", "e1"))
    deep: list = []
    for _ in range(1000):
        deep = [deep]
    finding.context["deep"] = deep
    finding.context["huge"] = 10**40
    finding.context["long"] = "x" * 100_000
    doc = orjson.loads(finding.to_json())
    assert doc["context"]["huge"] == str(10**40)
    assert len(doc["context"]["long"]) < 5000
