"""The KCL record processors with fake daemon inputs (fast): what is published, put and checkpointed, when."""

from __future__ import annotations

import base64
import uuid
from types import SimpleNamespace

import pytest

from consumers import kcl, markers
from consumers.publishing import Alerts
from consumers.router import RouterProcessor
from consumers.sinks import MemoryDedupe, Publisher, SinkUnavailable
from consumers.snapshots import MemorySnapshotStore
from consumers.stateful import StatefulProcessor
from pipeline.config import Config
from pipeline.encode import cwl_records
from pipeline.finding import iso_time
from pipeline.pack import bind_pack
from pipeline.rule import REGISTRY
from pipeline.rules import builtin_rules
from pipeline.ruletest import complete_record
from pipeline.stages import RouterStage
from pipeline.stateful import snapshot
from pipeline.stateful.facts import Fact, key_hash

EC2 = "ec2.amazonaws.com"
T0 = 1_800_000_000.0
CONFIG = Config.from_dict(
    {
        "engine": {"allowed_lateness": "2s", "idle_after": "2s"},
        "rules": {"ec2-instance-missing-required-tags": {"grace": "15s"}},
    }
)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(kcl.time, "sleep", lambda s: None)


def run_instances(iid: str, t: float) -> dict:
    return complete_record(
        {
            "eventSource": EC2,
            "eventName": "RunInstances",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-1", "minCount": 1, "maxCount": 1}]}},
            "responseElements": {"instancesSet": {"items": [{"instanceId": iid}]}},
        }
    )


def open_sg(t: float) -> dict:
    return complete_record(
        {
            "eventSource": EC2,
            "eventName": "AuthorizeSecurityGroupIngress",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {
                "groupId": "sg-1",
                "ipPermissions": {
                    "items": [
                        {
                            "ipProtocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                        }
                    ]
                },
            },
            "responseElements": {"_return": True},
        }
    )


class Checkpointer:
    def __init__(self, log: list):
        self.log = log

    def checkpoint(self, sequence_number=None, sub_sequence_number=None):
        self.log.append(("checkpoint", sequence_number))


def record(data: bytes, seq: int):
    return SimpleNamespace(binary_data=data, sequence_number=str(seq), sub_sequence_number=0)


def batch(records, log):
    return SimpleNamespace(records=records, checkpointer=Checkpointer(log))


class Sink:
    name = "sink"

    def __init__(self, log: list, failures: int = 0):
        self.log, self.failures, self.findings = log, failures, []

    def deliver(self, findings):
        if self.failures:
            self.failures -= 1
            self.log.append(("sink-failed", len(findings)))
            raise SinkUnavailable("down")
        self.log.append(("published", len(findings)))
        self.findings.extend(findings)


class Facts:
    def __init__(self, log: list):
        self.log, self.facts = log, []

    def put_facts(self, facts):
        self.log.append(("facts", len(facts)))
        self.facts.extend(facts)


class DeadLetters:
    def __init__(self, log: list):
        self.log, self.letters = log, []

    def deliver(self, letters, batch_id):
        self.log.append(("dead", len(letters)))
        self.letters.extend(letters)


def router(log, sink_failures=0):
    sink = Sink(log, sink_failures)
    proc = RouterProcessor(
        RouterStage(bind_pack(CONFIG)),
        Alerts(Publisher([sink], MemoryDedupe())),
        Facts(log),
        DeadLetters(log),
        stream="trail",
    )
    proc.initialize(SimpleNamespace(shard_id="shardId-000000000001", sequence_number="TRIM_HORIZON"))
    return proc, sink


def test_router_checkpoints_only_after_findings_facts_and_dead_letters_are_acknowledged():
    log: list = []
    proc, sink = router(log)
    data = cwl_records([open_sg(T0), run_instances("i-0000000000000001", T0)])
    records = [record(d, 10 + i) for i, d in enumerate(data)] + [record(b"\x1f\x8bnot gzip", 99)]
    proc.process_records(batch(records, log))
    kinds = [entry[0] for entry in log]
    assert kinds == ["published", "facts", "dead", "checkpoint"]
    assert log[-1] == ("checkpoint", "99")
    assert {f.rule_id for f in sink.findings} >= {"ec2-security-group-open-to-internet"}
    facts = proc.facts.facts
    tags = [f for f in facts if f.rule == "ec2-instance-missing-required-tags"]
    assert len(tags) == 1 and tags[0].partition_key == "111122223333:us-east-1:i-0000000000000001"
    letter = proc.dead_letters.letters[0]
    assert letter.origin == "trail/shardId-000000000001/99" and letter.reason


def test_router_holds_the_checkpoint_while_the_sink_is_down():
    log: list = []
    proc, sink = router(log, sink_failures=3)
    proc.process_records(batch([record(d, 1) for d in cwl_records([open_sg(T0)])], log))
    kinds = [entry[0] for entry in log]
    assert kinds[:3] == ["sink-failed"] * 3
    assert kinds.index("checkpoint") > kinds.index("published")
    assert len(sink.findings) >= 1


def test_router_ignores_empty_batches():
    log: list = []
    proc, _ = router(log)
    proc.process_records(batch([], log))
    assert log == []


def test_router_sends_the_digest_of_repeats_on_an_idle_batch_once_its_interval_passed():
    log: list = []
    sink, now = Sink(log), [1000.0]
    publisher = Publisher([sink], MemoryDedupe(), clock=lambda: now[0])
    proc = RouterProcessor(
        RouterStage(bind_pack(CONFIG)), Alerts(publisher), Facts(log), DeadLetters(log), stream="trail"
    )
    proc.initialize(SimpleNamespace(shard_id="shardId-000000000001", sequence_number="TRIM_HORIZON"))
    for seq in (1, 2, 3):
        proc.process_records(batch([record(d, seq) for d in cwl_records([open_sg(T0)])], log))
    first = [f for f in sink.findings if f.rule_id == "ec2-security-group-open-to-internet"]
    assert [f.occurrences for f in first] == [1]
    sent = len(sink.findings)
    proc.process_records(batch([], log))
    assert len(sink.findings) == sent  # nothing due yet
    now[0] += publisher.digest_interval
    log.clear()
    proc.process_records(batch([], log))
    digest = [f for f in sink.findings if f.id == first[0].id and f.occurrences > 1]
    assert [f.occurrences for f in digest] == [3]
    assert [entry[0] for entry in log] == ["published"]  # an idle batch: nothing to checkpoint


# --- stateful ------------------------------------------------------------------------------------


def fact_record(fact: Fact, seq: int):
    return record(fact.to_bytes(), seq)


def progress_record(read_to: float, seq: int):
    """A router's progress marker: trail shard 0 read up to `read_to`."""
    return record(markers.encode_progress(markers.Progress("shardId-000000000000", read_to)), seq)


def start_fact(iid: str, t: float) -> Fact:
    return Fact(
        "ec2-instance-missing-required-tags",
        f"111122223333:us-east-1:{iid}",
        str(uuid.uuid4()),
        t,
        "start",
        "",
        {"tags": {}},
        "111122223333",
        "us-east-1",
        "arn:aws:iam::111122223333:user/a",
    )


def stateful(log, store=None, clock=None):
    sink = Sink(log)
    store = store if store is not None else MemorySnapshotStore()
    proc = StatefulProcessor(
        bind_pack(CONFIG).new_state, Alerts(Publisher([sink], MemoryDedupe())), store, clock=clock or (lambda: T0)
    )
    proc.initialize(SimpleNamespace(shard_id="shardId-000000000000", sequence_number="TRIM_HORIZON"))
    return proc, sink, store


def test_idle_shard_fires_timers_on_the_wall_clock_and_snapshots_before_checkpoint():
    log: list = []
    now = [T0]
    proc, sink, store = stateful(log, clock=lambda: now[0])
    proc.process_records(batch([fact_record(start_fact("i-1", T0), 5)], log))
    assert [e[0] for e in log] == ["checkpoint"] and store.saves == 1
    now[0] = T0 + 30  # past the 15 s grace, but no router has said how far it read: nothing fires
    proc.process_records(batch([], log))
    assert sink.findings == []
    now[0] = T0 + 31  # the router reads on, idle: the watermark follows the wall clock up to what it read
    proc.process_records(batch([progress_record(T0 + 10, 6)], log))
    assert sink.findings == [] and log[-1] == ("checkpoint", "6") and store.saves == 1  # a marker: no snapshot
    proc.process_records(batch([progress_record(T0 + 31, 7)], log))
    assert [f.rule_id for f in sink.findings] == ["ec2-instance-missing-required-tags"]
    assert store.saves == 2  # the fired timer changed the state: saved before the checkpoint


def test_restart_restores_the_snapshot_and_applies_a_replayed_fact_once():
    log: list = []
    store = MemorySnapshotStore()
    fact = start_fact("i-2", T0)
    proc, _, _ = stateful(log, store)
    proc.process_records(batch([fact_record(fact, 7)], log))
    # a new process (after a crash) on the same shard: the replayed record must not start a second watch
    proc2, _, _ = stateful(log, store, clock=lambda: T0 + 1)
    assert proc2.state.keys() + len(proc2.state.pending) == 1
    proc2.process_records(batch([fact_record(fact, 7)], log))
    assert proc2.state.stats.duplicates == 1


def test_shard_end_hands_each_child_its_keys():
    log: list = []
    store = MemorySnapshotStore()
    proc, _, _ = stateful(log, store)
    facts = [start_fact(f"i-{n}", T0) for n in range(40)]
    proc.process_records(batch([fact_record(f, i) for i, f in enumerate(facts)], log))
    half = 2**127
    children = [
        {
            "ShardId": "shardId-000000000002",
            "ParentShardId": "shardId-000000000000",
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(half - 1)},
        },
        {
            "ShardId": "shardId-000000000003",
            "ParentShardId": "shardId-000000000000",
            "HashKeyRange": {"StartingHashKey": str(half), "EndingHashKey": str(2**128 - 1)},
        },
    ]
    proc.kinesis = SimpleNamespace(list_shards=lambda **kw: {"Shards": children})
    proc.shard_ended(SimpleNamespace(checkpointer=Checkpointer(log)))
    assert log[-1] == ("checkpoint", None)
    low = {f.key for f in facts if key_hash(f.key) < half}
    for child, expected in (("shardId-000000000002", low), ("shardId-000000000003", {f.key for f in facts} - low)):
        proc_child = StatefulProcessor(
            bind_pack(CONFIG).new_state, Alerts(Publisher([Sink([])])), store, clock=lambda: T0
        )
        proc_child.initialize(SimpleNamespace(shard_id=child, sequence_number="TRIM_HORIZON"))
        keys = {k for states in proc_child.state.states.values() for k in states}
        keys |= {entry[6].key for entry in proc_child.state.pending}
        assert keys == expected


def test_unreadable_snapshot_starts_empty_instead_of_blocking():
    log: list = []
    store = MemorySnapshotStore()
    store.objects["shardId-000000000000"] = b"garbage"
    proc, _, _ = stateful(log, store)
    assert proc.state.keys() == 0


def test_bad_fact_records_are_dead_letters_not_crashes():
    log: list = []
    proc, _, _ = stateful(log)
    proc.dead_letters = DeadLetters(log)
    proc.process_records(batch([record(b"{not json", 3), fact_record(start_fact("i-9", T0), 4)], log))
    assert ("dead", 1) in log and log[-1] == ("checkpoint", "4")
    assert snapshot.decode(proc.store.objects["shardId-000000000000"])


def test_base64_helper_records_roundtrip():
    # the daemon's JSON carries base64; amazon_kclpy's Record decodes it
    from amazon_kclpy.messages import Record

    r = Record(
        {
            "data": base64.b64encode(b"abc").decode(),
            "sequenceNumber": "1",
            "subSequenceNumber": 0,
            "partitionKey": "k",
            "approximateArrivalTimestamp": 0,
        }
    )
    assert r.binary_data == b"abc"


def test_s3_snapshot_store_round_trip_and_handoffs(monkeypatch):
    import boto3
    from moto import mock_aws

    from consumers.snapshots import S3SnapshotStore, merge

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="state")
        store = S3SnapshotStore(s3, "state", "trailwarden-stateful")
        assert store.load("shardId-000000000000") is None
        state = bind_pack(CONFIG).new_state()
        state.add([start_fact("i-1", T0), start_fact("i-2", T0)], now=T0)
        store.save("shardId-000000000000", snapshot.dumps(state))
        assert s3.head_object(Bucket="state", Key="trailwarden-stateful/shardId-000000000000")
        restored = snapshot.load_into(bind_pack(CONFIG).new_state(), store.load("shardId-000000000000"))
        assert len(restored.pending) + restored.keys() == 2
        for parent, iid in (("shardId-000000000000", "i-1"), ("shardId-000000000001", "i-3")):
            other = bind_pack(CONFIG).new_state()
            other.add([start_fact(iid, T0)], now=T0)
            store.save_handoff("shardId-000000000002", parent, snapshot.dumps(other))
        merged = merge(store.handoffs("shardId-000000000002"))
        child = snapshot.load_into(bind_pack(CONFIG).new_state(), merged)
        assert {e[6].key.rsplit(":", 1)[1] for e in child.pending} == {"i-1", "i-3"}


def test_router_logs_rule_errors_and_keeps_going(caplog):
    from pipeline.rule import match

    @match(
        id="test-broken-rule",
        title="Broken",
        severity="low",
        attack="T0000",
        events={"ec2.amazonaws.com": ["AuthorizeSecurityGroupIngress"]},
    )
    def broken(e, p):
        """Raises on every event."""
        raise RuntimeError("boom")

    log: list = []
    sink = Sink(log)
    try:
        stage = RouterStage(bind_pack(CONFIG, rules=[broken, *builtin_rules()]))
        proc = RouterProcessor(
            stage, Alerts(Publisher([sink], MemoryDedupe())), Facts(log), DeadLetters(log), stream="trail"
        )
        proc.initialize(SimpleNamespace(shard_id="shardId-000000000001", sequence_number="TRIM_HORIZON"))
        with caplog.at_level("WARNING", logger="consumers.router"):
            proc.process_records(batch([record(d, 10) for d in cwl_records([open_sg(T0)])], log))
    finally:
        REGISTRY.pop("test-broken-rule", None)
    assert any("rule error" in r.getMessage() and "boom" in r.getMessage() for r in caplog.records)
    assert {f.rule_id for f in sink.findings} >= {"ec2-security-group-open-to-internet"}
    assert log[-1][0] == "checkpoint"
