"""The scenarios of `run`, `demo` and `simulate` raise every expected finding whatever the clock says:
attacks with a time condition (an IAM user created after hours) are placed where it holds, in the
configured time zone, at every hour of the week."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from pipeline.commands.run import live_scenario
from pipeline.commands.scenario import build_from_args
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.rules import builtin_rules
from pipeline.rules.iam_user_after_hours import RULE_ID, business_hours_of
from pipeline.scenario import ATTACKS, Scenario, compare

MONDAY = datetime(2026, 11, 23, 0, 7, 13, tzinfo=UTC).timestamp()  # a Monday, a few minutes past midnight
EVENTS = 800  # as long a timeline as run's 3,000 (the minimum duration), with less background to scan
RULE_IDS = {r.id for r in builtin_rules()}


def scan(scenario: Scenario, config: Config) -> list[Finding]:
    detector = Detector(config=config, overrides=scenario.overrides)
    found = [f for record in scenario.events for f in detector.process(Event.from_record(record))]
    return found + detector.finish()


def missing(scenario: Scenario, config: Config) -> list[str]:
    result = compare(scenario.expected, scan(scenario, config), RULE_IDS)
    return [f"{e.rule_id} {e.facts}" for e in result.missing] + [f"UNWANTED {e.rule_id}" for e, _ in result.unwanted]


def after_hours_user(scenario: Scenario) -> float:
    (event,) = [
        e
        for e in scenario.events
        if e["eventName"] == "CreateUser" and e["requestParameters"]["userName"] == "svc-backup-sync"
    ]
    return datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("day", range(7), ids=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
def test_the_run_scenario_raises_every_expected_finding_at_every_hour_of_the_week(day: int) -> None:
    config = Config.from_dict()
    hours = business_hours_of(config)
    failures = {}
    for hour in range(24):
        now = MONDAY + (day * 24 + hour) * 3600
        scenario = live_scenario(EVENTS, 5 + hour, list(ATTACKS), config, now=now)
        assert now - 9 * 86400 < scenario.end <= now
        assert not hours.contains(after_hours_user(scenario))
        assert (
            max(datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00")).timestamp() for e in scenario.events)
            <= now
        )
        if problems := missing(scenario, config):
            failures[hour] = problems
    assert not failures, f"hours of day {day} with findings missing or unwanted: {failures}"


@pytest.mark.parametrize(
    "zone,days", [("Asia/Tokyo", ["Mon-Fri"]), ("Asia/Riyadh", ["Sun-Thu"]), ("America/Los_Angeles", ["Mon-Sat"])]
)
def test_demo_and_simulate_follow_the_configured_business_hours(zone: str, days: list[str]) -> None:
    """Their scenario starts at a fixed moment (Tuesday 04:30 UTC, 13:30 in Tokyo): the attack moves
    out of the configured business hours instead of expecting a finding that cannot come."""
    config = Config.from_dict({"rules": {RULE_ID: {"time_zone": zone, "business_days": days}}})
    args = argparse.Namespace(events=EVENTS, seed=3, attacks="all", accounts=6)
    scenario = build_from_args(args, config)
    assert not business_hours_of(config).contains(after_hours_user(scenario))
    assert missing(scenario, config) == []


def test_business_hours_round_the_clock_expect_no_after_hours_finding() -> None:
    config = Config.from_dict(
        {"rules": {RULE_ID: {"business_days": ["Mon-Sun"], "hours_start": "00:00", "hours_end": "24:00"}}}
    )
    scenario = live_scenario(EVENTS, 1, ["iam-user-after-hours"], config, now=MONDAY + 14 * 3600)
    (expected,) = scenario.expected
    assert expected.rule_id == RULE_ID and not expected.present
    assert scenario.end == MONDAY + 14 * 3600  # not moved, hunting for a moment that never comes
    assert missing(scenario, config) == []
    assert not [f for f in scan(scenario, config) if f.rule_id == RULE_ID]
