"""`trailwarden replay` end to end (slow): the live pipeline runs with two rules disabled, CloudTrail records are
played into it, then the range is replayed with the default configuration through the real KCL daemons on the
session's emulator.

Shows: the disabled rules' findings (a match rule and a stateful one) come out of the replay, marked replayed,
on stdout and in the Firehose archive; the live leases, keyed stream and snapshots are untouched and the
replay's own tables, stream, snapshots and processes are gone after; the same range twice gives the same ids;
with --alert only what live did not alert is alerted; Ctrl-C removes everything the replay started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from consumers import live, markers
from infra import aws
from infra.trail_player import Player
from tests.support.live import open_sg, run_instances
from tests.support.replay_run import run_replay

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MISSING_TAGS = "ec2-instance-missing-required-tags"
SG_OPEN = "ec2-security-group-open-to-internet"
SG_CHANGES = "cis-security-group-changes"


class Stack:
    def __init__(self, target: aws.Target, outputs: dict, pipeline: live.LivePipeline, queue: str, state: Path):
        self.target, self.outputs, self.pipeline, self.queue, self.state = target, outputs, pipeline, queue, state
        self.alerts: list[live.Alert] = []
        self.start = self.end = 0.0
        self.instance = "i-" + uuid.uuid4().hex[:17]
        self.groups = [f"sg-0rp{n}" for n in range(3)]

    def poll(self, wait: float = 1.0) -> list[live.Alert]:
        new = list(live.receive(self.target.client("sqs"), self.queue, wait=wait))
        self.alerts += new
        return new

    def replay(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return run_replay(self.command(*args), self.env(), REPO, self.state, timeout)

    def command(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pipeline.cli",
            "replay",
            "--endpoint-url",
            self.target.endpoint_url,
            "--from",
            repr(self.start),
            "--to",
            repr(self.end),
            "--format",
            "json",
            "--keyed-shards",
            "1",
            "--timeout",
            "240",
            *args,
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRAILWARDEN_"))}
        return {**env, "TRAILWARDEN_STATE_DIR": str(self.state)}

    def lease_checkpoints(self) -> dict[str, dict]:
        ddb = self.target.client("dynamodb")
        out = {}
        for app in ("trailwarden-router", "trailwarden-stateful"):
            for item in ddb.scan(TableName=app, ConsistentRead=True)["Items"]:
                out[f"{app}/{item['leaseKey']['S']}"] = {
                    k: item.get(k) for k in ("checkpoint", "checkpointSubSequenceNumber", "leaseOwner")
                }
        return out

    def lease_items(self) -> dict[str, dict]:
        """The live leases as the KCL keeps them (counters, owners, pending checkpoints), for failure messages."""
        ddb = self.target.client("dynamodb")
        return {
            f"{app}/{item['leaseKey']['S']}": item
            for app in ("trailwarden-router", "trailwarden-stateful")
            for item in ddb.scan(TableName=app, ConsistentRead=True)["Items"]
        }

    def settled_checkpoints(self, quiet: float = 2.0, timeout: float = 90) -> dict[str, dict]:
        """The live checkpoints once the live pipeline has finished with what it was given: every router lease
        at the last record of its shard and unchanged for `quiet` (a loaded machine can leave a shard idle for
        seconds before its processor takes its records), every stateful lease at or past its shard's last fact
        (the routers' progress markers keep coming after it, and move it on)."""
        deadline = time.monotonic() + timeout
        last = self.lease_checkpoints()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.lease_checkpoints()
            routers = {lease: value for lease, value in now.items() if lease.startswith("trailwarden-router/")}
            if routers == {k: v for k, v in last.items() if k in routers} and all(
                reached(now[lease], tip) for lease, tip in self.shard_tips().items()
            ):
                return now
            last = now
        raise AssertionError(f"the live checkpoints do not settle at the shards' last records: {last}")

    def shard_tips(self) -> dict[str, str]:
        """For each lease of the live applications, the sequence number of its shard's last record (its last
        fact on the keyed stream: progress markers left out)."""
        kinesis, tips = self.target.client("kinesis"), {}
        for app, stream in (
            ("trailwarden-router", self.outputs["TrailStreamName"]),
            ("trailwarden-stateful", self.outputs["KeyedStreamName"]),
        ):
            for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
                records = [r for r in self.records(stream, shard["ShardId"]) if not markers.read_progress(r["Data"])]
                if records:
                    tips[f"{app}/{shard['ShardId']}"] = records[-1]["SequenceNumber"]
        return tips

    def records(self, stream: str, shard: str) -> list[dict]:
        kinesis = self.target.client("kinesis")
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        return kinesis.get_records(ShardIterator=iterator, Limit=10000)["Records"]

    def keyed_facts(self) -> int:
        """Facts on the live keyed stream (the routers' progress markers left out)."""
        stream = self.outputs["KeyedStreamName"]
        return sum(
            1
            for shard in self.target.client("kinesis").list_shards(StreamName=stream)["Shards"]
            for r in self.records(stream, shard["ShardId"])
            if not markers.read_progress(r["Data"])
        )

    def archived(self) -> list[dict]:
        return live.archived(self.target, self.outputs["FindingsBucketName"])

    def leftovers(self) -> list[str]:
        """Anything of a replay still there: tables, streams, snapshots, processes."""
        found = [t for t in self.target.client("dynamodb").list_tables()["TableNames"] if "-replay-" in t]
        found += [s for s in self.target.client("kinesis").list_streams()["StreamNames"] if "-replay-" in s]
        listed = self.target.client("s3").list_objects_v2(Bucket=self.outputs["StateBucketName"])
        found += [o["Key"] for o in listed.get("Contents", []) if o["Key"].startswith("trailwarden-stateful-replay-")]
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if ("-replay-" in text and "MultiLangDaemon" in text) or _replay_processor(cmdline.parent):
                found.append(f"process {cmdline.parent.name}: {text[:120]}")
        return found


def reached(lease: dict, sequence_number: str) -> bool:
    checkpoint = lease["checkpoint"]["S"]
    return checkpoint.isdigit() and int(checkpoint) >= int(sequence_number)


def moved_on(was: dict, now: dict) -> bool:
    """A checkpoint at or past where it was; one never taken (the seeded TRIM_HORIZON, a stage-2 shard whose
    processor had not read its first progress markers yet) is passed by any other."""
    before = was["checkpoint"]["S"]
    return reached(now, before) if before.isdigit() else True


def touched(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """What the live leases show that a replay must not have done, one line per lease (empty: untouched): the
    routers' must be as they were (no trail record arrived during the replay; a trail shard none of the records
    went to stays at TRIM_HORIZON), the stateful ones keep their owners and their checkpoints only moved on (the
    routers' progress markers keep coming)."""
    problems = [f"leases {sorted(before)} became {sorted(after)}"] if set(after) != set(before) else []
    for lease, was in before.items():
        now = after.get(lease)
        if now is None:
            continue
        changed = {field: (was.get(field), now.get(field)) for field in was if was.get(field) != now.get(field)}
        router = lease.startswith("trailwarden-router/")
        if (router and changed) or (not router and ("leaseOwner" in changed or not moved_on(was, now))):
            problems.append(f"{lease}: {changed}")
    return problems


def _replay_processor(proc: Path) -> bool:
    """A record processor started for a replay: the live processors' modules with a replay's settings."""
    try:
        return b"TRAILWARDEN_REPLAY_RUN=" in (proc / "environ").read_bytes()
    except OSError:
        return False


def findings(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stack(module_target: aws.Target, tmp_path_factory):
    from infra import provision

    directory = tmp_path_factory.mktemp("replay")
    config = directory / "live.toml"
    config.write_text(
        f'[engine]\nallowed_lateness = "2s"\nidle_after = "2s"\n[rules.{SG_OPEN}]\nenabled = false\n'
        f'[rules.{MISSING_TAGS}]\nenabled = false\n[alerts]\nrules = ["{SG_CHANGES}"]\n'
    )
    outputs = provision.provision(module_target)
    queue, _ = live.findings_queue(module_target, outputs["FindingsTopicArn"])
    pipeline = live.LivePipeline.start(
        module_target, outputs, directory / "kcl", env={"TRAILWARDEN_CONFIG": str(config)}
    )
    try:
        s = Stack(module_target, outputs, pipeline, queue, directory / "state")
        player = Player(module_target.client("logs"), outputs["TrailLogGroupName"])
        player.play([open_sg("sg-0before", time.time())])
        time.sleep(1.2)
        s.start = time.time()
        t = time.time() - 120
        player.play([run_instances(s.instance, t), open_sg(s.groups[0], t + 1), open_sg(s.groups[1], t + 2)])
        player.play([open_sg(s.groups[2], t + 3600)])  # event time moves past the 15-minute grace of MISSING_TAGS
        s.end = time.time()
        time.sleep(1.2)
        player.play([open_sg("sg-0after", time.time())])
        wanted = {*s.groups, "sg-0before", "sg-0after"}
        deadline = time.monotonic() + 240  # a loaded machine takes minutes to start the daemons
        while time.monotonic() < deadline:
            s.poll()
            seen = {r for a in s.alerts if a.finding.rule_id == SG_CHANGES for r in a.finding.resources}
            if wanted <= seen:
                break
        assert wanted <= seen, [a.finding.rule_id for a in s.alerts]
        assert not [a for a in s.alerts if a.finding.rule_id in (SG_OPEN, MISSING_TAGS)]  # disabled live
        yield s
    finally:
        pipeline.stop()


def test_replay_finds_what_rules_disabled_live_would_have_found_and_leaves_the_live_apps_alone(stack: Stack):
    leases_before, keyed_before = stack.settled_checkpoints(), stack.keyed_facts()
    items_before = stack.lease_items()
    started = time.monotonic()
    result = stack.replay()
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = findings(result.stdout)
    assert out and all(f["replayed"] for f in out)
    by_rule = {(f["rule_id"], r.rsplit("/", 1)[-1]) for f in out for r in f["resources"]}
    assert {(SG_OPEN, g) for g in stack.groups} <= by_rule
    assert any(rule == MISSING_TAGS and stack.instance in r for rule, r in by_rule)  # stage 2 on event time
    assert not {r for _, r in by_rule} & {"sg-0before", "sg-0after"}  # arrived outside the range
    assert {(SG_CHANGES, g) for g in stack.groups} <= by_rule  # already alerted live: printed all the same
    assert len({f["id"] for f in out}) == len(out)
    archived = {f["id"] for f in stack.archived() if f.get("replayed")}
    new_ids = {f["id"] for f in out if f["rule_id"] in (SG_OPEN, MISSING_TAGS)}
    assert new_ids <= archived  # Firehose got them (not those alerted live: the dedupe table says so)
    assert not archived & {f["id"] for f in out if f["rule_id"] == SG_CHANGES}
    assert "already alerted" in result.stderr and "passed the end of the range" in result.stderr  # the summary
    # the live applications' checkpoints and keyed stream are as they were; nothing of the replay is left
    after = stack.lease_checkpoints()
    problems = touched(leases_before, after)
    restarts = dict(stack.pipeline.supervisor.restarts) if stack.pipeline.supervisor else {}
    assert not problems, (problems, {"daemon restarts": restarts}, items_before, stack.lease_items())
    assert stack.keyed_facts() == keyed_before
    assert stack.leftovers() == []
    assert not [a for a in stack.poll(wait=1) if a.finding.replayed]  # without --alert nothing reaches the topic
    print(f"replay took {took:.1f} s")
    stack.first_run = out  # type: ignore[attr-defined]


def test_replay_twice_gives_the_same_ids_and_with_alert_alerts_only_what_live_did_not(stack: Stack):
    first = getattr(stack, "first_run", None)
    if first is None:
        pytest.skip("needs the first replay")
    alerted_live = {a.finding.id for a in stack.alerts}
    result = stack.replay("--alert")
    assert result.returncode == 0, result.stderr
    second = findings(result.stdout)
    assert sorted(f["id"] for f in second) == sorted(f["id"] for f in first)
    stack.poll(wait=2)
    replayed = [a for a in stack.alerts if a.finding.replayed]
    # the replay's configuration is the default one: medium and above alerted, so the missing tags (low) are
    # only archived (the first replay did), the open groups (medium) alerted
    expected = {f["id"] for f in second if f["rule_id"] == SG_OPEN}
    assert expected and {a.finding.id for a in replayed} == expected  # what live had alerted is not alerted again
    assert any(f["rule_id"] == MISSING_TAGS and f["severity"] == "low" for f in second)
    assert not {a.finding.id for a in replayed} & alerted_live
    ids = [a.finding.id for a in stack.alerts]
    assert len(ids) == len(set(ids))  # nothing alerted twice, live or replayed
    assert stack.leftovers() == []


def test_ctrl_c_stops_and_removes_everything_the_replay_started(stack: Stack):
    process = subprocess.Popen(
        stack.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stack.env(), cwd=REPO
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list((stack.state / "replay").glob("*/kcl/*.pid"))) < 2:
            time.sleep(0.1)
        pids = [json.loads(p.read_text())["pid"] for p in (stack.state / "replay").glob("*/kcl/*.pid")]
        assert len(pids) == 2
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert stack.leftovers() == []
