"""`trailwarden run` end to end against an emulator of the test's own (slow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    from infra import emulator

    monkeypatch.setenv("TRAILWARDEN_STATE_DIR", str(tmp_path / "state"))
    for name in ("AWS_ENDPOINT_URL", "TRAILWARDEN_TARGET", "LOCALSTACK_HOST", "TRAILWARDEN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    handle = emulator.start(emulator.free_port(), log_file=tmp_path / "emulator.log")
    try:
        yield handle.endpoint
    finally:
        handle.stop()


SLACK_SECRET = "/services/T0RUNSECRET/B0RUNSECRET/runsecretslackpath"
HMAC_SECRET = "run-hmac-secret-5d1e"
PD_KEY = "run-pd-routing-key-77a0"


def test_run_prints_findings_as_they_arrive_and_finds_what_the_scenario_expects(
    endpoint, capsys, tmp_path, monkeypatch
):
    from infra.receivers import Receiver

    receivers = {name: Receiver(name).start() for name in ("slack", "pagerduty", "webhook")}
    monkeypatch.setenv("TW_TEST_SLACK", receivers["slack"].url + SLACK_SECRET)
    monkeypatch.setenv("TW_TEST_PD", PD_KEY)
    monkeypatch.setenv("TW_TEST_HMAC", HMAC_SECRET)
    config = tmp_path / "trailwarden.toml"
    config.write_text(f"""
[destinations.team]
type = "slack"
url = "env:TW_TEST_SLACK"
[destinations.oncall]
type = "pagerduty"
routing_key = "env:TW_TEST_PD"
url = "{receivers["pagerduty"].url}"
[destinations.siem]
type = "webhook"
url = "{receivers["webhook"].url}"
secret = "env:TW_TEST_HMAC"
[[routes]]
destinations = ["oncall"]
rules = ["cis-root-*"]
[[routes]]
destinations = ["team", "siem"]
""")
    try:
        code = main(
            [
                "run",
                "--endpoint-url",
                endpoint,
                "--events",
                "400",
                "--seed",
                "5",
                "--config",
                str(config),
                "--scenario",
                "security-group-open,root-usage,ec2-tagged-after-alert",
                "--wait",
                "90",
            ]
        )
    finally:
        for r in receivers.values():
            r.stop()
    out, err = capsys.readouterr()
    assert code == 0, err
    alerts = int(re.search(r"alerts received: (\d+)", err).group(1))
    # every alert (a resolution too) reached Slack and the webhook once, PagerDuty only those of the root rules
    assert (
        "destinations received: everything but what is pending (oncall: 0 pending, 0 dead-lettered; "
        "siem: 0 pending, 0 dead-lettered; team: 0 pending, 0 dead-lettered)" in err
    )
    assert "deliverer restarts: 0" in err  # the deliverer process, under its supervisor, did not exit
    assert len(receivers["webhook"].requests) == alerts == len(receivers["slack"].requests)
    assert receivers["pagerduty"].requests and all(
        b["payload"]["component"] == "cis-root-account-usage" for b in receivers["pagerduty"].bodies()
    )
    # no secret in anything the run printed or logged (the daemons' logs included)
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file())
    for secret in ("T0RUNSECRET", "runsecretslackpath", HMAC_SECRET, PD_KEY):
        assert secret not in out + err + logs
    assert "result: OK" in err
    assert re.search(r"medium\s+open\s+ec2-security-group-open-to-internet", out)
    # the CIS change monitor's finding is info: looked for, and found, in the archive rather than on the topic
    assert "alert policy: medium and above" in err
    assert "daemon restarts: 0 (router 0, stateful 0)" in err  # the supervisor's count: none exited
    assert re.search(r"expected findings archived only, in the Firehose archive: ([1-9]\d*)/\1 found", err), err
    # among them the untagged instance's finding and its resolution once its owner tagged it
    assert "of which resolutions (same id, resolved later): 1" in err, err
    assert not re.search(r"^\d\d:\d\d:\d\d  info ", out, re.M)
    assert "root" in out
    pids = [int(p) for p in re.findall(r"(?:router|stateful) pid (\d+)", err)]
    assert len(pids) == 2
    for pid in pids:  # both daemons stopped by the command itself
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(") ", 1)[1].startswith("Z")
