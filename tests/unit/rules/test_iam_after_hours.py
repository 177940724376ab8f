"""iam-user-created-outside-business-hours: edges of the hours, days, time zones and DST, config errors."""

from __future__ import annotations

import json

import pytest

from pipeline.config import Config, ConfigError
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.rule import REGISTRY
from pipeline.rules import builtin_rules
from pipeline.ruletest import run_events, validate_params
from tests.support.corpus import STRATUS

builtin_rules()
RULE = REGISTRY["iam-user-created-outside-business-hours"]


def create_user(when: str, name: str = "reporting", **fields) -> dict:
    return {
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser",
        "eventTime": when,
        "requestParameters": {"userName": name},
        "responseElements": {
            "user": {
                "userName": name,
                "path": "/",
                "userId": "AIDAEXAMPLE0000000001",
                "arn": f"arn:aws:iam::111122223333:user/{name}",
            }
        },
        **fields,
    }


def outside(when: str, **params) -> bool:
    found = run_events(RULE, [create_user(when)], params=params)
    assert len(found) <= 1
    return bool(found)


# 2024-07-01 is a Monday.
@pytest.mark.parametrize(
    "when, expected",
    [
        ("2024-07-01T07:59:59Z", True),
        ("2024-07-01T08:00:00Z", False),
        ("2024-07-01T12:00:00Z", False),
        ("2024-07-01T17:59:59Z", False),
        ("2024-07-01T18:00:00Z", True),
        ("2024-07-01T23:59:59Z", True),
        ("2024-07-02T00:00:00Z", True),
        ("2024-07-05T17:59:00Z", False),  # Friday
        ("2024-07-06T12:00:00Z", True),  # Saturday
        ("2024-07-07T12:00:00Z", True),  # Sunday
    ],
)
def test_default_hours_edges(when, expected):
    assert outside(when) is expected


@pytest.mark.parametrize(
    "when, zone, expected",
    [
        # America/New_York switched to EDT (UTC-4) on Sunday 2024-03-10.
        ("2024-03-08T12:30:00Z", "America/New_York", True),  # Fri 07:30 EST
        ("2024-03-11T12:30:00Z", "America/New_York", False),  # Mon 08:30 EDT
        ("2024-03-11T11:59:59Z", "America/New_York", True),  # Mon 07:59:59 EDT
        # ...and back to EST (UTC-5) on Sunday 2024-11-03.
        ("2024-11-01T12:30:00Z", "America/New_York", False),  # Fri 08:30 EDT
        ("2024-11-04T12:30:00Z", "America/New_York", True),  # Mon 07:30 EST
        ("2024-11-04T22:59:00Z", "America/New_York", False),  # Mon 17:59 EST
        # Europe/Paris: CET+1 / CEST+2 (switch on Sunday 2024-03-31).
        ("2024-03-29T16:30:00Z", "Europe/Paris", False),  # Fri 17:30 CET
        ("2024-04-01T16:30:00Z", "Europe/Paris", True),  # Mon 18:30 CEST
        # Across the date line: Monday 09:00 in Auckland is still Sunday in UTC.
        ("2024-07-07T21:00:00Z", "Pacific/Auckland", False),
        ("2024-07-05T21:00:00Z", "Pacific/Auckland", True),  # Saturday 09:00 NZST
        # Half-hour offset.
        ("2024-07-01T02:29:00Z", "Asia/Kolkata", True),  # 07:59 IST
        ("2024-07-01T02:30:00Z", "Asia/Kolkata", False),  # 08:00 IST
    ],
)
def test_time_zones_and_daylight_saving(when, zone, expected):
    assert outside(when, time_zone=zone) is expected


@pytest.mark.parametrize(
    "days, when, expected",
    [
        (["Sun-Thu"], "2024-07-07T10:00:00Z", False),  # Sunday
        (["Sun-Thu"], "2024-07-05T10:00:00Z", True),  # Friday
        (["Fri-Mon"], "2024-07-06T10:00:00Z", False),  # wraps over the weekend
        (["Fri-Mon"], "2024-07-03T10:00:00Z", True),  # Wednesday
        (["monday", "WED", "Fri"], "2024-07-03T10:00:00Z", False),
        (["monday", "WED", "Fri"], "2024-07-02T10:00:00Z", True),
        (["Mon-Sun"], "2024-07-06T10:00:00Z", False),
    ],
)
def test_business_days(days, when, expected):
    assert outside(when, business_days=days) is expected


def test_custom_hours_and_midnight_end():
    assert outside("2024-07-01T06:30:00Z", hours_start="06:30", hours_end="24:00") is False
    assert outside("2024-07-01T23:59:59Z", hours_start="06:30", hours_end="24:00") is False
    assert outside("2024-07-01T06:29:59Z", hours_start="06:30", hours_end="24:00") is True


def test_finding_names_the_user_the_local_time_and_the_hours():
    [finding] = run_events(
        RULE, [create_user("2024-07-06T21:14:02Z", "backdoor")], params={"time_zone": "Europe/Paris"}
    )
    assert finding.resources == ("arn:aws:iam::111122223333:user/backdoor",)
    assert "backdoor" in finding.summary
    assert "Sat 2024-07-06 23:14 Europe/Paris" in finding.summary
    assert "Mon-Fri 08:00-18:00 Europe/Paris" in finding.summary
    assert finding.context["local_time"] == "2024-07-06T23:14:02+02:00"


def test_one_finding_per_created_user():
    night = "2024-07-06T23:00:00Z"
    found = run_events(RULE, [create_user(night, "a"), create_user(night, "a"), create_user(night, "b")])
    assert len({f.id for f in found}) == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"errorCode": "EntityAlreadyExists", "errorMessage": "User with name reporting already exists."},
        {"errorCode": "AccessDenied"},
    ],
)
def test_failed_creation_is_ignored(fields):
    assert run_events(RULE, [create_user("2024-07-06T23:00:00Z", **fields)]) == []


def test_other_iam_calls_are_ignored():
    record = {**create_user("2024-07-06T23:00:00Z"), "eventName": "CreateRole"}
    assert run_events(RULE, [record]) == []


def test_corpus_create_user_depends_on_the_time_zone():
    path = STRATUS / "aws.persistence.iam-create-admin-user.json"
    events = [Event.from_record(r) for r in json.loads(path.read_text())]

    def run(**params):
        config = Config.from_dict({"rules": {RULE.id: params}})
        detector = Detector(rules=[RULE], config=config)
        return [f for e in events for f in detector.process(e)]

    assert run() == []  # Thursday 13:33 UTC
    [finding] = run(time_zone="Asia/Tokyo")  # 22:33 in Tokyo
    assert finding.context["created_user"] == "malicious-iam-user"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"time_zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"time_zone": ""}, "must be an IANA time zone name"),
        ({"time_zone": "../../etc/passwd"}, "unknown time zone"),
        ({"business_days": []}, "must be a non-empty list"),
        ({"business_days": ["Mon", "Someday"]}, "'Someday' is not a day"),
        ({"business_days": ["Mon-Funday"]}, "'Funday' is not a day"),
        ({"business_days": [1, 2]}, "1 is not a day"),
        ({"hours_start": "8:00"}, "'8:00' is not a time of day"),
        ({"hours_start": "08:60"}, "is not a time of day"),
        ({"hours_end": "24:01"}, "is not a time of day"),
        ({"hours_start": "18:00", "hours_end": "08:00"}, "must be later than"),
        ({"hours_start": "09:00", "hours_end": "09:00"}, "must be later than"),
    ],
)
def test_config_errors_name_the_parameter_and_the_fix(params, message):
    config = Config.from_dict({"rules": {RULE.id: params}})
    with pytest.raises(ConfigError, match="iam-user-created-outside-business-hours") as info:
        validate_params(RULE, config)
    assert message in str(info.value)


@pytest.mark.parametrize("params", [{"business_days": "Mon-Fri"}, {"hours_start": 8}, {"time_zone": ["UTC"]}])
def test_wrong_types_are_rejected_by_the_configuration(params):
    config = Config.from_dict({"rules": {RULE.id: params}})
    with pytest.raises(ConfigError, match="should be a"):
        validate_params(RULE, config)
