"""Routes and destinations in the configuration: what they select, and the start-up errors a user can hit
(each naming the key, none repeating a secret)."""

from __future__ import annotations

import pytest

from consumers.destinations.build import build_all
from consumers.destinations.slack import SlackDestination
from infra import aws
from pipeline.commands.config import check
from pipeline.config import Config, ConfigError
from pipeline.routing import Routing
from pipeline.rules import builtin_rules
from tests.support.destinations import finding_dict

SLACK_URL = "https://hooks.slack.com/services/T000/B000/sEcReTsEcReT"
DESTINATIONS = {
    "team": {"type": "slack", "url": "env:TW_SLACK", "rate_per_minute": 30, "link": "https://x.example/{id}"},
    "oncall": {"type": "pagerduty", "routing_key": "env:TW_PD"},
    "siem": {"type": "webhook", "url": "https://siem.example/hook", "secret": "env:TW_HMAC"},
    "hub": {"type": "securityhub"},
    "bus": {"type": "eventbridge", "bus": "security"},
}
ROUTES = [
    {"destinations": ["oncall"], "min_severity": "critical"},
    {"destinations": ["siem"], "tags": ["TA0003"], "accounts": ["123456789012"]},
    {"destinations": ["hub", "bus"], "rules": ["root-*"]},
    {"destinations": ["team"], "default": True},
]
ENV = {"TW_SLACK": SLACK_URL, "TW_PD": "pd-routing-key-secret", "TW_HMAC": "hmac-secret-value"}


def routing(**changes) -> Routing:
    return Routing.from_config(Config.from_dict({"destinations": DESTINATIONS, "routes": ROUTES, **changes}))


def test_routes_select_by_severity_tags_accounts_and_rules_with_a_default():
    r = routing()
    assert r.targets(finding_dict(severity="critical", attack=["T1078"])) == {"oncall"}
    # T1136 (Create Account) serves Persistence, TA0003; the account matches too
    assert r.targets(finding_dict(severity="critical")) == {"oncall", "siem"}
    assert r.targets(finding_dict(account="999999999999", attack=["T1078"])) == {"team"}  # no route: default
    assert r.targets(finding_dict(rule_id="root-console-login", attack=[])) == {"hub", "bus"}
    resolved = finding_dict(severity="critical", status="resolved", resolution="gone")
    assert r.targets(resolved) == r.targets(finding_dict(severity="critical"))
    assert r.destinations["team"].rate_per_minute == 30


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"destinations": {"x": {"type": "teams", "url": "https://a.example"}}}, "destinations.x] type = 'teams'"),
        ({"routes": [{"destinations": ["nowhere"]}]}, "routes[0].destinations names ['nowhere'], not defined"),
        (
            {"destinations": {**DESTINATIONS, "siem": {**DESTINATIONS["siem"], "url": "ftp://siem.example"}}},
            "destinations.siem.url is not a valid webhook URL",
        ),
        (
            {"destinations": {**DESTINATIONS, "siem": {**DESTINATIONS["siem"], "url": "http://siem.example/x"}}},
            "destinations.siem.url is not a valid webhook URL",
        ),
        ({"destinations": {"team": {"type": "slack"}}}, "[destinations.team] lacks url"),
        ({"destinations": {"team": {"type": "slack", "url": "env:A", "colour": "red"}}}, "unknown key(s) ['colour']"),
        ({"destinations": {"team": {"type": "slack", "url": "env:A", "rate_per_minute": -1}}}, "rate_per_minute"),
        ({"routes": [{"destinations": ["team"], "min_severity": "urgent"}]}, "routes[0].min_severity = 'urgent'"),
        (
            {"routes": [{"destinations": ["team"], "default": True}, {"destinations": ["hub"], "default": True}]},
            "more than one [[routes]] has default = true",
        ),
        ({"routes": {"destinations": ["team"]}}, "routes must be an array of tables"),
    ],
)
def test_bad_routes_and_destinations_are_refused_naming_the_key(changes, message):
    with pytest.raises(ConfigError) as caught:
        routing(**changes)
    assert message in str(caught.value)


def test_secrets_resolve_from_the_environment_and_unreadable_ones_name_the_key():
    target = aws.emulator("http://127.0.0.1:9")  # nothing listens: no AWS call may be needed for env secrets
    built, secrets = build_all(routing(), target, env=ENV)
    assert isinstance(built["team"], SlackDestination) and set(built) == set(DESTINATIONS)
    assert sorted(secrets.read_values) == sorted(ENV.values())
    with pytest.raises(ConfigError) as caught:
        build_all(routing(), target, env={**ENV, "TW_PD": ""})
    assert "destinations.oncall.routing_key" in str(caught.value) and "is empty" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        build_all(routing(), target, env={"TW_PD": "x", "TW_HMAC": "y"})
    assert "destinations.team.url: the secret 'env:TW_SLACK' cannot be read" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        build_all(routing(), target, env={**ENV, "TW_SLACK": "https://" + "not a url"})
    assert "destinations.team.url is not a valid webhook URL" in str(caught.value)
    assert "not a url" not in str(caught.value)


def test_config_check_validates_destinations_and_never_prints_a_secret(tmp_path, capsys, monkeypatch):
    path = tmp_path / "trailwarden.toml"
    path.write_text(
        '[destinations.team]\ntype = "slack"\nurl = "env:TW_SLACK"\n'
        '[[routes]]\ndefault = true\ndestinations = ["team"]\n'
    )
    monkeypatch.setenv("TW_SLACK", SLACK_URL)
    assert check(Config.load(str(path)), builtin_rules()) == 0
    out = capsys.readouterr()
    assert "1 destination(s) (team), 1 route(s)" in out.out and "sEcReT" not in out.out + out.err
    monkeypatch.setenv("TW_SLACK", "mailto:sEcReT@example.com")
    with pytest.raises(ConfigError) as caught:
        check(Config.load(str(path)), builtin_rules())
    assert "destinations.team.url" in str(caught.value) and "sEcReT" not in str(caught.value)


@pytest.mark.slow
def test_secrets_from_ssm_and_secrets_manager(aws_target):
    aws_target.client("ssm").put_parameter(Name="/tw/pd", Value="pd-from-ssm", Type="SecureString")
    arn = aws_target.client("secretsmanager").create_secret(
        Name="tw/slack", SecretString='{"url": "' + SLACK_URL + '"}'
    )["ARN"]
    destinations = {
        "team": {"type": "slack", "url": f"{arn}#url"},
        "oncall": {"type": "pagerduty", "routing_key": "ssm:/tw/pd"},
    }
    r = Routing.from_config(Config.from_dict({"destinations": destinations}))
    built, secrets = build_all(r, aws_target, env={})
    assert built["team"].link == ""
    assert sorted(secrets.read_values) == sorted(["pd-from-ssm", SLACK_URL])
    with pytest.raises(ConfigError) as caught:
        build_all(
            Routing.from_config(
                Config.from_dict(
                    {"destinations": {"oncall": {"type": "pagerduty", "routing_key": "secretsmanager:tw/missing"}}}
                )
            ),
            aws_target,
            env={},
        )
    assert "destinations.oncall.routing_key: the secret 'secretsmanager:tw/missing' cannot be read" in str(
        caught.value
    ) and "ResourceNotFound" in str(caught.value)
