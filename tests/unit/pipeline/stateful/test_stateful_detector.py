"""Two-stage Detector, the stage-1 fact extractor, facts on the wire, and the built-in stateful rules on real data."""

from __future__ import annotations

import json

from pipeline.cases import at
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.ruletest import complete_record
from pipeline.stateful.extractor import FactExtractor
from pipeline.stateful.facts import MAX_PARTITION_KEY, Fact, key_hash, partition_key
from tests.support.corpus import STRATUS
from tests.support.stateful import stateful_rules

TAGS = "ec2-instance-missing-required-tags"


def _event(i: int, partial: dict) -> Event:
    event = Event.from_record(complete_record(partial, i, "detector"))
    assert isinstance(event, Event)
    return event


def _launch(t: float, iid: str) -> dict:
    return {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "eventTime": at(t),
        "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-1", "minCount": 1, "maxCount": 1}]}},
        "responseElements": {"instancesSet": {"items": [{"instanceId": iid}]}},
    }


def test_finish_fires_only_up_to_the_last_event_time_and_summary_counts_open_watches():
    detector = Detector()
    events = [
        _launch(0, "i-0000000000000000a"),
        _launch(10, "i-0000000000000000b"),
        {"eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "eventTime": at(16)},
    ]
    findings = [f for i, p in enumerate(events) for f in detector.process(_event(i, p))]
    findings += detector.finish()
    assert [f.rule_id for f in findings if f.rule_id == TAGS] == [TAGS]  # the second is not yet due
    summary = detector.summary()
    assert summary["events"] == 3
    assert summary["findings_by_rule"][TAGS] == 1
    assert summary["stateful"]["open_watches"] == {TAGS: 1}
    assert summary["stateful"]["open_watches_text"] == f"1 watch still open: {TAGS}: 1"


def test_fact_extractor_only_runs_the_extractors_an_event_can_match():
    extractor = FactExtractor.for_rules(stateful_rules())
    assert extractor.index.lookup("s3.amazonaws.com", "GetObject")  # first-seen-region and recon want everything
    wanted = {br.rule.id for br in extractor.index.lookup("ec2.amazonaws.com", "CreateTags")}
    assert TAGS in wanted and "console-login-brute-force" not in wanted
    describe = {"eventSource": "ec2.amazonaws.com", "eventName": "DescribeRegions"}
    assert {f.rule for f in extractor.facts(_event(0, describe))} == {"first-seen-region", "discovery-burst"}
    # the same (account, region) again within the refresh period is not sent again (a burst counts every read)
    assert {f.rule for f in extractor.facts(_event(1, describe))} == {"discovery-burst"}


def test_facts_carry_only_declared_fields_and_survive_the_wire():
    extractor = FactExtractor.for_rules(stateful_rules())
    partial = _launch(0, "i-0000000000000000c")
    partial["requestParameters"]["tagSpecificationSet"] = {
        "items": [
            {
                "resourceType": "instance",
                "tags": [{"key": "Owner", "value": "alice"}, {"key": "Secret", "value": "x" * 5000}],
            }
        ]
    }
    facts = [f for f in extractor.facts(_event(0, partial)) if f.rule == TAGS]
    assert len(facts) == 1
    fact = facts[0]
    assert fact.fields == {"tags": {"Owner": "alice"}}  # only schema tags travel
    assert fact.key == "111122223333:us-east-1:i-0000000000000000c" == fact.partition_key
    assert Fact.from_bytes(fact.to_bytes()) == fact
    assert len(fact.to_bytes()) < 600


def test_long_keys_get_a_bounded_partition_key_hashed_consistently():
    key = "111122223333:" + "u" * 2000
    assert len(partition_key(key)) <= MAX_PARTITION_KEY
    assert key_hash(key) == key_hash(key) and 0 <= key_hash(key) < 2**128


def test_malformed_facts_are_rejected_with_value_error():
    for bad in (b"", b"[]", b'{"r": 1}', b'{"r": "x", "k": "y", "t": "soon"}', b"\xff"):
        try:
            Fact.from_bytes(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def _corpus(name: str) -> list[Event]:
    records = json.loads((STRATUS / name).read_text())
    events = [Event.from_record(r) for r in records]
    return sorted((e for e in events if isinstance(e, Event)), key=lambda e: e.time)


def test_access_key_then_admin_on_real_cloudtrail():
    detector = Detector(only=["iam-access-key-then-privilege"])
    findings = [f for e in _corpus("aws.persistence.iam-create-admin-user.json") for f in detector.process(e)]
    findings += detector.finish()
    assert [f.rule_id for f in findings] == ["iam-access-key-then-privilege"]
    assert findings[0].account == "229654561268"
    assert "malicious-iam-user" in findings[0].dedup_key


def test_failed_run_instances_on_real_cloudtrail_starts_no_watch():
    detector = Detector(only=[TAGS])
    for e in _corpus("aws.execution.ec2-launch-unusual-instances.json"):
        detector.process(e)
    detector.finish()
    assert detector.summary()["stateful"]["facts"] == 0


def test_login_profile_on_real_cloudtrail_opens_a_watch():
    detector = Detector(only=["iam-login-profile-without-mfa"], config=Config.from_dict())
    for e in _corpus("aws.persistence.iam-create-user-login-profile.json"):
        detector.process(e)
    assert detector.finish() == []  # the input ends long before the window does
    assert detector.summary()["stateful"]["open_watches"] == {"iam-login-profile-without-mfa": 1}
