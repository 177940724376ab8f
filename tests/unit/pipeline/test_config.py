"""`trailwarden config`, `config --check`, and configuration reaching the rules: parameters,
enabled flags, and global and per-rule allowlists."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.commands.config import RULES_HEADER, render, toml_value
from pipeline.config import DEFAULTS_FILE, Config, ConfigError
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.rule import REGISTRY
from pipeline.rules import builtin_rules, rule_pack
from pipeline.ruletest import complete_record, run_events, validate_params

RULES = builtin_rules()
PACK = rule_pack(Config.from_dict())  # the built-in rules and the bundled Sigma rules
LOGIN = {
    "eventSource": "signin.amazonaws.com",
    "eventName": "ConsoleLogin",
    "responseElements": {"ConsoleLogin": "Success"},
    "additionalEventData": {"MFAUsed": "No"},
}
ALICE = "arn:aws:iam::111122223333:user/alice"  # the default identity of completed records


def uncomment(text: str) -> str:
    """The rules part of `trailwarden config` with every section uncommented."""
    head, rules = text.split(RULES_HEADER)
    return head + "\n".join(line[2:] if line.startswith("# ") else line for line in rules.splitlines())


def test_config_output_is_valid_toml_commented_and_uncommented(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(DEFAULTS_FILE.read_text().rstrip("\n"))
    assert tomllib.loads(out)["engine"]["allowed_lateness"] == "2m"
    data = tomllib.loads(uncomment(out))
    assert set(data["rules"]) == {r.id for r in PACK}
    config = Config.from_dict(data)
    for rule in PACK:
        section = data["rules"][rule.id]
        assert section.pop("enabled") is rule.enabled
        assert section.pop("severity") == rule.severity
        assert config.configured(rule).dedup == rule.dedup
        section.pop("dedup")
        assert section == {k: v for k, v in rule.params.items() if v is not None}
        assert validate_params(rule, config) == rule.params


def test_config_documents_each_rule():
    text = render(RULES)
    for rule in RULES:
        assert f"# [rules.{rule.id}]" in text
        assert f"# # {rule.title} ({rule.severity}" in text
    assert "# # IANA time zone the hours are in" in text
    assert "# # Ports public by design" in text


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, "true"),
        (3, "3"),
        (2.5, "2.5"),
        ('a"b', '"a\\"b"'),
        (["Mon", 1], '["Mon", 1]'),
        ({"a": [1]}, "{a = [1]}"),
        ("é\n", '"\\u00e9\\n"'),
    ],
)
def test_toml_value_round_trips(value, expected):
    assert toml_value(value) == expected
    assert tomllib.loads(f"x = {expected}")["x"] == value


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trailwarden.toml"
    path.write_text(text)
    return path


def test_check_accepts_a_good_file(tmp_path, capsys):
    path = write(
        tmp_path,
        """
[allowlist]
principals = ["arn:aws:sts::*:assumed-role/terraform-*/*"]
[rules.iam-user-created-outside-business-hours]
time_zone = "Europe/Paris"
business_days = ["Mon-Fri"]
[rules.ec2-security-group-open-to-internet]
ignore_ports = [80, "tcp/443"]
[rules.cis-vpc-changes]
enabled = false
""",
    )
    assert main(["config", "--check", str(path)]) == 0
    on = sum(r.enabled for r in PACK)  # a bundled Sigma rule is off by default
    assert f"{path}: ok ({on - 1} of {len(PACK)} rules enabled; " in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, message",
    [
        ("[rules.cis-vpc-changes]\nthreshold = 3\n", "unknown parameter(s) ['threshold']"),
        ('[rules.iam-user-created-outside-business-hours]\nbusiness_days = "Mon-Fri"\n', "should be a list"),
        (
            '[rules.iam-user-created-outside-business-hours]\ntime_zone = "Mars/Olympus"\n',
            "unknown time zone 'Mars/Olympus'",
        ),
        ('[rules.iam-user-created-outside-business-hours]\nhours_start = "9"\n', "not a time of day"),
        ('[rules.iam-user-created-outside-business-hours]\nhours_start = "19:00"\n', "must be later than"),
        (
            '[rules.iam-user-created-outside-business-hours]\nbusiness_days = ["Mon", "Caturday"]\n',
            "'Caturday' is not a day",
        ),
        ('[rules.ec2-security-group-open-to-internet]\nignore_ports = ["ssh"]\n', "'ssh' is not a port"),
        ("[rules.ec2-security-group-open-to-internet]\nignore_ports = [70000]\n", "70000 is not a port"),
        ("[rules.no-such-rule]\nenabled = false\n", "unknown rule(s) ['no-such-rule']"),
        ('[rules.cis-vpc-changes]\nenabled = "no"\n', "must be true or false"),
        ('[rules.cis-vpc-changes.allowlist]\nsource_ips = ["10.0.0.300"]\n', "not an IP address"),
        ("[allowlist]\nusers = []\n", "unknown key(s) ['users']"),
        ("[nonsense]\n", "unknown section(s) ['nonsense']"),
        ("[rules\n", "not valid TOML"),
    ],
)
def test_check_rejects_bad_files_with_a_clear_message(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(["config", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and message in err


def test_check_missing_file(tmp_path, capsys):
    assert main(["config", "--check", str(tmp_path / "absent.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def rule(rule_id: str):
    return REGISTRY[rule_id]


def test_finding_without_allowlist():
    assert len(run_events(rule("console-login-without-mfa"), [LOGIN])) == 1


@pytest.mark.parametrize(
    "allowlist",
    [
        {"principals": ["arn:aws:iam::*:user/ali*"]},
        {"accounts": ["111122223333"]},
        {"source_ips": ["198.51.100.0/24"]},
        {"source_ips": ["198.51.100.7"]},
    ],
)
def test_global_allowlist_suppresses(allowlist):
    config = Config.from_dict({"allowlist": allowlist})
    assert run_events(rule("console-login-without-mfa"), [LOGIN], config=config) == []


def test_allowlist_counts_suppressed_matches():
    config = Config.from_dict({"allowlist": {"principals": [ALICE]}})
    detector = Detector(rules=[rule("console-login-without-mfa")], config=config)
    event = Event.from_record(complete_record(LOGIN))
    assert detector.process(event) == []
    assert detector.stats.suppressed["console-login-without-mfa"] == 1


def test_allowlist_that_does_not_match_lets_findings_through():
    config = Config.from_dict(
        {
            "allowlist": {
                "principals": ["arn:aws:iam::*:user/bob"],
                "source_ips": ["203.0.113.0/24"],
                "accounts": ["444455556666"],
            }
        }
    )
    assert len(run_events(rule("console-login-without-mfa"), [LOGIN], config=config)) == 1


def test_per_rule_allowlist_suppresses_only_that_rule():
    config = Config.from_dict({"rules": {"console-login-without-mfa": {"allowlist": {"principals": [ALICE]}}}})
    assert run_events(rule("console-login-without-mfa"), [LOGIN], config=config) == []
    root_call = {
        "eventSource": "iam.amazonaws.com",
        "eventName": "ListUsers",
        "userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"},
    }
    other = Config.from_dict({"rules": {"console-login-without-mfa": {"allowlist": {"accounts": ["111122223333"]}}}})
    assert len(run_events(rule("cis-root-account-usage"), [root_call], config=other)) == 1


def test_disabled_rule_is_not_run():
    config = Config.from_dict({"rules": {"console-login-without-mfa": {"enabled": False}}})
    detector = Detector(rules=RULES, config=config)
    assert "console-login-without-mfa" not in {r.id for r in detector.rules}
    assert len(detector.rules) == len(RULES) - 1


def test_validate_params_raises_config_error():
    config = Config.from_dict({"rules": {"iam-user-created-outside-business-hours": {"time_zone": "Nowhere/Land"}}})
    with pytest.raises(ConfigError, match="Nowhere/Land"):
        validate_params(rule("iam-user-created-outside-business-hours"), config)


# --- per-rule severity and dedup period ----------------------------------------------------------------


def test_severity_override_reaches_match_and_stateful_findings():
    config = Config.from_dict(
        {
            "rules": {
                "console-login-without-mfa": {"severity": "critical"},
                "console-login-brute-force": {"severity": "info"},
            }
        }
    )
    assert [f.severity for f in run_events(rule("console-login-without-mfa"), [LOGIN], config=config)] == ["critical"]
    default = rule("console-login-without-mfa").severity
    assert default != "critical"
    assert [f.severity for f in run_events(rule("console-login-without-mfa"), [LOGIN])] == [default]
    brute = rule("console-login-brute-force")
    failures = list(next(c for c in brute.cases if c.name == "ten failures in a minute").events)
    assert [f.severity for f in run_events(brute, failures, config=config)] == ["info"]
    assert rule("console-login-without-mfa").severity == default  # the registered rule is untouched


def test_dedup_override_changes_what_is_one_finding():
    """Two changes of one target by one caller ten seconds apart: one finding per hour by default, two
    with no dedup period, one with a day's period even an hour later."""
    change = {"eventSource": "ec2.amazonaws.com", "eventName": "CreateVpc", "requestParameters": {"vpcId": "vpc-1"}}
    events = [change, change]
    assert len({f.id for f in run_events(rule("cis-vpc-changes"), events)}) == 1
    none = Config.from_dict({"rules": {"cis-vpc-changes": {"dedup": "0s"}}})
    assert len({f.id for f in run_events(rule("cis-vpc-changes"), events, config=none)}) == 2
    hour_apart = [change, {**change, "eventTime": "2024-07-01T15:30:00Z"}]
    assert len({f.id for f in run_events(rule("cis-vpc-changes"), hour_apart)}) == 2
    day = Config.from_dict({"rules": {"cis-vpc-changes": {"dedup": "1d"}}})
    assert len({f.id for f in run_events(rule("cis-vpc-changes"), hour_apart, config=day)}) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[rules.cis-vpc-changes]\nseverity = "urgent"\n',
            "rules.cis-vpc-changes.severity = 'urgent' is not a severity",
        ),
        ("[rules.cis-vpc-changes]\nseverity = 3\n", "rules.cis-vpc-changes.severity = 3 is not a severity"),
        ('[rules.cis-vpc-changes]\ndedup = "soon"\n', "rules.cis-vpc-changes.dedup: not a duration: 'soon'"),
        ('[rules.console-login-brute-force]\ndedup = "-5m"\n', "rules.console-login-brute-force.dedup = '-5m' must be"),
        ("[rules.cis-vpc-changes]\ndedup = true\n", "rules.cis-vpc-changes.dedup: not a duration: True"),
    ],
)
def test_bad_severity_or_dedup_names_the_rule_and_key(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(["config", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and message in err, err


def test_a_bad_override_stops_a_scan_too(tmp_path, capsys):
    path = write(tmp_path, '[rules.cis-vpc-changes]\nseverity = "urgent"\n')
    trail = tmp_path / "trail.jsonl"
    trail.write_text("")
    assert main(["scan", str(trail), "--config", str(path), "-q"]) == 2
    assert "rules.cis-vpc-changes.severity" in capsys.readouterr().err
