"""The event model: time parsing agrees with datetime, and accessors keep their types on hostile input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.event import Event, parse_event_time


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)))
def test_event_time_parses_like_datetime(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    assert parse_event_time(moment.strftime("%Y-%m-%dT%H:%M:%SZ")) == moment.timestamp()


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z",
        "2024-01-01X00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",
        "9999-12-31T20:00:00Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T02:00:00+05:00",
        "2024-01-01T0a:00:00Z",
        "not a time",
        "",
        None,
        17,
        [],
        {},
    ],
)
def test_invalid_event_times_are_none(value: Any) -> None:
    assert parse_event_time(value) is None


def test_other_iso_shapes_parse() -> None:
    base = datetime(2024, 7, 31, 13, 6, 24, tzinfo=UTC)
    assert parse_event_time("2024-07-31T13:06:24.250Z") == base.timestamp() + 0.25
    assert parse_event_time("2024-07-31T15:06:24+02:00") == base.timestamp()
    assert parse_event_time("2024-07-31T13:06:60Z") == (base + timedelta(seconds=36)).timestamp()


def test_from_record_explains_what_is_missing() -> None:
    assert "object" in Event.from_record([1, 2])
    assert "eventSource" in Event.from_record({"eventName": "X", "eventTime": "2024-07-31T13:06:24Z"})
    assert "eventName" in Event.from_record({"eventSource": "s", "eventName": 3, "eventTime": "2024-07-31T13:06:24Z"})
    assert "eventTime" in Event.from_record({"eventSource": "s", "eventName": "X", "eventTime": "yesterday"})


@pytest.mark.parametrize("junk", [None, 1, 1.5, True, "text", [], [{"arn": "x"}], {"nested": {"deep": []}}])
def test_accessors_keep_their_types_whatever_the_fields_hold(junk: Any) -> None:
    raw = {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "eventTime": "2024-07-31T13:06:24Z"}
    for name in (
        "userIdentity",
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "errorCode",
        "sourceIPAddress",
        "userAgent",
        "awsRegion",
        "recipientAccountId",
        "eventID",
        "eventType",
    ):
        raw[name] = junk
    event = Event.from_record(raw)
    assert isinstance(event, Event)
    for attr in (
        "event_id",
        "account",
        "region",
        "principal",
        "user_name",
        "source_ip",
        "user_agent",
        "error_code",
        "identity_type",
        "event_type",
    ):
        assert isinstance(getattr(event, attr), str), attr
    for attr in ("request", "response", "additional", "identity"):
        assert isinstance(getattr(event, attr), dict), attr
    assert isinstance(event.mfa_authenticated, bool)
    assert event.get("userIdentity", "sessionContext", "attributes") is None or isinstance(junk, dict)
