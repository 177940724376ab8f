"""Replay without the daemons (fast): where a shard stops, the AT_TIMESTAMP properties, the processors with fake
daemon inputs, progress files, names, the end marker, time parsing and the progress line."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from consumers import kcl, launcher, live, markers, reports
from consumers.intake import ArrivalRange, at_tip, select
from consumers.markers import Kind, Marker
from consumers.progress import Progress, read_progress
from consumers.publishing import ReplayedFindings
from consumers.replay import FindingsTail, Names, Status
from consumers.reports import ProgressFile
from consumers.router import RouterProcessor
from consumers.sinks import MemoryDedupe, Publisher
from consumers.sinks.dedupe import ReadOnlyDedupe
from consumers.snapshots import MemorySnapshotStore
from consumers.stateful import StatefulProcessor
from consumers.watermarks import ReplayMarkers
from infra import aws
from pipeline.commands.replay import PROGRESS_EVERY, parse_when, parse_window, progress_line
from pipeline.config import Config
from pipeline.encode import cwl_records
from pipeline.finding import iso_time
from pipeline.pack import bind_pack
from pipeline.progress import Display
from pipeline.ruletest import complete_record
from pipeline.stages import RouterStage, Stage
from pipeline.stateful.facts import Fact
from tests.support.live import open_sg, run_instances

EC2 = "ec2.amazonaws.com"
T0 = 1_800_000_000.0
MISSING_TAGS = "ec2-instance-missing-required-tags"
SG_OPEN = "ec2-security-group-open-to-internet"
CONFIG = Config.from_dict(
    {
        "engine": {"allowed_lateness": "2s", "idle_after": "2s"},
        "rules": {MISSING_TAGS: {"grace": "15s"}, SG_OPEN: {"enabled": False}},
    }
)
OUTPUTS = {
    "TrailStreamName": "tw-trail",
    "KeyedStreamName": "tw-keyed",
    "RouterAppName": "tw-router",
    "StatefulAppName": "tw-stateful",
    "StateBucketName": "b",
}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(kcl.time, "sleep", lambda s: None)
    monkeypatch.setattr(reports, "WRITE_EVERY", 0.0)  # every progress write goes to the file


class Checkpointer:
    def __init__(self) -> None:
        self.at: list = []

    def checkpoint(self, sequence_number=None, sub_sequence_number=None):
        self.at.append(sequence_number)


def kinesis_record(data: bytes, seq: int, arrival: float | None):
    millis = None if arrival is None else int(arrival * 1000)
    return SimpleNamespace(binary_data=data, sequence_number=str(seq), sub_sequence_number=0, timestamp_millis=millis)


def batch(records, behind=None):
    return SimpleNamespace(records=records, checkpointer=Checkpointer(), millis_behind_latest=behind)


def trail_record(records: list[dict], seq: int, arrival: float):
    return kinesis_record(cwl_records(records)[0], seq, arrival)


class Sink:
    name = "memory"

    def __init__(self) -> None:
        self.findings: list = []

    def deliver(self, findings):
        self.findings.extend(findings)


class Facts:
    def __init__(self) -> None:
        self.facts: list = []

    def put_facts(self, facts):
        self.facts.extend(facts)


class DeadLetters:
    def deliver(self, letters, batch_id):
        pass


# --- where a router shard stops ---------------------------------------------------------------------------


def test_select_skips_records_before_the_start_and_stops_at_the_first_past_the_end():
    start, end = 100.0, 200.0
    assert select([99_000, 99_999, 100_000, 150_000, 200_000, 200_001, 150_000], start, end) == (2, 5, True)
    assert select([100_000, 150_000], start, end) == (0, 2, False)
    assert select([], start, end) == (0, 0, False)
    assert select([250_000], start, end) == (0, 0, True)
    # a record without an arrival time is taken, never dropped
    assert select([None, 150_000, None], start, end) == (0, 3, False)


def test_at_tip_by_millis_behind_latest_else_by_an_empty_read():
    assert at_tip(0, 5) and at_tip(0, 0)
    assert not at_tip(1200, 0) and not at_tip(1, 3)
    assert at_tip(None, 0) and not at_tip(None, 2)
    assert not at_tip(True, 3)  # not a number of milliseconds


# --- the daemon's properties for AT_TIMESTAMP --------------------------------------------------------------


def test_at_timestamp_is_given_as_initial_position_extended_in_whole_seconds():
    target = aws.emulator("http://127.0.0.1:4599")
    spec = launcher.AppSpec(
        "tw-router-replay-x",
        "trail",
        "consumers.router",
        initial_position="AT_TIMESTAMP",
        initial_timestamp=1_700_000_123.9,
    )
    props = launcher.properties(spec, target)
    assert props["initialPositionInStreamExtended"] == "1700000123"
    assert "initialPositionInStream" not in props  # the daemon refuses AT_TIMESTAMP there
    plain = launcher.properties(launcher.AppSpec("a", "s", "m"), target)
    assert plain["initialPositionInStream"] == "TRIM_HORIZON" and "initialPositionInStreamExtended" not in plain
    with pytest.raises(ValueError):
        launcher.properties(launcher.AppSpec("a", "s", "m", initial_position="AT_TIMESTAMP"), target)


def test_lease_items_seeded_for_at_timestamp_carry_the_sentinel_checkpoint():
    from consumers.leases import lease_item

    shard = {"ShardId": "shardId-000000000000", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "9"}}
    assert lease_item(shard, "w", "AT_TIMESTAMP")["checkpoint"] == {"S": "AT_TIMESTAMP"}


def test_replay_specs_start_the_router_at_the_range_and_use_their_own_names(tmp_path):
    from consumers.replay import Replay

    job = Replay(
        aws.emulator("http://127.0.0.1:4599"), OUTPUTS, T0, T0 + 60, rules=[SG_OPEN], run_id="r1", directory=tmp_path
    )
    stateful, router = job.specs()
    assert (router.application, router.stream, router.initial_position) == (
        "tw-router-replay-r1",
        "tw-trail",
        "AT_TIMESTAMP",
    )
    assert router.initial_timestamp == T0 and router.empty_batches
    # the live processors, made a replay's by their settings
    live_router, live_stateful = live.specs(OUTPUTS)
    assert (router.processor, stateful.processor) == (live_router.processor, live_stateful.processor)
    assert router.env["TRAILWARDEN_REPLAY_RUN"] == "r1" and "TRAILWARDEN_REPLAY_RUN" not in live_router.env
    assert (stateful.application, stateful.stream) == ("tw-stateful-replay-r1", "tw-keyed-replay-r1")
    resources = json.loads(router.env["TRAILWARDEN_RESOURCES"])
    assert resources["KeyedStreamName"] == "tw-keyed-replay-r1" and resources["TrailStreamName"] == "tw-trail"
    assert resources["StatefulAppName"] == "tw-stateful-replay-r1"
    assert router.env["TRAILWARDEN_DEDUPE"] == "read-only" and router.env["TRAILWARDEN_SINKS"] == "firehose"
    assert router.env["TRAILWARDEN_REPLAY_RULES"] == SG_OPEN
    alerting = Replay(
        aws.emulator("http://127.0.0.1:4599"), OUTPUTS, T0, T0 + 60, alert=True, run_id="r2", directory=tmp_path
    ).specs()[1]
    assert alerting.env["TRAILWARDEN_DEDUPE"] == "table" and alerting.env["TRAILWARDEN_SINKS"] == "sns,firehose"


def test_names_never_collide_with_the_live_ones():
    names = Names.for_run(OUTPUTS, "r9")
    assert names.tables() == [
        "tw-router-replay-r9",
        "tw-router-replay-r9-CoordinatorState",
        "tw-router-replay-r9-WorkerMetricStats",
        "tw-stateful-replay-r9",
        "tw-stateful-replay-r9-CoordinatorState",
        "tw-stateful-replay-r9-WorkerMetricStats",
    ]
    live = {OUTPUTS["RouterAppName"], OUTPUTS["StatefulAppName"], OUTPUTS["KeyedStreamName"]}
    assert not live & {*names.tables(), names.keyed_stream}


# --- the processors with fake daemon inputs -------------------------------------------------------------


def router(tmp_path: Path, start: float, end: float, dedupe=None, only=None):
    """The router processor as a replay wires it: the arrival range, findings to the run's file, a progress file."""
    sink = Sink()
    findings = ReplayedFindings(Publisher([sink], dedupe), tmp_path)
    processor = RouterProcessor(
        RouterStage(bind_pack(CONFIG, only)),
        findings,
        Facts(),
        DeadLetters(),
        intake=ArrivalRange(start, end),
        report=ProgressFile(tmp_path),
    )
    processor.initialize(SimpleNamespace(shard_id="shardId-000000000001", sequence_number="AT_TIMESTAMP"))
    return processor, sink


def test_router_takes_the_range_only_marks_findings_replayed_and_reports_progress(tmp_path):
    processor, sink = router(tmp_path, T0, T0 + 10, only=[SG_OPEN])  # disabled in the config: --rules enables it
    records = [
        trail_record([open_sg("sg-before", T0)], 1, T0 - 0.5),
        trail_record([open_sg("sg-in", T0)], 2, T0 + 1),
        trail_record([open_sg("sg-after", T0)], 3, T0 + 11),
    ]
    processor.process_records(batch(records[:2], behind=5000))
    progress = Progress.read(tmp_path / "progress" / "router-shardId-000000000001.json")
    assert progress is not None and not progress.done and progress.records == 1 and progress.events == 1
    assert progress.last_arrival == pytest.approx(T0 + 1) and progress.last_event_time == T0
    processor.process_records(batch(records[2:], behind=0))
    assert [r.rsplit("/", 1)[-1] for f in sink.findings for r in f.resources] == ["sg-in"]
    assert all(f.replayed and f.rule_id == SG_OPEN for f in sink.findings)
    done = Progress.read(tmp_path / "progress" / "router-shardId-000000000001.json")
    assert done.done and done.reason == "passed the end of the range"
    processor.process_records(batch([trail_record([open_sg("sg-later", T0)], 4, T0 + 2)]))  # after done: ignored
    assert len(sink.findings) == 1
    written = (tmp_path / "findings" / "router-shardId-000000000001.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in written] == [f.id for f in sink.findings]


def test_router_is_done_at_the_tip_of_its_shard(tmp_path):
    processor, _ = router(tmp_path, T0, T0 + 3600)
    processor.process_records(batch([trail_record([open_sg("sg-1", T0)], 1, T0 + 1)], behind=0))
    assert (
        Progress.read(tmp_path / "progress" / "router-shardId-000000000001.json").reason
        == "reached the tip of the shard"
    )
    empty, _ = router(tmp_path / "empty", T0, T0 + 3600)
    empty.process_records(batch([], behind=None))  # an empty read without MillisBehindLatest
    assert Progress.read(tmp_path / "empty" / "progress" / "router-shardId-000000000001.json").done


def test_findings_already_alerted_are_printed_but_not_published_and_without_alert_nothing_is_marked(tmp_path):
    table = MemoryDedupe()
    probe, _ = router(tmp_path / "probe", T0, T0 + 10, only=[SG_OPEN])
    records = [trail_record([open_sg("sg-a", T0), open_sg("sg-b", T0)], 1, T0 + 1)]
    probe.process_records(batch(records, behind=0))
    alerted_live = [
        json.loads(x)["id"]
        for x in (tmp_path / "probe" / "findings" / "router-shardId-000000000001.jsonl").read_text().splitlines()
    ]
    table.mark(alerted_live[:1])
    processor, sink = router(tmp_path / "run", T0, T0 + 10, dedupe=ReadOnlyDedupe(table), only=[SG_OPEN])
    processor.process_records(batch(records, behind=0))
    assert [f.id for f in sink.findings] == alerted_live[1:]
    printed = (tmp_path / "run" / "findings" / "router-shardId-000000000001.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in printed] == alerted_live
    assert table.seen(alerted_live) == set(alerted_live[:1])  # read-only: the second one was not marked
    progress = Progress.read(tmp_path / "run" / "progress" / "router-shardId-000000000001.json")
    assert (progress.published, progress.already_alerted) == (1, 1)


def stateful(tmp_path: Path, run_id: str = "r1"):
    """The stateful processor as a replay wires it: event time moved by the run's markers only."""
    sink = Sink()
    processor = StatefulProcessor(
        bind_pack(CONFIG).new_state,
        ReplayedFindings(Publisher([sink]), tmp_path),
        MemorySnapshotStore(),
        watermark=ReplayMarkers(run_id),
        report=ProgressFile(tmp_path),
        clock=lambda: T0 + 10_000,
    )
    processor.initialize(SimpleNamespace(shard_id="shardId-000000000000", sequence_number="TRIM_HORIZON"))
    return processor, sink


def facts_of(records: list[dict]) -> list[bytes]:
    stage = RouterStage(bind_pack(CONFIG))
    from pipeline.event import Event

    out = []
    for raw in records:
        out += [f.to_bytes() for f in stage.process(Event.from_record(raw, "test"))[1]]
    return out


def test_stateful_runs_on_event_time_only_and_the_end_marker_flushes_to_the_replays_last_event_time(tmp_path):
    processor, sink = stateful(tmp_path)
    data = facts_of([run_instances("i-0aaaaaaaaaaaaaaaa", T0)])
    assert data and all(Fact.from_bytes(d) for d in data)
    records = [kinesis_record(d, i + 1, None) for i, d in enumerate(data)]
    processor.process_records(batch(records))
    processor.process_records(batch([]))
    assert sink.findings == []  # the wall clock (T0 + 10,000) never fires a replay's timers
    # the marker of another run is not this run's end (it is read as a fact and dead-lettered)
    processor.process_records(batch([kinesis_record(markers.encode("other", Kind.END, T0 + 60), 50, None)]))
    assert sink.findings == [] and not processor.progress.done
    processor.process_records(batch([kinesis_record(markers.encode("r1", Kind.END, T0 + 60), 99, None)]))
    assert [f.rule_id for f in sink.findings] == [MISSING_TAGS] and sink.findings[0].replayed
    progress = Progress.read(tmp_path / "progress" / "stateful-shardId-000000000000.json")
    assert progress.done and progress.reason == "end of the replayed input"


def test_the_end_marker_does_not_move_event_time_past_what_the_replay_saw(tmp_path):
    processor, sink = stateful(tmp_path)
    records = [kinesis_record(d, 1, None) for d in facts_of([run_instances("i-0bbbbbbbbbbbbbbbb", T0)])]
    processor.process_records(batch(records))
    end = markers.encode("r1", Kind.END, T0 + 5)  # before the grace ends
    processor.process_records(batch([kinesis_record(end, 2, None)]))
    assert sink.findings == [] and processor.progress.done


def test_a_fact_from_a_router_shard_behind_the_others_is_not_judged_late(tmp_path):
    """Live, a keyed shard's own largest event time minus the lateness is its watermark; in a replay one router
    shard can be an hour of event time ahead of another, so only the watermark markers move event time."""
    processor, sink = stateful(tmp_path)
    tagged, untagged = "i-0ddddddddddddddd1", "i-0ddddddddddddddd2"
    ahead = facts_of([run_instances("i-0eeeeeeeeeeeeeeee", T0 + 3600)])  # from a router shard far ahead
    launched = facts_of([run_instances(tagged, T0), run_instances(untagged, T0)])
    tags = facts_of(
        [
            complete_record(
                {
                    "eventSource": EC2,
                    "eventName": "CreateTags",
                    "eventTime": iso_time(T0 + 5),
                    "eventID": str(uuid.uuid4()),
                    "requestParameters": {
                        "resourcesSet": {"items": [{"resourceId": tagged}]},
                        "tagSet": {"items": [{"key": k, "value": "x"} for k in ("Owner", "CostCenter", "Environment")]},
                    },
                    "responseElements": {"_return": True},
                }
            )
        ]
    )
    seq = iter(range(1, 100))
    processor.process_records(batch([kinesis_record(d, next(seq), None) for d in launched + ahead]))
    processor.process_records(batch([kinesis_record(markers.encode("r1", Kind.WATERMARK, T0 + 3), next(seq), None)]))
    assert sink.findings == []
    processor.process_records(batch([kinesis_record(d, next(seq), None) for d in tags]))  # the slow shard's fact
    processor.process_records(batch([kinesis_record(markers.encode("r1", Kind.WATERMARK, T0 + 600), next(seq), None)]))
    assert [r for f in sink.findings for r in f.resources if untagged in r]  # watermark past the grace: fired
    assert not [r for f in sink.findings for r in f.resources if tagged in r]
    processor.process_records(batch([kinesis_record(markers.encode("r1", Kind.END, T0 + 3700), next(seq), None)]))
    assert len([f for f in sink.findings if f.rule_id == MISSING_TAGS]) == 2  # the one ahead: at the end


def test_markers_round_trip_and_facts_are_never_markers():
    assert markers.read(markers.encode("r1", Kind.END, 12.5), "r1") == Marker(Kind.END, 12.5)
    assert markers.read(markers.encode("r1", Kind.WATERMARK, 3.0), "r1") == Marker(Kind.WATERMARK, 3.0)
    assert markers.read(markers.encode("r1", Kind.END), "r1") == Marker(Kind.END, None)
    assert markers.read(markers.encode("r1", Kind.END, 1.0), "r2") is None
    assert markers.read(b'{"trailwarden_replay":"r1","kind":"other","time":1.0}', "r1") is None
    for data in [*facts_of([run_instances("i-0ccccccccccccccccc", T0)]), b"", b"{", b'{"trailwarden_replay"']:
        assert markers.read(data, "r1") is None


# --- what the replay command reads -----------------------------------------------------------------------


def test_progress_files_and_status(tmp_path):
    status = Status(T0 + 100, ["s0", "s1"], stateful_shards=["k0"])
    Progress(Stage.ROUTER, "s0", events=5, last_arrival=T0 + 40, last_event_time=T0 + 30).write(tmp_path)
    found = read_progress(tmp_path)
    status.router, status.stateful = found[Stage.ROUTER], found[Stage.STATEFUL]
    assert status.behind("s0") == pytest.approx(60) and status.behind("s1") is None
    assert status.low_mark() is None  # s1 has not said where it is
    Progress(Stage.ROUTER, "s1", last_event_time=T0 + 20).write(tmp_path)
    status.router = read_progress(tmp_path)[Stage.ROUTER]
    assert status.low_mark() == T0 + 20
    assert not status.router_done() and status.events() == 5
    Progress(Stage.ROUTER, "s1", done=True, last_event_time=T0 + 90).write(tmp_path)
    status.router = read_progress(tmp_path)[Stage.ROUTER]
    assert status.low_mark() == T0 + 30  # a done shard sends nothing more: it no longer holds event time back
    Progress(Stage.ROUTER, "s0", done=True, last_event_time=T0 + 30).write(tmp_path)
    found = read_progress(tmp_path)
    status.router = found[Stage.ROUTER]
    assert status.router_done() and status.event_time() == T0 + 90
    Progress(Stage.ROUTER, "parent", done=False).write(tmp_path)  # a shard that was not open at the start reports
    status.router = read_progress(tmp_path)[Stage.ROUTER]
    assert not status.router_done() and "parent" in status.shards(Stage.ROUTER)
    Progress(Stage.STATEFUL, "k0", done=True).write(tmp_path)
    status.stateful = read_progress(tmp_path)[Stage.STATEFUL]
    assert not status.stateful_done()  # not before the end markers were put
    status.marked = True
    assert status.stateful_done()
    line = progress_line(status, 75, 3)
    assert "router 2/3 shards done" in line and "stateful 1/1" in line and "3 findings" in line
    assert "s0 done" in line and "parent reading" in line


def test_progress_line_shows_how_far_each_shard_is_behind_the_end():
    status = Status(T0 + 600, ["shardId-000000000000", "shardId-000000000001"])
    status.router = {
        "shardId-000000000000": Progress(Stage.ROUTER, "shardId-000000000000", events=1200, last_arrival=T0 + 400)
    }
    line = progress_line(status, 12, 0)
    assert "#0 3m20s behind --to" in line and "#1 starting" in line and "1,200 events" in line


def test_findings_tail_reads_complete_lines_once(tmp_path):
    from pipeline.finding import Finding

    tail = FindingsTail(tmp_path)
    path = tmp_path / "findings" / "router-s0.jsonl"
    path.parent.mkdir(parents=True)
    finding = Finding(
        id="abc",
        rule_id="r",
        title="t",
        severity="low",
        attack=(),
        account="1",
        region="r",
        principal="p",
        source_ip="",
        user_agent="",
        resources=("x",),
        event_ids=("e",),
        event_time=T0,
        dedup_key="k",
        window=0,
    )
    line = finding.to_json() + b"\n"
    path.write_bytes(line + line[:10])
    assert [f.id for f in tail.read()] == ["abc"]
    assert tail.read() == []
    with open(path, "ab") as out:
        out.write(line[10:])
    assert [f.id for f in tail.read()] == ["abc"]


def test_display_redraws_on_a_terminal_and_writes_lines_otherwise():
    class Stream:
        def __init__(self, tty):
            self.text, self.tty = "", tty

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return self.tty

    tty = Stream(True)
    display = Display(stream=tty)
    display.update("one")
    display.clear()
    assert tty.text == "\rone\x1b[K\r\x1b[K"
    pipe = Stream(False)
    display = Display(stream=pipe, lines_every=PROGRESS_EVERY)
    display.update("one")
    display.update("two")  # within PROGRESS_EVERY: not written
    display.update("three", force=True)
    assert pipe.text == "one\nthree\n"
    quiet = Stream(True)
    Display(enabled=False, stream=quiet, lines_every=PROGRESS_EVERY).update("x")
    assert quiet.text == ""


def test_parse_when():
    now = 1_800_000_000.0
    assert parse_when("now", now=now) == now
    assert parse_when("90m", now=now) == now - 5400 and parse_when("2d", now=now) == now - 172_800
    assert parse_when("1700000000.5", now=now) == 1_700_000_000.5
    assert parse_when("2024-08-06T04:30Z", now=now) == 1_722_918_600.0
    assert parse_when("2024-08-06", end=True, now=now) == pytest.approx(1_722_988_800.0, abs=1e-3)
    assert parse_window("2h", None, now=now) == (now - 7200, now)
    with pytest.raises(ValueError):
        parse_window("1h", "2h", now=now)
    with pytest.raises(ValueError):
        parse_when("yesterday", now=now)


def test_cli_refuses_bad_input_before_starting_anything(capsys, tmp_path):
    from pipeline.cli import main

    assert main(["replay", "--from", "1h", "--to", "2h"]) == 2
    assert "before" in capsys.readouterr().err
    assert main(["replay", "--from", "1h", "--rules", "no-such-rule"]) == 2
    assert "unknown rule id" in capsys.readouterr().err
    assert main(["replay", "--from", "1h", "--config", str(tmp_path / "missing.toml")]) == 2
    # nothing listens there: the command says the stack is not up, and starts nothing
    assert main(["replay", "--from", "1h", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert "is the stack up" in capsys.readouterr().err


def test_base64_marker_survives_the_daemon_protocol():
    # the daemon hands record data to the processor base64-encoded; the marker is plain bytes either way
    data = markers.encode("r1", Kind.END, T0)
    assert markers.read(base64.b64decode(base64.b64encode(data)), "r1") == Marker(Kind.END, T0)
