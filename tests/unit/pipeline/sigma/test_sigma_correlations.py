"""Sigma correlation rules as stateful rules: in event time, the same findings and finding ids whether both
stages run in one process (scan, backfill) or apart with the facts crossing the keyed stream (live, replay)."""

from __future__ import annotations

import random
from typing import Any

from pipeline.cases import ACCOUNT, at, call, failed, iam_user
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import Finding
from pipeline.rule import Rule
from pipeline.ruletest import complete_record
from pipeline.sigma import load
from pipeline.stateful.extractor import FactExtractor
from pipeline.stateful.facts import Fact, key_hash
from pipeline.stateful.rule import StatefulRule
from pipeline.stateful.state import KeyedState
from tests.support.corpus import FIXTURES

LOADED = load([FIXTURES / "sigma" / "correlations"], "test correlations")
RULES = {r.id: r for r in LOADED.rules}


def records(partials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [complete_record(p, i, "corr") for i, p in enumerate(partials)]


def scan(recs: list[dict[str, Any]], rules: list[Rule] | None = None) -> list[Finding]:
    detector = Detector(rules=rules or list(RULES.values()), config=Config.from_dict())
    found = [f for r in recs for f in detector.process(Event.from_record(r))]  # type: ignore[arg-type]
    return found + detector.finish()


def denied(user: str, minutes: float) -> dict[str, Any]:
    return call(
        "ec2.amazonaws.com",
        "DescribeInstances",
        userIdentity=iam_user(user),
        eventTime=at(minutes),
        **failed("Client.UnauthorizedOperation"),
    )


def ids(findings: list[Finding], rule: str) -> list[str]:
    return sorted({f.id for f in findings if f.rule_id == rule})


def test_event_count_five_denied_calls_by_one_principal_within_ten_minutes() -> None:
    assert len(ids(scan(records([denied("mallory", m) for m in range(5)])), "sigma-denied-burst")) == 1
    assert ids(scan(records([denied("mallory", m) for m in range(4)])), "sigma-denied-burst") == []
    assert ids(scan(records([denied("mallory", m * 4) for m in range(5)])), "sigma-denied-burst") == []  # 16 min
    mixed = [denied("mallory" if m % 2 else "bob", m) for m in range(8)]
    assert ids(scan(records(mixed)), "sigma-denied-burst") == []
    finding = next(
        f for f in scan(records([denied("mallory", m) for m in range(5)])) if f.rule_id == "sigma-denied-burst"
    )
    assert finding.dedup_key == f"userIdentity.arn=arn:aws:iam::{ACCOUNT}:user/mallory"
    assert finding.account == ACCOUNT and len(finding.event_ids) == 5 and finding.severity == "medium"


def test_value_count_list_calls_to_more_than_three_services() -> None:
    services = ["s3", "iam", "ec2", "lambda", "sns"]
    spread = [
        call(f"{s}.amazonaws.com", "ListThings", userIdentity=iam_user("eve"), eventTime=at(i))
        for i, s in enumerate(services[:4])
    ]
    assert len(ids(scan(records(spread)), "sigma-list-spread")) == 1
    assert ids(scan(records([*spread[:3], spread[0]])), "sigma-list-spread") == []


def _key(user: str, minutes: float) -> dict[str, Any]:
    return call("iam.amazonaws.com", "CreateAccessKey", {"userName": user}, eventTime=at(minutes))


def _admin(user: str, minutes: float) -> dict[str, Any]:
    return call(
        "iam.amazonaws.com",
        "AttachUserPolicy",
        {"userName": user, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        eventTime=at(minutes),
    )


def test_temporal_ordered_key_then_admin_for_the_same_user_within_an_hour() -> None:
    assert len(ids(scan(records([_key("bob", 0), _admin("bob", 30)])), "sigma-key-then-admin")) == 1
    assert ids(scan(records([_admin("bob", 0), _key("bob", 30)])), "sigma-key-then-admin") == []
    assert ids(scan(records([_key("bob", 0), _admin("carol", 30)])), "sigma-key-then-admin") == []
    assert ids(scan(records([_key("bob", 0), _admin("bob", 90)])), "sigma-key-then-admin") == []


def test_temporal_either_order_and_generated_base_rules() -> None:
    found = scan(records([_admin("bob", 0), _key("bob", 30)]))
    assert len(ids(found, "sigma-key-and-admin")) == 1
    # the base rules are referred to by a correlation without `generate: true`: they raise nothing alone
    assert not {"sigma-key-created", "sigma-admin-attached", "sigma-denied-call"} & set(RULES)
    assert {f.rule_id for f in found} == {"sigma-key-and-admin"}


def _stream() -> list[dict[str, Any]]:
    partials = [denied("mallory", m * 0.5) for m in range(12)] + [denied("bob", m) for m in range(3)]
    partials += [_key("bob", 1), _admin("bob", 20), _key("dan", 2), _admin("dan", 3)]
    partials += [
        call(f"{s}.amazonaws.com", "ListThings", userIdentity=iam_user("eve"), eventTime=at(5 + i))
        for i, s in enumerate(["s3", "iam", "ec2", "lambda", "sns", "sqs"])
    ]
    partials += [denied("mallory", 200 + m) for m in range(6)]  # a second burst, another dedup window
    return sorted(records(partials), key=lambda r: r["eventTime"])


def test_out_of_order_arrival_within_the_allowed_lateness_gives_the_same_findings() -> None:
    ordered = _stream()
    expected = {f.id for f in scan(ordered)}
    assert len({f.rule_id for f in scan(ordered)}) == 4 and len(expected) >= 5
    rng = random.Random(3)  # shuffled within buckets of 100 s, less than the allowed lateness (2 minutes)
    buckets: dict[int, list[dict[str, Any]]] = {}
    for r in ordered:
        buckets.setdefault(int(Event.from_record(r).time // 100), []).append(r)  # type: ignore[union-attr]
    arrival = [r for _, b in sorted(buckets.items()) for r in rng.sample(b, len(b))]
    assert arrival != ordered
    assert {f.id for f in scan(arrival)} == expected


def test_stages_apart_on_two_shards_raise_the_same_finding_ids_as_scan() -> None:
    recs = _stream()
    expected = {f.id for f in scan(recs)}
    stateful = [r for r in RULES.values() if isinstance(r, StatefulRule)]
    config = Config.from_dict()
    router = FactExtractor.for_rules(stateful, config)
    shards = [KeyedState.for_rules(stateful, config) for _ in range(2)]
    found: list[Finding] = []
    for record in recs:
        for fact in router.facts(Event.from_record(record)):  # type: ignore[arg-type]
            carried = Fact.from_bytes(fact.to_bytes())  # as the keyed stream carries it
            found += shards[key_hash(carried.key) % 2].add([carried])
    for shard in shards:
        found += shard.flush()
    assert {f.id for f in found} == expected
    assert all(shard.keys() for shard in shards)  # both shards held keys: the split is real
