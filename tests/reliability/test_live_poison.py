"""Poison input into the live stream: bad records put straight into the trail stream (Kinesis PutRecord, as
a subscription record arrives), interleaved with good ones. The shard keeps moving (each shard's checkpoint
passes the last record put on it), every bad record is dead-lettered with its reason under
`dead-letters/<router app>/<shard>/...` in the state bucket, findings about the good records around them
arrive, and no processor raises.
"""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pipeline.finding import iso_time
from tests.support.live import (
    MISSING_TAGS,
    SG_OPEN,
    Live,
    config_file,
    create_tags,
    instance_id,
    live_stack,
    open_sg,
    run_instances,
    subscription_record,
)

from .results import Row

pytestmark = pytest.mark.slow

GRACE = 10
SEED = 11
HOSTILE = "".join(chr(c) for c in range(32)) + "\x7f\x9b[31m\u202e\u2028\u200b" + '"},{"injected":1}'
LONG = (HOSTILE * 300)[:10_000]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("poison")
    with live_stack(directory, config_file(directory, GRACE)) as running:
        yield running


@dataclass
class Put:
    name: str
    data: bytes
    bad: bool  # must be dead-lettered
    shard: str = ""
    sequence: str = ""


def wrong_typed_events(t: float) -> list[dict]:
    """For every (eventSource, eventName) a built-in rule asks for: the fields rules read set to wrong types,
    at the top level and one level down (eventSource, eventName and eventTime stay valid)."""
    from pipeline.rules import builtin_rules

    pairs: set[tuple[str, str]] = set()
    for rule in builtin_rules():
        for source, names in (rule.events or {}).items():
            source = "ec2.amazonaws.com" if source == "*" else source
            for name in names if isinstance(names, list | tuple) else ["AnyCall"]:
                pairs.add((source, name))
    top = {
        "userIdentity": ["x", 1],
        "sourceIPAddress": {"ip": 1},
        "userAgent": 12,
        "requestParameters": ["a", 1],
        "responseElements": "oops",
        "additionalEventData": 5,
        "errorCode": {"c": 1},
        "errorMessage": [],
        "recipientAccountId": 123456789012,
        "awsRegion": None,
        "eventType": 7,
        "readOnly": "yes",
        "resources": {"a": 1},
        "eventID": 3,
        "requestID": [],
        "serviceEventDetails": 3,
        "tlsDetails": "x",
    }
    nested_values = [[1], "x", 7, {"k": None}, None, True, 1e308]
    keys = (
        "groupId",
        "ipPermissions",
        "instancesSet",
        "tagSet",
        "resourcesSet",
        "policy",
        "policyDocument",
        "bucketName",
        "userName",
        "roleName",
        "name",
        "trailName",
        "keyId",
        "items",
        "ConsoleLogin",
        "MFAUsed",
        "type",
        "arn",
        "accountId",
        "principalId",
        "sessionContext",
        "attributes",
        "mfaAuthenticated",
        "ipRanges",
        "cidrIp",
        "tagSpecificationSet",
        "bucketPolicy",
        "acl",
        "encryptionConfiguration",
    )
    out = []
    for i, (source, name) in enumerate(sorted(pairs)):
        base = {"eventVersion": "1.08", "eventSource": source, "eventName": name, "eventTime": iso_time(t)}
        out.append({**base, **top})
        nested = {k: nested_values[(i + j) % len(nested_values)] for j, k in enumerate(keys)}
        out.append(
            {
                **base,
                "eventID": str(uuid.uuid4()),
                "userIdentity": dict(nested),
                "requestParameters": nested,
                "responseElements": nested,
                "additionalEventData": nested,
            }
        )
    return out


def poison(rng: random.Random, t: float, log_group: str) -> list[Put]:
    good = subscription_record([open_sg("sg-0never", t)], log_group)
    head = json.dumps({"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "eventTime": iso_time(t)})
    nested = head[:-1] + ', "requestParameters": ' + '{"a":' * 20_000 + "1" + "}" * 20_000 + "}"
    return [
        Put("random bytes", rng.randbytes(rng.randrange(100, 4000)), True),
        Put("truncated gzip", good[: len(good) // 2], True),
        Put("gzip of non-JSON", gzip.compress(b"not json \x00\x01\x02 at all"), True),
        Put("JSON array, not an envelope", gzip.compress(b'[1, "two", null]'), True),
        Put(
            "logEvents not an array",
            gzip.compress(json.dumps({"messageType": "DATA_MESSAGE", "logEvents": {"a": 1}}).encode()),
            True,
        ),
        Put(
            "log event message not JSON",
            gzip.compress(
                json.dumps(
                    {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "timestamp": 1, "message": "{not json"}]}
                ).encode()
            ),
            True,
        ),
        Put(
            "eventSource/eventTime of wrong types",
            subscription_record(
                [
                    {"eventSource": 5, "eventName": "RunInstances", "eventTime": iso_time(t)},
                    {"eventSource": "ec2.amazonaws.com", "eventName": ["RunInstances"], "eventTime": iso_time(t)},
                    {"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "eventTime": 1700000000},
                ],
                log_group,
            ),
            True,
        ),
        Put("deeply nested JSON (envelope)", gzip.compress(b"[" * 200_000 + b"]" * 200_000), True),
        Put(
            "deeply nested JSON (event)",
            gzip.compress(
                json.dumps(
                    {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "timestamp": 1, "message": nested}]}
                ).encode()
            ),
            True,
        ),
        Put("gzip bomb (200 MB of zeros)", _bomb(), True),
        Put("every rule-read field of the wrong type", subscription_record(wrong_typed_events(t), log_group), False),
    ]


def _bomb() -> bytes:
    out = gzip.compress(b"\0" * (8 << 20), compresslevel=9)
    return out * 25  # concatenated members: 200 MB once decompressed, above the decoder's 64 MB limit


def put(kinesis, stream: str, item: Put) -> Put:
    response = kinesis.put_record(StreamName=stream, Data=item.data, PartitionKey=uuid.uuid4().hex)
    item.shard, item.sequence = response["ShardId"], response["SequenceNumber"]
    return item


def dead_letters(stack: Live) -> list[dict]:
    s3, bucket = stack.target.client("s3"), stack.outputs["StateBucketName"]
    prefix = f"dead-letters/{stack.outputs['RouterAppName']}/"
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out += [{**json.loads(line), "key": obj["Key"]} for line in body.splitlines()]
    return out


def test_poison_input_live(stack: Live, reliability_row: Callable[[Row], Row], capsys: pytest.CaptureFixture) -> None:
    rng = random.Random(SEED)
    kinesis, stream = stack.target.client("kinesis"), stack.outputs["TrailStreamName"]
    group_log = stack.outputs["TrailLogGroupName"]
    started = time.monotonic()
    t = time.time()
    tag = uuid.uuid4().hex[:8]
    hostile_instance, tagged_hostile = instance_id(), instance_id()
    expected: set[tuple[str, str]] = set()
    puts: list[Put] = []
    for i, bad in enumerate(poison(rng, t, group_log)):
        group = f"sg-0p{i:02d}{tag}"
        expected.add((SG_OPEN, group))
        puts.append(
            put(kinesis, stream, Put(f"good {group}", subscription_record([open_sg(group, t)], group_log), False))
        )
        puts.append(put(kinesis, stream, bad))
    # good records carrying hostile text: a 10,000-character user agent full of control characters, tag values
    # of the same, a 1 MB event
    hostile = [
        open_sg(f"sg-0ua{tag}", t, userAgent=LONG),
        run_instances(hostile_instance, t, userAgent=LONG, sourceIPAddress=HOSTILE),
        run_instances(tagged_hostile, t),
        create_tags(tagged_hostile, t + 1, value=LONG),
    ]
    expected |= {(SG_OPEN, f"sg-0ua{tag}"), (MISSING_TAGS, hostile_instance)}
    puts.append(put(kinesis, stream, Put("hostile text", subscription_record(hostile, group_log), False)))
    big = open_sg(f"sg-0big{tag}", t, userAgent=rng.randbytes(750_000).hex()[:1_000_000])
    expected.add((SG_OPEN, f"sg-0big{tag}"))
    puts.append(put(kinesis, stream, Put("1 MB event", subscription_record([big], group_log), False)))
    last = f"sg-0last{tag}"
    expected.add((SG_OPEN, last))
    puts.append(put(kinesis, stream, Put("good last", subscription_record([open_sg(last, t + 2)], group_log), False)))

    def arrived() -> set[tuple[str, str]]:
        return {(rule, part) for rule, part in expected if any(a.finding.rule_id == rule for a in stack.about(part))}

    stack.wait_for(lambda: arrived() == expected, 120)
    last_put = {}
    for p in puts:
        last_put[p.shard] = max(last_put.get(p.shard, 0), int(p.sequence))

    def moved_on() -> bool:
        marks = stack.checkpoints("router")
        return all(marks.get(s, "").isdigit() and int(marks[s]) >= seq for s, seq in last_put.items())

    deadline = time.monotonic() + 30
    while not moved_on() and time.monotonic() < deadline:
        time.sleep(0.5)
    letters = dead_letters(stack)
    by_origin: dict[str, list[dict]] = {}
    for letter in letters:
        by_origin.setdefault(letter.get("origin", ""), []).append(letter)
    bad = [p for p in puts if p.bad]
    undead = [
        p.name for p in bad if not any(d.get("reason") for d in by_origin.get(f"{stream}/{p.shard}/{p.sequence}", []))
    ]
    wrongly_dead = [
        p.name
        for p in puts
        if not p.bad
        and p.name != "every rule-read field of the wrong type"
        and by_origin.get(f"{stream}/{p.shard}/{p.sequence}")
    ]
    logs = "\n".join(d.log_file.read_text(errors="replace") for d in stack.pipeline.daemons.values())
    crashed = [w for w in ("Traceback", "engine failed", "rule error") if w in logs]
    got = arrived()
    false_alerts = stack.about(tagged_hostile)
    duplicated = sum(n - 1 for n in Counter(a.finding.id for a in stack.alerts).values() if n > 1)
    with capsys.disabled():
        for p in bad:
            reasons = sorted({d["reason"][:90] for d in by_origin.get(f"{stream}/{p.shard}/{p.sequence}", [])})
            print(f"\n[poison] {p.name:40s} {p.shard} -> {reasons}", end="")
        print(flush=True)
    ok = (
        got == expected
        and not duplicated
        and not undead
        and not wrongly_dead
        and moved_on()
        and not crashed
        and not false_alerts
    )
    row = reliability_row(
        Row(
            "poison input (live)",
            1,
            len(puts),
            len(expected),
            len(got),
            duplicated,
            ok=ok,
            seconds=time.monotonic() - started,
            figure=(
                f"{len(bad)} bad records, {len(bad) - len(undead)} dead-lettered ({len(letters)} letters); "
                f"{len(puts) - len(bad)} good incl. 10,000-char control-character text and a 1 MB event; "
                f"checkpoints past the last record: {moved_on()}"
            ),
        )
    )
    assert got == expected, sorted(expected - got)
    assert not duplicated
    assert not undead, undead
    assert not wrongly_dead, wrongly_dead
    assert moved_on(), (stack.checkpoints("router"), last_put)
    assert not crashed, crashed
    assert not false_alerts
    assert row.ok
