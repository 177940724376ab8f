"""The built wheel works outside the checkout (slow): installed into a fresh virtualenv with its runtime
dependencies only (no `local` extra), run from another folder, it tests its rules, scans CloudTrail,
runs the live pipeline's KCL daemons against an emulator, and runs each stage alone as the container's
entrypoint does (`trailwarden consume`); what needs the extra says how to get it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers import live
from infra import aws, emulator, provision
from infra.trail_player import Player
from pipeline.detector import Detector
from pipeline.event import Event
from tests.support.corpus import STRATUS
from tests.support.live import MISSING_TAGS, SG_OPEN, config_file, instance_id, open_sg, run_instances

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TECHNIQUE = "aws.defense-evasion.cloudtrail-stop.json"


class Installed:
    def __init__(self, venv: Path, work: Path) -> None:
        self.venv, self.work = venv, work
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "PYTHONPATH",
                "VIRTUAL_ENV",
                "AWS_ENDPOINT_URL",
                "LOCALSTACK_HOST",
                "TRAILWARDEN_TARGET",
                "TRAILWARDEN_CONFIG",
            )
        }
        self.env["TRAILWARDEN_STATE_DIR"] = str(work / "state")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from the checkout and installed with its runtime dependencies into a fresh virtualenv,
    by uv (the dev extra's, beside this interpreter): pip's resolve and install took half a minute more."""
    base = tmp_path_factory.mktemp("wheel")
    uv = str(Path(sys.executable).with_name("uv"))
    subprocess.run(
        [uv, "build", "--wheel", "-q", "-o", str(base / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (base / "dist").glob("trailwarden-*.whl")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(base / "venv")], check=True, timeout=120)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--compile-bytecode",
            "--python",
            str(base / "venv" / "bin" / "python"),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    work = base / "elsewhere"
    work.mkdir()
    return Installed(base / "venv", work)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    handle = emulator.start(emulator.free_port(), log_file=tmp_path / "emulator.log")
    try:
        yield handle.endpoint
    finally:
        handle.stop()


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    probe = installed.run(
        "python",
        "-c",
        "import pipeline, consumers, infra, json; "
        "print(json.dumps([m.__file__ for m in (pipeline, consumers, infra)]))",
    )
    assert probe.returncode == 0, probe.stderr
    for path in json.loads(probe.stdout):
        assert str(installed.venv) in path and str(ROOT) not in path
    extra = installed.run("python", "-c", "import moto")
    assert extra.returncode != 0, "the emulator is an optional extra, not a runtime dependency"


def test_rules_test_and_scan_run_from_another_folder(installed: Installed) -> None:
    tested = installed.run("trailwarden", "rules", "test", "-q")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " 0 failed" in tested.stdout + tested.stderr

    shutil.copy(STRATUS / TECHNIQUE, installed.work / TECHNIQUE)
    scanned = installed.run("trailwarden", "scan", TECHNIQUE, "--format", "json", "-q")
    assert scanned.returncode == 0, scanned.stderr
    ids = {json.loads(line)["id"] for line in scanned.stdout.splitlines()}
    detector = Detector()
    events = [Event.from_record(r) for r in json.loads((STRATUS / TECHNIQUE).read_text())]
    expected = {f.id for e in sorted(events, key=lambda e: e.time) for f in detector.process(e)}
    expected |= {f.id for f in detector.finish()}
    assert ids and ids == expected


def test_run_starts_both_kcl_daemons_from_the_wheel(installed: Installed, endpoint: str) -> None:
    ran = installed.run(
        "trailwarden",
        "run",
        "--endpoint-url",
        endpoint,
        "--events",
        "300",
        "--seed",
        "3",
        "--scenario",
        "security-group-open",
        "--wait",
        "90",
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "result: OK" in ran.stderr
    assert "ec2-security-group-open-to-internet" in ran.stdout


def test_the_embedded_emulator_without_the_local_extra_says_what_to_install(installed: Installed) -> None:
    up = installed.run("trailwarden", "stack", "up")
    assert up.returncode != 0
    assert "pip install 'trailwarden[local]'" in up.stderr


def shard_tips(target: aws.Target, stream: str) -> dict[str, str]:
    """The last sequence number of each shard of `stream` that has records."""
    kinesis = target.client("kinesis")
    tips = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            if page["Records"]:
                tips[shard["ShardId"]] = page["Records"][-1]["SequenceNumber"]
            if not page["Records"] or not page.get("MillisBehindLatest"):
                break
            iterator = page.get("NextShardIterator")
    return tips


def checkpoints(target: aws.Target, application: str) -> dict[str, str]:
    items = target.client("dynamodb").scan(TableName=application, ConsistentRead=True)["Items"]
    return {i["leaseKey"]["S"]: i.get("checkpoint", {}).get("S", "") for i in items}


def owners(target: aws.Target, application: str) -> dict[str, str | None]:
    items = target.client("dynamodb").scan(TableName=application, ConsistentRead=True)["Items"]
    return {i["leaseKey"]["S"]: i.get("leaseOwner", {}).get("S") for i in items}


def test_consume_runs_each_stage_from_the_wheel_and_stops_gracefully_on_sigterm(
    installed: Installed, endpoint: str, tmp_path: Path
) -> None:
    """The container's entrypoint, without a container: `trailwarden consume router` and `consume stateful` from
    the wheel against the emulator; a match finding (stage 1) and a stateful one (stage 2) arrive on the topic;
    SIGTERM then makes each daemon shut down gracefully: its processors checkpoint at the last record of every
    shard (and stage 2 saves its snapshot), the exit status is the daemon's, and its leases are left without an
    owner, so a second router (another worker id, as a replacement task) holds them all within seconds."""
    target = aws.emulator(endpoint)
    outputs = provision.provision(target)
    queue, _ = live.findings_queue(target, outputs["FindingsTopicArn"])
    config = config_file(tmp_path, grace=5)
    env = {**installed.env, "TRAILWARDEN_CONFIG": str(config), "TRAILWARDEN_METRICS_SECONDS": "1"}
    consumers = {}
    for stage in ("router", "stateful"):
        with open(tmp_path / f"{stage}.err", "w") as err:
            consumers[stage] = subprocess.Popen(
                [str(installed.venv / "bin" / "trailwarden"), "consume", stage, "--endpoint-url", endpoint],
                cwd=installed.work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
            )
    try:
        group, untagged, now = "sg-0consume1", instance_id(), time.time()
        Player(target.client("logs"), outputs["TrailLogGroupName"]).play(
            [open_sg(group, now), run_instances(untagged, now)]
        )
        alerts: list[live.Alert] = []
        wanted = {(SG_OPEN, group), (MISSING_TAGS, untagged)}

        def arrived() -> set[tuple[str, str]]:
            return {
                (rule, part)
                for rule, part in wanted
                if any(a.finding.rule_id == rule and any(part in r for r in a.finding.resources) for a in alerts)
            }

        deadline = time.monotonic() + 240
        while arrived() != wanted and time.monotonic() < deadline:
            assert all(p.poll() is None for p in consumers.values()), "a consume process exited early"
            alerts += live.receive(target.client("sqs"), queue, wait=1)
        logs = {stage: (tmp_path / f"{stage}.err").read_text() for stage in consumers}
        assert arrived() == wanted, logs

        # Stop stage 1 first, then let stage 2 read to the keyed stream's tip (the router's last progress
        # marker comes after its last fact) before stopping it: the order a rolling stop takes.
        for stage, process in consumers.items():
            if stage == "stateful":
                tips = shard_tips(target, outputs["KeyedStreamName"])
                deadline = time.monotonic() + 120
                while (
                    time.monotonic() < deadline
                    and {s: checkpoints(target, outputs["StatefulAppName"]).get(s) for s in tips} != tips
                ):
                    time.sleep(1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=90) == 128 + signal.SIGTERM, stage  # the JVM's status after SIGTERM
            assert process.stdout is not None and process.stdout.read() == b"", "stdout stays empty"
            app = outputs["RouterAppName" if stage == "router" else "StatefulAppName"]
            held = owners(target, app)
            assert held and set(held.values()) == {None}, f"{stage}: leases still owned after the exit: {held}"
        router_leases = set(owners(target, outputs["RouterAppName"]))

        # A replacement task: another worker id takes every freed lease at once (the KCL would leave them owned
        # by the stopped worker until they expire), reads on from the checkpoints, and gives them back in turn.
        with open(tmp_path / "second.err", "w") as err:
            consumers["second"] = subprocess.Popen(
                [
                    *(str(installed.venv / "bin" / "trailwarden"), "consume", "router", "--endpoint-url", endpoint),
                    *("--worker-id", "replacement"),
                ],
                cwd=installed.work,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 180  # its JVM's start-up: about 5 s on an idle machine, a minute under load
        while time.monotonic() < deadline and set(owners(target, outputs["RouterAppName"]).values()) != {"replacement"}:
            assert consumers["second"].poll() is None, (tmp_path / "second.err").read_text()[-3000:]
            time.sleep(0.5)
        assert owners(target, outputs["RouterAppName"]) == dict.fromkeys(router_leases, "replacement")
        consumers["second"].send_signal(signal.SIGTERM)
        assert consumers["second"].wait(timeout=90) == 128 + signal.SIGTERM
        assert set(owners(target, outputs["RouterAppName"]).values()) == {None}
    finally:
        for process in consumers.values():
            if process.poll() is None:
                process.kill()
    logs = {stage: (tmp_path / f"{stage}.err").read_text() for stage in consumers}
    logs["second"] = (tmp_path / "second.err").read_text()
    for text in logs.values():
        assert "Traceback" not in text, text[-3000:]
        assert "sending SIGTERM to the KCL daemon" in text and "daemon exited with status 143" in text
        assert re.search(r"gave back [1-9]\d* lease\(s\) of worker ", text), text[-3000:]
    for stage, stream, app in (
        ("router", "TrailStreamName", "RouterAppName"),
        ("stateful", "KeyedStreamName", "StatefulAppName"),
    ):
        tips = shard_tips(target, outputs[stream])
        assert tips, f"no records on the {stage} stage's stream"
        held = checkpoints(target, outputs[app])
        assert {shard: held.get(shard) for shard in tips} == tips, f"{stage}: {held} vs {tips}\n{logs[stage][-3000:]}"
    snapshots = (
        target.client("s3")
        .list_objects_v2(Bucket=outputs["StateBucketName"], Prefix=outputs["StatefulAppName"] + "/")
        .get("Contents", [])
    )
    assert snapshots, "stage 2 saved no snapshot"
    metrics = [json.loads(line) for line in logs["router"].splitlines() if line.startswith('{"_aws"')]
    assert sum(m.get("EventsIn", 0) for m in metrics) == 2, "the router's EMF lines count the 2 events played"
