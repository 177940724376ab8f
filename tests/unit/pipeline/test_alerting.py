"""The alert policy: which findings go to the SNS topic and which only to Firehose, in every mode."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from consumers.sinks import MemoryDedupe, Publisher
from pipeline.alerting import PRESETS, AlertPolicy
from pipeline.cli import main
from pipeline.commands.scan import Emitter
from pipeline.config import Config, ConfigError
from pipeline.finding import SEVERITIES, Finding
from pipeline.output import JsonWriter
from pipeline.rules import builtin_rules

RULES = builtin_rules()


def finding(rule_id: str, severity: str, n: int = 0) -> Finding:
    return Finding(
        id=f"{rule_id}-{severity}-{n}",
        rule_id=rule_id,
        title="t",
        severity=severity,
        attack=(),
        account="111122223333",
        region="us-east-1",
        principal="p",
        source_ip="",
        user_agent="",
        resources=(),
        event_ids=(f"e{n}",),
        event_time=1719842400.0,
        dedup_key="k",
        window=0,
    )


class Recording:
    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[Finding] = []

    def deliver(self, findings: list[Finding]) -> None:
        self.got.extend(findings)


def test_default_alerts_medium_and_above_and_archives_everything() -> None:
    policy = AlertPolicy.from_config(Config.from_dict())
    assert [policy.alerts(finding("r", s)) for s in SEVERITIES] == [False, False, True, True, True]
    assert all(policy.archives(finding("r", s)) for s in SEVERITIES)
    assert policy.describe() == "medium and above (Sigma rules high and above)"


def test_sigma_rules_are_alerted_from_their_own_floor() -> None:
    policy = AlertPolicy.from_config(Config.from_dict())
    assert [policy.alerts(finding("sigma-x", s)) for s in SEVERITIES] == [False, False, False, True, True]
    assert all(policy.archives(finding("sigma-x", s)) for s in SEVERITIES)
    assert all(not r.id.startswith("sigma-") for r in RULES)  # the prefix tells Sigma rules apart
    same = AlertPolicy.from_config(Config.from_dict({"alerts": {"sigma_min_severity": "medium"}}))
    assert same.alerts(finding("sigma-x", "medium")) and same.describe() == "medium and above"
    named = AlertPolicy.from_config(Config.from_dict({"alerts": {"rules": ["sigma-x"]}}))
    assert named.alerts(finding("sigma-x", "low"))
    with pytest.raises(ConfigError, match="sigma_min_severity"):
        AlertPolicy.from_config(Config.from_dict({"alerts": {"sigma_min_severity": "loud"}}))


def test_cis_preset_alerts_every_cis_control_whatever_its_severity() -> None:
    policy = AlertPolicy.from_config(Config.from_dict({"alerts": {"presets": ["cis"]}}))
    cis = [r for r in RULES if "(CIS 4." in r.title]
    assert len(cis) == 15
    assert all(policy.alerts(finding(r.id, "info")) for r in cis)
    assert not policy.alerts(finding("ec2-instance-connect-ssh-key-pushed", "low"))
    assert not AlertPolicy().alerts(finding("cis-vpc-changes", "info"))
    assert set(PRESETS) == {"cis"}


def test_rules_and_thresholds_from_configuration() -> None:
    policy = AlertPolicy.from_config(
        Config.from_dict(
            {"alerts": {"min_severity": "high", "archive_min_severity": "low", "rules": ["ssm-session-*"]}}
        )
    )
    assert not policy.alerts(finding("x", "medium")) and policy.alerts(finding("x", "high"))
    assert policy.alerts(finding("ssm-session-started", "low"))
    assert not policy.archives(finding("x", "info")) and policy.archives(finding("x", "low"))
    assert policy.archives(finding("ssm-session-started", "info"))  # alerted, so archived too
    alerted, archived = policy.split([finding("x", "info"), finding("x", "low"), finding("x", "critical")])
    assert [f.severity for f in alerted] == ["critical"] and [f.severity for f in archived] == ["low"]


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"min_severity": "urgent"}, "[alerts] min_severity = 'urgent' is not a severity"),
        ({"archive_min_severity": 2}, "[alerts] archive_min_severity = 2 is not a severity"),
        ({"presets": ["pci"]}, "unknown preset(s) ['pci']; known: ['cis']"),
        ({"rules": "cis-*"}, "[alerts] rules must be a list of non-empty strings"),
        ({"severities": ["high"]}, "[alerts] has unknown key(s) ['severities']"),
    ],
)
def test_bad_alerts_section_says_what_is_wrong(alerts: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        AlertPolicy.from_config(Config.from_dict({"alerts": alerts}))
    assert message in str(exc.value)


def test_config_check_reports_a_bad_alerts_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[alerts]\npresets = ["pci"]\n')
    assert main(["config", "--check", str(path)]) == 2
    assert "unknown preset(s) ['pci']" in capsys.readouterr().err
    path.write_text('[alerts]\npresets = ["cis"]\n')
    assert main(["config", "--check", str(path)]) == 0
    assert (
        "medium and above (Sigma rules high and above), and rules cis-*, console-login-without-mfa"
        in capsys.readouterr().out
    )


def test_publisher_gives_sns_the_alerts_and_firehose_every_archived_finding() -> None:
    sns, firehose, file = Recording("sns"), Recording("firehose"), Recording("file")
    publisher = Publisher([sns, firehose, file], MemoryDedupe(), policy=AlertPolicy(archive_min_severity="low"))
    batch = [finding("r", s) for s in SEVERITIES]
    assert len(publisher.publish(batch)) == 5
    assert [f.severity for f in sns.got] == ["medium", "high", "critical"]
    assert [f.severity for f in firehose.got] == ["low", "medium", "high", "critical"] == [f.severity for f in file.got]
    assert publisher.stats.by_sink == {"sns": 3, "firehose": 4, "file": 4}
    assert publisher.publish(batch) == []  # marked in the dedupe table, info included: not published twice
    assert len(sns.got) == 3


def test_publisher_with_no_policy_given_alerts_by_the_default_policy() -> None:
    sns = Recording("sns")
    Publisher([sns]).publish([finding("r", "low"), finding("r", "high")])
    assert [f.severity for f in sns.got] == ["high"]


def test_emitter_writes_what_is_archived_or_with_alerts_only_what_is_alerted() -> None:
    batch = [finding("cis-vpc-changes", "info", 1), finding("r", "high", 2), finding("r", "low", 3)]
    out = io.BytesIO()
    emit = Emitter(JsonWriter(out), policy=AlertPolicy(sigma_min_severity="medium"))
    emit(batch)
    assert len(out.getvalue().splitlines()) == 3
    assert emit.policy_summary() == {
        "alert_policy": "medium and above",
        "alerted": {"r": 1},
        "archived_only": {"cis-vpc-changes": 1, "r": 1},
        "left_out_by_the_policy": {},
    }
    out = io.BytesIO()
    only = Emitter(JsonWriter(out), policy=AlertPolicy(), alerts_only=True)
    only(batch)
    assert [json.loads(line)["severity"] for line in out.getvalue().splitlines()] == ["high"]
    assert only.policy_summary()["left_out_by_the_policy"] == {"cis-vpc-changes": 1, "r": 1}


VPC = {
    "eventVersion": "1.08",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "CreateVpc",
    "eventTime": "2024-07-01T14:00:00Z",
    "awsRegion": "us-east-1",
    "recipientAccountId": "111122223333",
    "eventID": "e-vpc",
    "sourceIPAddress": "198.51.100.7",
    "userIdentity": {
        "type": "IAMUser",
        "arn": "arn:aws:iam::111122223333:user/alice",
        "accountId": "111122223333",
        "userName": "alice",
    },
    "requestParameters": {"cidrBlock": "10.9.0.0/16"},
}


def test_scan_prints_archived_findings_and_says_which_are_alerted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "trail.jsonl"
    trail.write_text(json.dumps(VPC) + "\n")
    assert main(["scan", str(trail), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(x)["rule_id"] for x in captured.out.splitlines()] == ["cis-vpc-changes"]
    assert "archived only: 1" in captured.err and "alert policy: medium and above" in captured.err
    assert main(["scan", str(trail), "--format", "json", "--alerts-only"]) == 0
    assert capsys.readouterr().out == ""
    config = tmp_path / "cis.toml"
    config.write_text('[alerts]\npresets = ["cis"]\n')
    assert main(["scan", str(trail), "--format", "json", "--alerts-only", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert [json.loads(x)["rule_id"] for x in captured.out.splitlines()] == ["cis-vpc-changes"]
    assert "alerted: 1" in captured.err
