"""The record processors' own metrics (fast): EMF lines on stderr that follow the Embedded Metric Format
specification, with the counts a known scenario yields when it runs through both processors."""

from __future__ import annotations

import io
import json
from collections import Counter
from types import SimpleNamespace

import pytest

from consumers import kcl, markers
from consumers.metrics import NAMESPACE, RULE_ERRORS, StageMetrics
from consumers.publishing import Alerts
from consumers.router import RouterProcessor
from consumers.sinks import MemoryDedupe, Publisher, SinkUnavailable, retry
from consumers.snapshots import MemorySnapshotStore
from consumers.stateful import StatefulProcessor
from pipeline import emf
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.encode import cwl_records
from pipeline.event import Event
from pipeline.pack import bind_pack
from pipeline.scenario import build
from pipeline.settings import Settings, SettingsError, environment
from pipeline.stages import RouterStage, Stage

UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}


def validate(doc: dict) -> None:
    """The EMF specification's rules for one record (CloudWatch drops a record that breaks them)."""
    aws = doc["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_600_000_000_000
    directives = aws["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 255
        dimension_sets = directive["Dimensions"]
        assert isinstance(dimension_sets, list)
        for names in dimension_sets:
            assert isinstance(names, list) and 1 <= len(names) <= 30
            for name in names:
                assert isinstance(doc[name], str) and doc[name], f"dimension {name} has no string value"
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 1 <= len(metrics) <= 100
        for metric in metrics:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"} and metric["Unit"] in UNITS
            value = doc[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100 and all(isinstance(v, int | float) for v in values), metric


def read_lines(text: str) -> list[dict]:
    docs = [json.loads(line) for line in text.splitlines()]
    for doc in docs:
        validate(doc)
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE
    return docs


def total(docs: list[dict], name: str, **dimensions: str) -> float:
    """The sum of a metric over the records whose dimension set is exactly Application, Stage and `dimensions`."""
    out = 0.0
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        names = set(directive["Dimensions"][0]) - {"Application", "Stage"}
        same = names == set(dimensions) and all(doc[k] == v for k, v in dimensions.items())
        if same and any(m["Name"] == name for m in directive["Metrics"]):
            value = doc[name]
            out += sum(value) if isinstance(value, list) else value
    return out


class Sink:
    name = "sink"

    def __init__(self, failures: int = 0) -> None:
        self.findings: list = []
        self.failures = failures

    def deliver(self, findings):
        if self.failures:
            self.failures -= 1
            raise SinkUnavailable("down for a moment")
        self.findings.extend(findings)


class Facts:
    def __init__(self) -> None:
        self.facts: list = []

    def put_facts(self, facts):
        self.facts.extend(facts)


class DeadLetters:
    def deliver(self, letters, batch_id):
        pass


class Checkpointer:
    def checkpoint(self, sequence_number=None, sub_sequence_number=None):
        pass


def batch(records):
    return SimpleNamespace(records=records, checkpointer=Checkpointer())


def record(data: bytes, seq: int):
    return SimpleNamespace(binary_data=data, sequence_number=str(seq), sub_sequence_number=0)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(kcl.time, "sleep", lambda s: None)


def test_a_scenario_through_both_processors_gives_valid_lines_with_its_counts():
    config = Config.from_dict({"engine": {"allowed_lateness": "2s", "idle_after": "2s"}})
    scenario = build(600, seed=11, attacks="all", config=config)
    pack = bind_pack(config)
    data = cwl_records(scenario.events)
    junk = [b"\x1f\x8bnot gzip", b"plain text"]

    router_out = io.StringIO()
    router_sink = Sink(failures=1)  # one failed delivery: a sink retry and its wait are counted
    router = RouterProcessor(
        RouterStage(pack),
        Alerts(Publisher([router_sink], MemoryDedupe())),
        Facts(),
        DeadLetters(),
        metrics=StageMetrics("app-router", Stage.ROUTER, out=router_out, interval=0),
    )
    router.initialize(SimpleNamespace(shard_id="shardId-000000000000", sequence_number="TRIM_HORIZON"))
    records = [record(d, i) for i, d in enumerate([*data, *junk])]
    for start in range(0, len(records), 25):
        router.process_records(batch(records[start : start + 25]))
    router.shutdown_requested(SimpleNamespace(checkpointer=Checkpointer()))

    now = [max(Event.from_record(e).time for e in scenario.events)]
    stateful_out = io.StringIO()
    stateful_sink = Sink()
    stateful = StatefulProcessor(
        pack.new_state,
        Alerts(Publisher([stateful_sink], MemoryDedupe())),
        MemorySnapshotStore(),
        clock=lambda: now[0],
        metrics=StageMetrics(
            "app-stateful", Stage.STATEFUL, out=stateful_out, interval=0, clock=lambda: now[0] + 1_000
        ),
    )
    stateful.initialize(SimpleNamespace(shard_id="shardId-000000000001", sequence_number="TRIM_HORIZON"))
    facts = router.facts.facts
    for start in range(0, len(facts), 50):
        chunk = facts[start : start + 50]
        stateful.process_records(batch([record(f.to_bytes(), start + i) for i, f in enumerate(chunk)]))
    now[0] += 100  # idle past idle_after, and the router says it read that far: event time follows the clock
    read_to = markers.Progress("shardId-000000000000", now[0])
    stateful.process_records(batch([record(markers.encode_progress(read_to), len(facts))]))
    stateful.process_records(batch([]))

    routed = read_lines(router_out.getvalue())
    assert {d["Application"] for d in routed} == {"app-router"} and {d["Stage"] for d in routed} == {"router"}
    assert total(routed, "RecordsIn") == len(records)
    assert total(routed, "EventsIn") == len(scenario.events)
    assert total(routed, "DeadLetters") == len(junk)
    assert total(routed, "KeyedFactsOut") == len(facts) > 0
    assert total(routed, "SinkRetries") >= 1

    detector = Detector(pack)
    match_rules = {br.rule.id for br in pack.match}
    expected = {
        f.id: f
        for e in sorted((Event.from_record(r) for r in scenario.events), key=lambda e: e.time)
        for f in detector.process(e)
        if f.rule_id in match_rules
    }
    assert total(routed, "FindingsOut") == len(expected) == len(router_sink.findings) > 0
    by_severity = Counter(f.severity for f in expected.values())
    for severity, count in by_severity.items():
        assert total(routed, "FindingsOut", Severity=severity) == count
    assert total(routed, "DedupeHits") == router.progress.findings - len(expected) > 0  # repeats of an id

    kept = read_lines(stateful_out.getvalue())
    assert {d["Stage"] for d in kept} == {"stateful"}
    assert total(kept, "RecordsIn") == len(facts)
    assert total(kept, "FindingsOut") == len(stateful_sink.findings) > 0
    assert sum(total(kept, "FindingsOut", Severity=s) for s in {f.severity for f in stateful_sink.findings}) == len(
        stateful_sink.findings
    )
    lags = [d for d in kept if d.get("ShardId") == "shardId-000000000001"]
    assert lags and all(d["WatermarkLagSeconds"] >= 0 for d in lags)
    assert total(kept, "SnapshotBytes") > 0 and total(kept, "SnapshotMillis") > 0
    totals = [d for d in kept if set(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == {"Application", "Stage"}]
    assert totals[-1]["TrackedKeys"] == stateful.state.keys() > 0


def test_rule_errors_are_counted_per_rule_and_only_once():
    out = io.StringIO()
    metrics = StageMetrics("app", Stage.ROUTER, out=out, interval=0)
    metrics.rule_errors(Counter({"rule-a": 2}))
    metrics.after_batch()
    metrics.rule_errors(Counter({"rule-a": 2, "rule-b": 1}))  # running counts: only rule-b is new
    metrics.after_batch()
    docs = read_lines(out.getvalue())
    assert total(docs, RULE_ERRORS.name) == 3
    assert total(docs, RULE_ERRORS.name, RuleId="rule-a") == 2 and total(docs, RULE_ERRORS.name, RuleId="rule-b") == 1


def test_lines_are_aggregated_over_the_interval_and_can_be_turned_off():
    out = io.StringIO()
    now = [1_800_000_000.0]
    metrics = StageMetrics("app", Stage.STATEFUL, out=out, interval=60, clock=lambda: now[0])
    for _ in range(10):
        metrics.add(emf.Metric("RecordsIn", emf.Unit.COUNT), 5)
        metrics.after_batch()
    assert out.getvalue() == ""
    now[0] += 60
    metrics.after_batch()
    (doc,) = read_lines(out.getvalue())
    assert doc["RecordsIn"] == 50 and doc["FindingsOut"] == 0 and doc["_aws"]["Timestamp"] == int(now[0] * 1000)

    silent = io.StringIO()
    off = StageMetrics("app", Stage.ROUTER, out=silent, interval=0, enabled=False)
    off.add(emf.Metric("RecordsIn", emf.Unit.COUNT), 5)
    off.flush()
    assert silent.getvalue() == ""


def test_a_batch_held_by_a_sink_still_writes_its_lines_every_interval(monkeypatch):
    """A sink that does not answer holds the batch in `until_done` for as long as it lasts: the processor's lines
    (SinkRetries, SinkWaitSeconds) are still written each interval, so the sink-wait alarm sees the outage."""
    monkeypatch.setattr(retry.WAITS, "listener", None)  # restored after the test: the process-wide counter
    out = io.StringIO()
    now = [1_800_000_000.0]
    metrics = StageMetrics("app", Stage.ROUTER, out=out, interval=60, clock=lambda: now[0]).follow_waits()
    failures = iter(range(6))

    def send() -> str:
        if next(failures, None) is not None:
            raise SinkUnavailable("SNS: 503")
        return "sent"

    def sleep(delay: float) -> None:
        now[0] += 30  # each wait, half an interval of the outage

    assert kcl.until_done(send, "publishing findings", sleep=sleep) == "sent"
    docs = [
        d
        for d in read_lines(out.getvalue())
        if set(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == {"Application", "Stage"}
    ]
    assert len(docs) >= 2, "a line per interval of the outage, before the batch ends"
    assert sum(d["SinkRetries"] for d in docs) >= 5 and all(d["RecordsIn"] == 0 for d in docs)
    assert retry.WAITS.listener == metrics.after_batch

    def broken() -> None:
        raise OSError("stderr closed")

    monkeypatch.setattr(retry.WAITS, "listener", broken)
    retry.WAITS.note(0.0)  # a metrics failure is logged, never raised into the delivery


def test_a_dimension_without_a_value_is_refused():
    with pytest.raises(ValueError, match="no value"):
        emf.record("Ns", {"Application": "a"}, {emf.Metric("X", emf.Unit.COUNT): 1}, 0, [["Application", "Stage"]])


def test_the_metrics_settings():
    assert Settings({}).metrics is True and Settings({}).metrics_seconds == 60.0
    env = environment(metrics=False, metrics_seconds=5)
    assert Settings(env).metrics is False and Settings(env).metrics_seconds == 5.0
    with pytest.raises(SettingsError, match="TRAILWARDEN_METRICS"):
        _ = Settings({"TRAILWARDEN_METRICS": "maybe"}).metrics
