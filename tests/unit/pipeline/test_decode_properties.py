"""Property tests: whatever arrives, nothing raises out of the decoder or a rule, and every input is
accounted for (events + dead letters + skipped == inputs)."""

from __future__ import annotations

import copy
import gzip
import itertools
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.decode import EVENTBRIDGE_DETAIL_TYPE, DeadLetter, DecodeStats, decode
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.rule import ANY
from pipeline.ruletest import complete_record
from tests.reliability import fuzz
from tests.support.corpus import stratus_records

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The fields rules read, nested ones by path: each gets replaced by a value of every JSON type.
RULE_FIELDS: list[tuple[str, ...]] = [
    ("eventSource",),
    ("eventName",),
    ("eventTime",),
    ("eventID",),
    ("eventType",),
    ("eventCategory",),
    ("awsRegion",),
    ("recipientAccountId",),
    ("sourceIPAddress",),
    ("userAgent",),
    ("errorCode",),
    ("errorMessage",),
    ("readOnly",),
    ("managementEvent",),
    ("resources",),
    ("sharedEventID",),
    ("vpcEndpointId",),
    ("serviceEventDetails",),
    ("requestParameters",),
    ("responseElements",),
    ("additionalEventData",),
    ("tlsDetails",),
    ("userIdentity",),
    ("userIdentity", "type"),
    ("userIdentity", "arn"),
    ("userIdentity", "accountId"),
    ("userIdentity", "userName"),
    ("userIdentity", "principalId"),
    ("userIdentity", "invokedBy"),
    ("userIdentity", "accessKeyId"),
    ("userIdentity", "sessionContext"),
    ("userIdentity", "sessionContext", "attributes"),
    ("userIdentity", "sessionContext", "attributes", "mfaAuthenticated"),
    ("userIdentity", "sessionContext", "attributes", "creationDate"),
    ("userIdentity", "sessionContext", "sessionIssuer"),
    ("userIdentity", "sessionContext", "sessionIssuer", "arn"),
    ("userIdentity", "sessionContext", "sessionIssuer", "userName"),
    ("userIdentity", "sessionContext", "sessionIssuer", "type"),
    ("userIdentity", "sessionContext", "ec2RoleDelivery"),
    ("userIdentity", "onBehalfOf"),
    ("additionalEventData", "MFAUsed"),
    ("additionalEventData", "LoginTo"),
    ("additionalEventData", "MobileVersion"),
    ("responseElements", "ConsoleLogin"),
    ("tlsDetails", "clientProvidedHostHeader"),
    ("tlsDetails", "tlsVersion"),
    ("requestParameters", "ipPermissions"),
    ("requestParameters", "ipPermissions", "items"),
    ("requestParameters", "securityGroupRuleSet"),
    ("requestParameters", "ModifySecurityGroupRulesRequest"),
    ("requestParameters", "policyDocument"),
    ("requestParameters", "bucketPolicy"),
    ("requestParameters", "name"),
    ("requestParameters", "userName"),
    ("requestParameters", "roleName"),
    ("requestParameters", "policyArn"),
    ("requestParameters", "secretId"),
    ("requestParameters", "filters"),
    ("requestParameters", "names"),
    ("requestParameters", "withDecryption"),
    ("requestParameters", "instanceId"),
    ("requestParameters", "keyId"),
    ("requestParameters", "eventSelectors"),
    ("requestParameters", "advancedEventSelectors"),
    ("responseElements", "instancesSet"),
    ("responseElements", "credentials"),
    ("responseElements", "user"),
]

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            "true",
            "false",
            "0.0.0.0/0",
            "::/0",
            "*",
            "\x1b[31m",
            "root",
            "Root",
            "2024-07-31T13:06:24Z",
            "AwsServiceEvent",
            "AccessDenied",
            "Failure",
        ]
    )
)
json_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _corpus_records() -> list[dict[str, Any]]:
    return [r for r in stratus_records() if isinstance(r, dict)]


def _rule_bases(detector: Detector, corpus: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """For each rule of the pack: its own cases' events completed, the corpus records it asks for, and a
    minimal record for every (eventSource, eventName) it declares."""
    bases: dict[str, list[dict[str, Any]]] = {}
    for rule in detector.rules:
        own = [complete_record(e, i, rule.id) for case in rule.cases for i, e in enumerate(case.events)]
        own += [r for r in corpus if rule.wants(str(r.get("eventSource")), str(r.get("eventName")))]
        for source, names in rule.events.items():
            for name in sorted(names) if names else ["AnyEvent"]:
                own.append(
                    complete_record(
                        {"eventSource": "ec2.amazonaws.com" if source == ANY else source, "eventName": name}, 0, rule.id
                    )
                )
        bases[rule.id] = [r for r in own if isinstance(r, dict)]
    return bases


DETECTOR = Detector()
CORPUS_RECORDS = _corpus_records()
RULE_BASES = _rule_bases(DETECTOR, CORPUS_RECORDS)
BASES = CORPUS_RECORDS + [r for records in RULE_BASES.values() for r in records]
# Half the time a rule is picked first, so every rule of the pack meets mangled versions of its events.
base_records = st.sampled_from(CORPUS_RECORDS or BASES) | st.sampled_from(sorted(RULE_BASES)).flatmap(
    lambda rule_id: st.sampled_from(RULE_BASES[rule_id])
)


def _set(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Set `path` to `value`, turning whatever is in the way (a scalar, or a list met with a key) into objects."""
    node: Any = record
    for step, following in itertools.pairwise(path):
        child = _child(node, step)
        fits = isinstance(child, dict) or (
            isinstance(child, list) and isinstance(following, int) and following < len(child)
        )
        if not fits:
            child = {}
            node[step] = child
        node = child
    node[path[-1]] = value


def _child(node: Any, step: Any) -> Any:
    if isinstance(node, list):
        return node[step] if isinstance(step, int) and step < len(node) else None
    return node.get(step)


def _paths(value: Any) -> list[tuple[Any, ...]]:
    """Every path into a record's nested objects and arrays (to replace any existing field)."""
    return fuzz.paths(value, max_depth=8, max_items=4)


@st.composite
def mutated_records(draw: st.DrawFn) -> dict[str, Any]:
    """A real or rule-targeted record with some fields (named or anywhere) set to values of any JSON type."""
    record = copy.deepcopy(draw(base_records))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            path = draw(st.sampled_from(RULE_FIELDS))
        else:
            existing = _paths(record)
            if not existing:
                continue
            path = draw(st.sampled_from(existing))
        if path[0] in ("eventSource", "eventName") and draw(st.integers(0, 3)):
            continue  # mostly keep the pair, so the event reaches the rules that index it
        _set(record, path, draw(json_values))
    return record


def _encode(value: Any) -> bytes:
    # stdlib json: writes what orjson refuses (ints over 64 bits, lone surrogates), which must then dead-letter.
    return json.dumps(value).encode()


def _run(data: bytes, origin: str = "prop") -> tuple[list[Event], list[DeadLetter], DecodeStats]:
    stats = DecodeStats()
    out = list(decode(data, origin, stats))
    events = [x for x in out if type(x) is Event]
    dead = [x for x in out if type(x) is DeadLetter]
    assert len(events) + len(dead) == len(out), "decode yields only events and dead letters"
    assert sum(stats.dead_letters.values()) == len(dead)
    for letter in dead:
        assert letter.reason and letter.origin.startswith(origin) and len(letter.sample) <= 512
    return events, dead, stats


def _detect(events: list[Event]) -> None:
    before = DETECTOR.stats.events
    for event in events:
        for finding in DETECTOR.process(event):
            finding.to_json()  # what every sink writes: must not raise either
    for finding in DETECTOR.finish():
        finding.to_json()
    assert DETECTOR.stats.events == before + len(events)
    assert not DETECTOR.stats.rule_errors, DETECTOR.stats.last_errors[:3]


def _cwl(messages: list[str]) -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "g",
        "logStream": "s",
        "subscriptionFilters": ["f"],
        "logEvents": [{"id": i, "timestamp": 1, "message": m} for i, m in enumerate(messages)],
    }


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise_and_are_accounted_for(data: bytes) -> None:
    for blob in (data, gzip.compress(data)):
        events, dead, stats = _run(blob)
        # One blob is one input at least: it yields something unless it is an empty JSON container.
        assert events or dead or stats.skipped or _empty_container(data)
        _detect(events)


def _empty_container(data: bytes) -> bool:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return all(not line.strip() or orjson.loads(line) in ([], {"Records": []}) for line in data.split(b"\n"))
    return doc == [] or (isinstance(doc, dict) and doc.get("Records") == [])


@SETTINGS
@given(
    st.lists(mutated_records(), min_size=1, max_size=6),
    st.sampled_from(["cwl", "s3", "lines", "eventbridge"]),
    st.booleans(),
)
def test_wrong_types_in_every_field_never_raise_and_every_record_is_accounted_for(
    records: list[dict[str, Any]], transport: str, compressed: bool
) -> None:
    if transport == "cwl":
        data = _encode(_cwl([json.dumps(r) for r in records]))
    elif transport == "s3":
        data = _encode({"Records": records})
    elif transport == "lines":
        data = b"\n".join(_encode(r) for r in records)
    else:
        data = b"\n".join(
            _encode({"detail-type": EVENTBRIDGE_DETAIL_TYPE, "source": "aws.x", "detail": r}) for r in records
        )
    events, dead, _ = _run(gzip.compress(data) if compressed else data)
    if len(records) > 1 or transport in ("cwl", "s3"):
        assert len(events) + len(dead) == len(records)
    else:
        # One JSON-lines record is a single document: a plain big-int/surrogate failure is one dead letter too.
        assert len(events) + len(dead) == 1
    _detect(events)


@SETTINGS
@given(
    st.lists(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=8)
        | st.lists(st.none(), max_size=2)
        | st.dictionaries(st.sampled_from(["eventSource", "eventName", "eventTime"]), st.none(), max_size=3),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["cwl-message", "record"]),
)
def test_nulls_and_scalars_where_records_belong(values: list[Any], where: str) -> None:
    data = _encode(_cwl([json.dumps(v) for v in values]) if where == "cwl-message" else {"Records": values})
    events, dead, _ = _run(data)
    assert events == [] and len(dead) == len(values)


@st.composite
def cwl_envelopes(draw: st.DrawFn) -> tuple[dict[str, Any], int, int]:
    """A CloudWatch Logs record with junk anywhere in its envelope; returns (doc, inputs, skipped)."""
    message_type = draw(st.sampled_from(["DATA_MESSAGE", "DATA_MESSAGE", "CONTROL_MESSAGE"]) | json_values)
    if draw(st.integers(0, 4)):
        good = st.sampled_from(BASES).map(lambda r: {"id": "1", "timestamp": 1, "message": json.dumps(r)})
        junk_event = json_values | st.fixed_dictionaries({"id": json_values, "message": json_values})
        log_events: Any = draw(st.lists(good | junk_event, max_size=5))
    else:
        log_events = draw(json_values)
    doc = {"messageType": message_type, "owner": draw(json_values), "logGroup": "g", "logEvents": log_events}
    if message_type == "CONTROL_MESSAGE":
        return doc, 1, 1
    if message_type != "DATA_MESSAGE" or not isinstance(log_events, list):
        return doc, 1, 0
    return doc, len(log_events), 0


@SETTINGS
@given(st.lists(cwl_envelopes(), min_size=1, max_size=4), st.booleans())
def test_cloudwatch_logs_records_with_junk_envelopes_are_accounted_for(
    blobs: list[tuple[dict[str, Any], int, int]], compressed: bool
) -> None:
    total_inputs = total_seen = 0
    for doc, inputs, skipped in blobs:
        data = _encode(doc)
        events, dead, stats = _run(gzip.compress(data) if compressed else data)
        assert sum(stats.skipped.values()) == skipped
        assert len(events) + len(dead) + sum(stats.skipped.values()) == inputs
        total_inputs += inputs
        total_seen += len(events) + len(dead) + skipped
        _detect(events)
    assert total_seen == total_inputs


@SETTINGS
@given(st.sampled_from(BASES), st.data())
def test_truncated_gzip_is_exactly_one_dead_letter(record: dict[str, Any], data: st.DataObject) -> None:
    blob = gzip.compress(_encode(_cwl([json.dumps(record)] * 3)))
    cut = data.draw(st.integers(2, len(blob) - 1))
    events, dead, _ = _run(blob[:cut])
    assert events == []
    assert [d.kind for d in dead] == ["truncated gzip"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.sampled_from(BASES),
    st.sampled_from(["requestParameters", "responseElements", "userAgent", "additionalEventData", "errorMessage"]),
    st.sampled_from(["string", "keys", "list"]),
    st.sampled_from(["cwl", "s3"]),
)
def test_one_megabyte_events_decode_and_pass_the_rules(
    record: dict[str, Any], field: str, shape: str, transport: str
) -> None:
    record = copy.deepcopy(record)
    if shape == "string":
        big: Any = "A\x1b" * (512 * 1024)
    elif shape == "keys":
        big = {f"k{i}": "v" * 40 for i in range(20_000)}
    else:
        big = [{"cidrIp": "10.0.0.0/8", "n": i} for i in range(40_000)]
    record[field] = big
    text = json.dumps(record)
    assert len(text) >= 1_000_000
    data = _encode(_cwl([text])) if transport == "cwl" else _encode({"Records": [record]})
    events, dead, _ = _run(gzip.compress(data))
    assume(record.get("eventSource") and record.get("eventName"))
    assert len(events) + len(dead) == 1
    _detect(events)


def test_bases_cover_the_pack() -> None:
    # The mutation tests only mean something if unmutated bases reach the rules of the pack.
    pairs = {(r["eventSource"], r["eventName"]) for r in BASES}
    for rule in DETECTOR.rules:
        assert any(rule.wants(s, n) for s, n in pairs), rule.id


DEEP = orjson.loads(b'{"a":' * 1000 + b"[]" + b"}" * 1000)  # as deep as the decoder lets through
JUNK = [None, "x\x1b[2J", -1, 1.5, True, [None], {"items": None}, {"items": [None, 1, "s"]}, DEEP]


def test_every_rule_survives_every_field_set_to_every_json_type() -> None:
    """A systematic sweep beside hypothesis's sampling: each rule's own events with each field the
    rules read, and each field they already hold, replaced by each junk value in turn."""
    processed = 0
    for rule_id, records in sorted(RULE_BASES.items()):
        for base in records[:3]:
            frozen = orjson.dumps(base)  # orjson round trip: a deep copy many times faster than copy.deepcopy
            for path in RULE_FIELDS + _paths(base)[:40]:
                if path[0] in ("eventSource", "eventName", "eventTime"):
                    continue
                for value in JUNK:
                    record = orjson.loads(frozen)
                    _set(record, path, value)
                    event = Event.from_record(record, rule_id)
                    assert isinstance(event, Event), (rule_id, path, event)
                    DETECTOR.process(event)
                    processed += 1
    DETECTOR.finish()
    assert processed > 1000
    assert not DETECTOR.stats.rule_errors, DETECTOR.stats.last_errors[:5]


def test_findings_serialize_whatever_the_fields_hold() -> None:
    """Every finding must serialize: sinks call Finding.to_json on what rules built from attacker data."""
    detector = Detector()
    failures: dict[str, set[tuple[Any, ...]]] = {}
    for records in RULE_BASES.values():
        for base in records[:3]:
            frozen = orjson.dumps(base)
            for path in RULE_FIELDS + _paths(base)[:40]:
                if path[0] in ("eventSource", "eventName", "eventTime"):
                    continue
                record = orjson.loads(frozen)
                _set(record, path, DEEP)
                event = Event.from_record(record, "deep")
                assert isinstance(event, Event)
                for finding in detector.process(event):
                    try:
                        finding.to_json()
                    except (TypeError, ValueError):
                        failures.setdefault(finding.rule_id, set()).add(path)
    assert not failures, {rule: sorted(map(str, paths))[:3] for rule, paths in failures.items()}
