"""Output safety: attacker-controlled CloudTrail text (tag values, user agents, resource names, principals,
accounts) cannot forge SNS subjects or message attributes, break the Firehose line format, or inject into
the table output."""

from __future__ import annotations

import io
import json
import random

import orjson
import pytest

from consumers.sinks import firehose, sns
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import Finding, finding_id
from pipeline.output import TableWriter, format_summary, safe, time_text
from pipeline.ruletest import complete_record

ATTACKS = [
    "\x1b[31mcritical\x1b[0m",
    "\x1b]0;pwned\x07",
    "\x1b[2J\x1b[H",
    "\x1b[1A\x1b[2K",
    "\x9b31m",  # ANSI, CSI (C1)
    "line1\nSubject: forged",
    "a\r\nseverity: critical",
    "x\rOVERWRITE",
    "\x85next",
    "\u2028ls\u2029ps",
    "\u202eelif.exe",
    "\u2066isolate\u2069",
    "zero\u200bwidth\u200d",
    "\ufeffbom",
    "nul\x00byte",
    "\x07\x08\x7f",
    '"},"severity":{"DataType":"String","StringValue":"info"}',
    '","rule_id":"forged',
    "\\n\\r\\u001b",
    "\U0001f4a3" * 3,
    "é" * 50,
    "\t\v\f",
    "%s%n%x",
    "${jndi:ldap://evil/a}",
    "<script>alert(1)</script>",
]
LONG = [("A\x1b[31m\n\u202e" * 2500)[:10_000], "x" * 10_000, ("\U0001f4a3é\u2028" * 4000)[:10_000]]
TEXTS = ATTACKS + LONG
ALLOWED_ATTRIBUTES = {"severity", "rule_id", "account", "status"}


def finding(
    text: str = "",
    *,
    title: str = "Security group opened to the internet",
    severity: str = "high",
    rule_id: str = "security-group-open",
    event_time: float = 1_722_431_184.0,
) -> Finding:
    """A finding with `text` in every field CloudTrail data can reach."""
    return Finding(
        id=finding_id(rule_id, text, 0),
        rule_id=rule_id,
        title=title,
        severity=severity,
        attack=("T1562.007",),
        account=text,
        region=text,
        principal=f"arn:aws:iam::111122223333:user/{text}",
        source_ip=text,
        user_agent=text,
        resources=(f"sg-0123 tag:Owner={text}", text),
        event_ids=(text,),
        event_time=event_time,
        dedup_key=text,
        window=0,
        summary=f"group {text} opened to 0.0.0.0/0 by {text}",
        context={"tags": {text: text}, "user_agent": text, text[:50]: [text]},
    )


def _printable_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable()


# --- SNS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_sns_subject_and_attributes_cannot_be_forged(text: str, fifo: bool) -> None:
    f = finding(text)
    entry = sns.entry(f, 3, fifo)
    subject = entry["Subject"]
    assert 0 < len(subject) <= 100 and _printable_ascii(subject)
    assert subject == "[high] Security group opened to the internet"  # nothing of the attacker's text
    attributes = entry["MessageAttributes"]
    assert set(attributes) == ALLOWED_ATTRIBUTES
    for attribute in attributes.values():
        assert set(attribute) == {"DataType", "StringValue"} and attribute["DataType"] == "String"
        assert 0 < len(attribute["StringValue"]) <= 256 and _printable_ascii(attribute["StringValue"])
    assert attributes["severity"]["StringValue"] == "high"  # structured fields only, never parsed from text
    assert attributes["rule_id"]["StringValue"] == "security-group-open"
    assert "\n" not in attributes["account"]["StringValue"] and "\x1b" not in attributes["account"]["StringValue"]
    assert entry["Id"] == "f3"
    if fifo:
        assert entry["MessageGroupId"] == "security-group-open" and entry["MessageDeduplicationId"] == f.id
    body = orjson.loads(entry["Message"])  # the whole finding, attacker text escaped inside JSON strings
    assert body["severity"] == "high" and body["id"] == f.id
    if len(f.to_json()) <= sns.MAX_BATCH_BYTES - 1024:
        assert body["user_agent"] == text
    else:  # over SNS's size: context dropped and long texts cut, still one JSON document
        assert body["context"] == {"truncated": True} and text.startswith(body["user_agent"])


def test_sns_subject_from_a_hostile_title_stays_one_printable_line() -> None:
    # Titles come from rules, not from CloudTrail; still, no title can break the subject.
    for text in TEXTS:
        subject = sns.subject(finding(title=text, severity=text))
        assert 0 < len(subject) <= 100 and _printable_ascii(subject)


def test_sns_account_attribute_is_the_sanitized_account_not_a_forged_filter_value() -> None:
    entry = sns.entry(finding('111122223333", "severity": "critical'), 0, False)
    account = entry["MessageAttributes"]["account"]["StringValue"]
    assert account.startswith("111122223333") and entry["MessageAttributes"]["severity"]["StringValue"] == "high"


# --- Firehose -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_firehose_record_is_one_json_line(text: str) -> None:
    f = finding(text)
    line = firehose.line(f)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert len(line.splitlines()) == 1  # bytes.splitlines: the line breaks Hive's text input format knows
    doc = orjson.loads(line)
    assert doc == orjson.loads(f.to_json())
    assert doc["principal"] == f.principal and doc["resources"] == list(f.resources)


def test_firehose_batch_of_hostile_findings_splits_back_into_the_same_findings() -> None:
    findings = [finding(text) for text in TEXTS]
    archive = b"".join(firehose.line(f) for f in findings)  # what Firehose concatenates into one object
    lines = archive.split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == len(findings)
    assert [orjson.loads(line)["id"] for line in lines[:-1]] == [f.id for f in findings]


def test_an_oversized_finding_still_writes_valid_json_to_both_sinks() -> None:
    # Fields no rule cuts (account, region, source_ip, dedup_key) past the SNS and Firehose limits.
    f = finding("1" * 300_000)
    body = orjson.loads(sns.entry(f, 0, False)["Message"])
    assert body["id"] == f.id and body["severity"] == "high"
    big = finding("2" * 1_100_000)
    line = firehose.line(big)
    assert len(line) <= firehose.MAX_RECORD_BYTES and line.count(b"\n") == 1
    assert orjson.loads(line)["id"] == big.id


# --- table and summary ------------------------------------------------------------------------------


def _table(findings: list[Finding], width: int = 160) -> list[str]:
    out = io.BytesIO()
    writer = TableWriter(out, width=width)
    for f in findings:
        writer.write(f)
    writer.close()
    text = out.getvalue().decode("utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def test_table_rows_are_one_printable_line_each_and_fit_the_width() -> None:
    findings = [finding(text) for text in TEXTS]
    lines = _table(findings, width=160)
    assert len(lines) == len(findings) + 1  # the header, then one line per finding
    for line in lines:
        assert line.isprintable(), repr(line[:120])
        assert "\x1b" not in line and "\u202e" not in line and "\u2028" not in line and "\x9b" not in line
        assert len(line) <= 160


def test_table_shows_escapes_instead_of_sending_them() -> None:
    line = _table([finding("\x1b[2J")])[1]
    assert "\\x1b[2J" in line


def test_table_survives_an_event_time_no_datetime_can_show() -> None:
    for epoch in (253402300800.0, -62135596801.0, float("inf"), float("nan")):
        lines = _table([finding("x", event_time=epoch)])
        assert len(lines) == 2 and lines[1].isprintable()
    assert time_text(1_722_431_184.0) == "2024-07-31T13:06:24Z"


def test_summary_lines_are_printable_whatever_the_keys_and_values() -> None:
    rng = random.Random(7)
    summary = {
        "events": 3,
        "last_event_time": 253402300800.0,
        "findings_by_rule": {text: rng.randint(1, 9) for text in TEXTS},
        "rule_errors": {"r": 1},
        "notes": TEXTS,
        TEXTS[0]: TEXTS[1],
        "nested": {TEXTS[2]: {TEXTS[3]: TEXTS[4]}},
    }
    text = format_summary(summary)
    for line in text.split("\n"):
        assert line.isprintable(), repr(line[:120])


def test_safe_escapes_every_unprintable_character() -> None:
    for text in TEXTS:
        shown = safe(text, 500)
        assert shown.isprintable() and len(shown) <= 500


# --- end to end: attacker text in real events, through the rules, to every output -----------------------


def _hostile_events(text: str) -> list[Event]:
    tags = {
        "items": [{"resourceType": "instance", "tags": [{"key": "Owner", "value": text}, {"key": text, "value": text}]}]
    }
    partials = [
        {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "AuthorizeSecurityGroupIngress",
            "userAgent": text,
            "requestParameters": {
                "groupId": f"sg-{text}",
                "ipPermissions": {
                    "items": [
                        {
                            "ipProtocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0", "description": text}]},
                        }
                    ]
                },
            },
        },
        {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances",
            "userAgent": text,
            "requestParameters": {"tagSpecificationSet": tags, "instanceType": text},
            "responseElements": {"instancesSet": {"items": [{"instanceId": f"i-{text}"}]}},
        },
        {
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "userAgent": text,
            "sourceIPAddress": text,
            "responseElements": {"ConsoleLogin": "Failure"},
            "additionalEventData": {"MFAUsed": "No"},
        },
        {
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutBucketPolicy",
            "userAgent": text,
            "requestParameters": {
                "bucketName": text,
                "bucketPolicy": {"Statement": [{"Principal": "*", "Effect": "Allow"}]},
            },
        },
        {
            "eventSource": "cloudtrail.amazonaws.com",
            "eventName": "StopLogging",
            "userAgent": text,
            "requestParameters": {"name": text},
        },
    ]
    events = []
    for i, partial in enumerate(partials):
        record = complete_record(partial, i, "output-safety")
        record["recipientAccountId"] = text[:200] or "111122223333"
        event = Event.from_record(json.loads(json.dumps(record)), "test")
        assert isinstance(event, Event), event
        events.append(event)
    return events


def test_hostile_events_through_the_rules_reach_every_output_safely() -> None:
    detector = Detector()
    findings: list[Finding] = []
    for text in TEXTS:
        for event in _hostile_events(text):
            findings.extend(detector.process(event))
    findings.extend(detector.finish())
    assert not detector.stats.rule_errors, detector.stats.last_errors[:3]
    assert len({f.rule_id for f in findings}) >= 3  # the hostile text did reach rules that raise findings
    for f in findings:
        entry = sns.entry(f, 0, False)
        assert _printable_ascii(entry["Subject"]) and len(entry["Subject"]) <= 100
        assert set(entry["MessageAttributes"]) == ALLOWED_ATTRIBUTES
        assert all(_printable_ascii(a["StringValue"]) for a in entry["MessageAttributes"].values())
        orjson.loads(entry["Message"])
        line = firehose.line(f)
        assert line.count(b"\n") == 1 and line.endswith(b"\n")
        orjson.loads(line)
    for line in _table(findings):
        assert line.isprintable()


# --- known weaknesses in files owned elsewhere (strict: they flip to failures once fixed) --------------


def _end_of_time_findings() -> list[Finding]:
    record = complete_record({"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}, 0, "eot")
    record["eventTime"] = "9999-12-30T00:00:00Z"  # the last event time accepted (later ones are dead letters)
    event = Event.from_record(record, "test")
    assert isinstance(event, Event)
    found = Detector().process(event)
    assert found
    return found


def test_findings_from_an_event_at_the_end_of_time_reach_every_output() -> None:
    for f in _end_of_time_findings():
        assert orjson.loads(sns.entry(f, 0, False)["Message"])["id"] == f.id
        assert orjson.loads(firehose.line(f))["id"] == f.id
        assert all(line.isprintable() for line in _table([f]))


def test_finding_to_json_of_an_event_at_the_end_of_time() -> None:
    for f in _end_of_time_findings():
        assert orjson.loads(f.to_json())["event_time"] == "9999-12-30T00:00:00Z"


def test_run_alert_lines_are_printable() -> None:
    from types import SimpleNamespace

    from pipeline.commands.run import _line

    line = _line(SimpleNamespace(finding=finding("\x1b]0;pwned\x07\x1b[2J"), received=0.0), False)
    assert line.isprintable()
