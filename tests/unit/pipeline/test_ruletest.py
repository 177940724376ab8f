"""The rule test runner, its record completion, and `trailwarden rules list|test|show`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.event import Event, parse_event_time
from pipeline.rule import REGISTRY, Case, Hit, MatchRule, metadata
from pipeline.rules import builtin_rules
from pipeline.ruletest import BASE_TIME, STEP_SECONDS, complete_record, meta_problems, run_case, run_rules


def adhoc_rule(check, cases=(), rule_id="adhoc-test-rule", params=None) -> MatchRule:
    """A rule that is not registered, so it never leaks into the built-in pack."""
    return MatchRule(
        **metadata(
            id=rule_id,
            title="adhoc",
            severity="low",
            attack="T0000",
            events={"ec2.amazonaws.com": ["RunInstances"]},
            params=params,
            dedup="1h",
            runbook="",
            cases=cases,
            fn=check,
        ),
        check=check,
    )


RUN = {"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"}


def test_complete_record_fills_realistic_defaults():
    record = complete_record(dict(RUN), 0, "case")
    assert record["eventVersion"] == "1.08"
    assert record["awsRegion"] == "us-east-1"
    assert record["recipientAccountId"] == "111122223333"
    assert record["sourceIPAddress"] == "198.51.100.7"
    assert record["userAgent"].startswith("aws-cli/2.15.0")
    assert record["eventType"] == "AwsApiCall"
    assert record["managementEvent"] is True and record["readOnly"] is False
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["userIdentity"]["arn"].startswith("arn:aws:iam::111122223333:user/")
    event = Event.from_record(record)
    assert isinstance(event, Event)
    assert event.time == BASE_TIME


def test_complete_record_keeps_given_fields_whole_and_does_not_mutate_input():
    identity = {"type": "Root", "arn": "arn:aws:iam::111122223333:root"}
    partial = {**RUN, "userIdentity": identity, "errorCode": "AccessDenied", "awsRegion": "eu-west-1"}
    record = complete_record(partial, 3, "case")
    assert record["userIdentity"] == identity  # no deep merge: no IAM user name grafted onto root
    assert record["errorCode"] == "AccessDenied" and record["awsRegion"] == "eu-west-1"
    record["userIdentity"]["type"] = "changed"
    assert identity["type"] == "Root"


def test_complete_record_ids_are_deterministic_and_distinct():
    a = complete_record(dict(RUN), 0, "one")
    assert a["eventID"] == complete_record(dict(RUN), 0, "one")["eventID"]
    others = {complete_record(dict(RUN), 1, "one")["eventID"], complete_record(dict(RUN), 0, "two")["eventID"]}
    assert a["eventID"] not in others and len(others) == 2


def test_complete_record_times_increment_and_read_only_follows_the_name():
    times = [parse_event_time(complete_record(dict(RUN), i, "c")["eventTime"]) for i in range(3)]
    assert times == [BASE_TIME + STEP_SECONDS * i for i in range(3)]
    describe = complete_record({"eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances"})
    assert describe["readOnly"] is True


def test_console_login_gets_console_shape():
    record = complete_record({"eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin"})
    assert record["eventType"] == "AwsConsoleSignIn"
    assert "Mozilla" in record["userAgent"]


def test_run_case_counts_distinct_findings_and_reports_mismatch():
    rule = adhoc_rule(lambda e, p: Hit(key=e.text("requestParameters", "k")))
    events = [
        {**RUN, "requestParameters": {"k": "a"}},
        {**RUN, "requestParameters": {"k": "a"}},
        {**RUN, "requestParameters": {"k": "b"}},
    ]
    assert run_case(rule, Case("two keys", events, expect=2)).passed
    failed = run_case(rule, Case("wrong", events, expect=3))
    assert not failed.passed and failed.got == 2 and failed.expected == 3


def test_run_case_fails_when_the_rule_raises_even_if_the_count_matches():
    def broken(e, p):
        raise KeyError("boom")

    result = run_case(adhoc_rule(broken), Case("raises", dict(RUN), expect=0))
    assert not result.passed
    assert "boom" in result.error


def test_run_case_passes_params_and_rejects_unknown_ones():
    rule = adhoc_rule(lambda e, p: p.on, params={"on": False})
    assert run_case(rule, Case("off", dict(RUN), expect=0)).passed
    assert run_case(rule, Case("on", dict(RUN), expect=1, params={"on": True})).passed
    bad = run_case(rule, Case("bad", dict(RUN), expect=0, params={"nope": 1}))
    assert not bad.passed and "nope" in bad.error


def test_run_case_reports_an_unusable_event():
    result = run_case(adhoc_rule(lambda e, p: True), Case("no name", {"eventSource": "ec2.amazonaws.com"}, 0))
    assert not result.passed and "eventName" in result.error


def test_meta_check_needs_a_positive_and_a_negative_case():
    only_positive = adhoc_rule(lambda e, p: True, cases=[Case("hit", dict(RUN), expect=1)])
    assert any("no finding" in p for p in meta_problems(only_positive))
    only_negative = adhoc_rule(lambda e, p: True, cases=[Case("none", dict(RUN), expect=0)])
    assert any("expects a finding" in p for p in meta_problems(only_negative))
    both = adhoc_rule(lambda e, p: True, cases=[Case("a", dict(RUN), 1), Case("b", dict(RUN), 0)])
    assert meta_problems(both) == []
    assert not run_rules([only_positive]).ok


def test_every_builtin_rule_passes_its_cases_and_the_meta_check():
    report = run_rules(builtin_rules())
    assert report.problems == []
    assert [f"{r.rule_id} :: {r.case}: {r.error or r.got}" for r in report.failures] == []
    assert len(report.results) >= 2 * len(builtin_rules())


def test_cli_rules_test_exits_zero_on_the_pack(capsys):
    assert main(["rules", "test"]) == 0
    out = capsys.readouterr().out
    assert "PASS  console-login-without-mfa :: iam user without mfa" in out
    assert " 0 failed" in out


@pytest.fixture
def registry_guard():
    """Rules loaded by a test are removed afterwards, so they never join the pack of later tests."""
    before = set(REGISTRY)
    yield
    for rule_id in set(REGISTRY) - before:
        del REGISTRY[rule_id]


BROKEN_RULE = textwrap.dedent('''
    from pipeline.rule import Case, match

    @match(id="tmp-broken-case", title="t", severity="low", attack="T0000",
           events={"ec2.amazonaws.com": ["RunInstances"]},
           cases=[Case("fires", {"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"}, expect=1),
                  Case("deliberately wrong", {"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"},
                       expect=0)])
    def tmp_broken_case(e, p):
        """Always fires."""
        return True
''')


def test_cli_rules_test_exits_non_zero_on_a_broken_case(tmp_path: Path, capsys, registry_guard):
    module = tmp_path / "broken_rule.py"
    module.write_text(BROKEN_RULE)
    assert main(["rules", "--load", str(module), "test", "tmp-broken-case"]) == 1
    out = capsys.readouterr().out
    assert "PASS  tmp-broken-case :: fires" in out
    assert "FAIL  tmp-broken-case :: deliberately wrong  (expected 0 finding(s), got 1)" in out
    assert "1 failed" in out


def test_cli_rules_test_unknown_id_is_a_usage_error(capsys):
    assert main(["rules", "test", "no-such-rule"]) == 2
    assert "no-such-rule" in capsys.readouterr().err


def test_cli_rules_list_table_and_json(capsys):
    assert main(["rules", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "SOURCE", "KIND", "SEVERITY", "ATT&CK", "TITLE"]
    row = next(line for line in table if line.startswith("cis-unauthorized-api-calls "))
    assert "builtin" in row and "match" in row and "info" in row and "T1580" in row and "(CIS 4.1)" in row
    row = next(line for line in table if line.startswith("sigma-aws-cloudtrail-disable-logging "))
    assert " sigma " in row and "medium" in row and "T1685.002" in row
    assert main(["rules", "list", "--format", "json", "--source", "builtin"]) == 0
    rules = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rules.keys() == {r.id for r in builtin_rules()}
    sg = rules["ec2-security-group-open-to-internet"]
    assert sg["kind"] == "match" and sg["severity"] == "medium" and sg["attack"] == ["T1562.007"]
    assert sg["params"] == {"ignore_ports": []}


def test_cli_rules_show(capsys):
    assert main(["rules", "show", "iam-user-created-outside-business-hours"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "severity:  medium",
        "T1136.003",
        "Description:",
        "Runbook:",
        'time_zone = "UTC"',
        'business_days = ["Mon", "Tue", "Wed", "Thu", "Fri"]',
        'hours_start = "08:00"',
        "iam.amazonaws.com: CreateUser",
    ):
        assert expected in out
