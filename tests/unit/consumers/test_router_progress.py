"""Stage 2 moves event time only as far as stage 1 has provably read (fast): the frontier of the routers'
progress markers, the live watermark strategy that uses it, and the router side that puts the markers."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from consumers import markers
from consumers.frontier import Frontier
from consumers.reports import KeyedProgress
from consumers.router import read_to
from consumers.sinks.kinesis import KinesisWriter
from consumers.watermarks import RouterProgress
from pipeline.config import Config
from pipeline.event import Event
from pipeline.finding import iso_time
from pipeline.pack import bind_pack
from pipeline.ruletest import complete_record
from pipeline.stages import RouterStage
from pipeline.stateful.facts import Fact
from pipeline.stateful.state import KeyedState

T0 = 1_790_000_000.0  # in the past: the router stamps wall-clock times
EC2 = "ec2.amazonaws.com"
RULE = "ec2-instance-missing-required-tags"
GRACE = 15.0
CONFIG = Config.from_dict(
    {"engine": {"allowed_lateness": "2s", "idle_after": "2s"}, "rules": {RULE: {"grace": f"{GRACE:g}s"}}}
)
HALF = 2**127


def shard(sid: str, *parents: str, closed: bool = False, start: int = 0, end: int = 2**128 - 1) -> dict:
    sequences = {"StartingSequenceNumber": "1", **({"EndingSequenceNumber": "9"} if closed else {})}
    entry = {
        "ShardId": sid,
        "HashKeyRange": {"StartingHashKey": str(start), "EndingHashKey": str(end)},
        "SequenceNumberRange": sequences,
    }
    if parents:
        entry["ParentShardId"] = parents[0]
    if len(parents) > 1:
        entry["AdjacentParentShardId"] = parents[1]
    return entry


def progress(sid: str, read: float, arrival: float | None = None, time: float | None = None) -> markers.Progress:
    return markers.Progress(sid, read, arrival, time)


# --- the marker ------------------------------------------------------------------------------------


def test_progress_marker_round_trip_and_never_a_fact_or_a_replay_marker():
    p = progress("shardId-000000000001", T0 + 1.5, T0 + 1.0, T0 - 3.0)
    data = markers.encode_progress(p)
    assert markers.read_progress(data) == p and markers.read_progress(data).kind is markers.Kind.PROGRESS
    assert markers.read(data, "run") is None
    assert markers.read_progress(markers.encode("run", markers.Kind.END, T0)) is None
    fact = Fact(RULE, "k", "e", T0, "start")
    assert markers.read_progress(fact.to_bytes()) is None
    assert markers.read_progress(b'{"trailwarden_progress":"s","read_to":"soon"}') is None
    assert markers.read_progress(b'{"trailwarden_progress":"s","read_to":NaN}') is None


# --- the frontier ----------------------------------------------------------------------------------


def test_frontier_is_unknown_until_every_open_trail_shard_reported_then_the_smallest():
    f = Frontier()
    assert f.read_to() is None  # nothing known: nothing proven
    f.listed([shard("a"), shard("b")])
    f.report(progress("a", T0 + 10))
    assert f.read_to() is None  # b's router is down or not started
    f.report(progress("b", T0 + 4))
    assert f.read_to() == T0 + 4
    f.report(progress("b", T0 + 3))  # an older marker read again: progress never moves back
    assert f.read_to() == T0 + 4


def test_a_closed_parent_counts_until_a_child_reports_and_an_unreported_child_holds_back():
    f = Frontier()
    f.listed([shard("p")])
    f.report(progress("p", T0 + 5))
    assert f.read_to() == T0 + 5
    # the trail is split: p closed, children c1 and c2 open
    f.listed([shard("p", closed=True), shard("c1", "p", end=HALF - 1), shard("c2", "p", start=HALF)])
    assert f.read_to() is None  # the children have not reported
    f.report(progress("c1", T0 + 20))
    assert f.live() == ["c1", "c2"] and f.read_to() is None  # p dropped out; c2 not reported
    f.report(progress("c2", T0 + 18))
    assert f.read_to() == T0 + 18
    # merged back: m's parents drop out once m reports
    f.listed(
        [shard("p", closed=True), shard("c1", "p", closed=True), shard("c2", "p", closed=True), shard("m", "c1", "c2")]
    )
    assert f.read_to() is None
    f.report(progress("m", T0 + 30))
    assert f.live() == ["m"] and f.read_to() == T0 + 30


def test_a_report_from_a_shard_not_listed_counts_and_asks_for_a_listing():
    f = Frontier()
    f.listed([shard("a")])
    f.report(progress("a", T0 + 9))
    f.report(progress("new", T0 + 2))
    assert f.unknown and f.read_to() == T0 + 2
    f.listed([shard("a", closed=True), shard("new", "a")])
    assert not f.unknown and f.read_to() == T0 + 2


def test_event_time_reached_counts_only_records_that_arrived_before_the_frontier():
    f = Frontier()
    f.listed([shard("a"), shard("b")])
    f.report(progress("a", T0 + 10, arrival=T0 + 9, time=T0 + 600))  # a is at the tip, far ahead in event time
    f.report(progress("b", T0 + 2, arrival=T0 + 2, time=T0 + 1))  # b is behind: read up to T0 + 2
    assert f.event_time() == T0 + 1  # a's record arrived after what b has read: b's backlog may be older
    f.report(progress("b", T0 + 10, arrival=T0 + 9.5, time=T0 + 610))
    assert f.event_time() == T0 + 610
    f.report(progress("b", T0 + 11, arrival=T0 + 10.5, time=T0 + 10.5 + 3600))  # a clock an hour ahead
    f.report(progress("a", T0 + 11))
    assert f.event_time() == T0 + 610


# --- the live watermark strategy -------------------------------------------------------------------


STAGE1 = RouterStage(bind_pack(CONFIG))


def facts_of(record: dict) -> list[Fact]:
    event = Event.from_record(complete_record(record))
    assert isinstance(event, Event)
    return [f for f in STAGE1.process(event)[1] if f.rule == RULE]


def start_fact(iid: str, t: float) -> Fact:
    """The fact stage 1 makes of an untagged launch."""
    [fact] = facts_of(
        {
            "eventSource": EC2,
            "eventName": "RunInstances",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-1", "minCount": 1, "maxCount": 1}]}},
            "responseElements": {"instancesSet": {"items": [{"instanceId": iid}]}},
        }
    )
    return fact


def tags_fact(iid: str, t: float) -> Fact:
    """The fact stage 1 makes of the CreateTags that adds every required tag."""
    [fact] = facts_of(
        {
            "eventSource": EC2,
            "eventName": "CreateTags",
            "eventTime": iso_time(t),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {
                "resourcesSet": {"items": [{"resourceId": iid}]},
                "tagSet": {"items": [{"key": k, "value": "x"} for k in ("Owner", "CostCenter", "Environment")]},
            },
            "responseElements": {"_return": True},
        }
    )
    return fact


class Shard2:
    """One stage-2 shard's state driven by the live strategy, as the processor drives it."""

    def __init__(self, trail: list[dict]) -> None:
        self.trail = trail
        self.strategy = RouterProgress(lambda: self.trail)
        self.state: KeyedState = bind_pack(CONFIG).new_state()
        self.strategy.prepare(self.state)
        self.found: list = []

    def batch(self, now: float, facts: list[Fact] = (), reports: list[markers.Progress] = ()) -> list:
        out = self.strategy.facts(self.state, list(facts), now)
        for report in reports:
            out += self.strategy.at_marker(self.state, report)
        out += self.strategy.after_batch(self.state, now)
        self.found += out
        return out


def test_no_timer_fires_while_a_router_is_down_and_the_tags_come_once_it_resumes():
    s = Shard2([shard("a")])
    s.batch(T0, [start_fact("i-1", T0)], [progress("a", T0 + 0.5, T0, T0)])
    # the router dies with the CreateTags still in the trail stream; the wall clock runs far past the grace
    for t in range(1, 120):
        assert s.batch(T0 + t) == []
    # it resumes, reads the tags, reports: no finding, then or ever
    s.batch(T0 + 121, [tags_fact("i-1", T0 + 1)], [progress("a", T0 + 121, T0 + 1, T0 + 1)])
    for t in range(122, 200):
        s.batch(T0 + t, reports=[progress("a", T0 + t)])
    assert s.found == [] and s.state.stats.late == 0


def test_an_idle_healthy_trail_moves_the_clock_and_a_real_lapse_fires_on_time():
    s = Shard2([shard("a"), shard("b")])
    s.batch(T0, [start_fact("i-2", T0)], [progress("a", T0 + 0.5, T0, T0), progress("b", T0 + 0.5)])
    fired_at = None
    for t in range(1, 40):
        if s.batch(T0 + t, reports=[progress("a", T0 + t), progress("b", T0 + t)]):
            fired_at = t
            break
    assert fired_at is not None and GRACE + 2 <= fired_at <= GRACE + 3  # grace + allowed lateness
    assert [f.rule_id for f in s.found] == [RULE]


def test_one_trail_shard_down_holds_the_clock_even_if_the_other_runs():
    s = Shard2([shard("a"), shard("b")])
    s.batch(T0, [start_fact("i-3", T0)], [progress("a", T0 + 0.5, T0, T0), progress("b", T0 + 0.5)])
    for t in range(1, 60):
        assert s.batch(T0 + t, reports=[progress("a", T0 + t)]) == []  # b's router is down
    s.batch(T0 + 60, [tags_fact("i-3", T0 + 1)], [progress("b", T0 + 60, T0 + 1, T0 + 1)])
    s.batch(T0 + 61, reports=[progress("a", T0 + 61), progress("b", T0 + 61)])
    assert s.found == []


def test_a_router_shard_behind_in_event_time_holds_the_watermark_so_its_facts_are_not_late():
    """Cross-shard skew: shard a races through a scenario played fast (an hour of event time in seconds), shard
    b is slow; b's CreateTags for an instance launched earlier must still be applied before its timer."""
    w = T0 + 7200  # the wall clock: the scenario's event times are behind it
    s = Shard2([shard("a"), shard("b")])
    s.batch(w, [start_fact("i-4", T0)], [progress("a", w + 1, w + 1, T0), progress("b", w + 1)])
    # a reads records that arrived until w+3 with event times up to an hour later; b has read until w+1.5
    s.batch(
        w + 3,
        [start_fact("i-5", T0 + 3600)],
        [progress("a", w + 3, w + 3, T0 + 3600), progress("b", w + 1.5, w + 1.5, T0 + 2)],
    )
    assert s.state.watermark < T0 + GRACE
    s.batch(w + 4, [tags_fact("i-4", T0 + 5)], [progress("b", w + 4, w + 3.5, T0 + 5)])
    assert s.state.stats.late == 0 and s.found == []
    s.batch(w + 5, reports=[progress("a", w + 5), progress("b", w + 5)])
    assert s.state.watermark >= T0 + 3600 - 2  # caught up: both shards read past a's records
    assert s.found == []  # i-5's grace runs from T0 + 3600


def test_a_restarted_processor_waits_for_every_trail_shard_and_idles_from_its_start():
    s = Shard2([shard("a"), shard("b")])
    s.batch(T0, [start_fact("i-6", T0)], [progress("a", T0 + 0.5, T0, T0), progress("b", T0 + 0.5)])
    again = Shard2([shard("a"), shard("b")])
    again.state = s.state  # as restored from the snapshot
    again.strategy.prepare(again.state)
    assert again.batch(T0 + 60, reports=[progress("a", T0 + 60)]) == []
    # without facts the idle clock runs from the restart (the snapshot has no wall clock): grace + lateness on
    fired = [t for t in range(61, 100) if again.batch(T0 + t, reports=[progress("a", T0 + t), progress("b", T0 + t)])]
    assert fired[:1] == [60 + GRACE + 2]


def test_while_listing_fails_the_shards_that_reported_still_count():
    def broken():
        raise RuntimeError("throttled")

    strategy = RouterProgress(broken)
    state = bind_pack(CONFIG).new_state()
    strategy.prepare(state)
    strategy.facts(state, [start_fact("i-7", T0)], T0)
    strategy.at_marker(state, progress("a", T0 + 0.5, T0, T0))
    # a reported shard not listed still counts: the clock moves by what it proves
    assert [f.rule_id for f in strategy.after_batch(state, T0 + 60) + strategy.after_batch(state, T0 + 60)] == []
    strategy.at_marker(state, progress("a", T0 + 60))
    assert [f.rule_id for f in strategy.after_batch(state, T0 + 61)] == [RULE]


# --- the router side -------------------------------------------------------------------------------


def rec(arrival: float) -> SimpleNamespace:
    return SimpleNamespace(timestamp_millis=int(arrival * 1000))


def test_read_to_at_the_tip_is_the_handing_time_behind_it_the_last_arrival():
    assert read_to(None, [], None, T0 + 5) == T0 + 5  # an empty read is the tip
    assert read_to(None, [rec(T0 + 1), rec(T0 + 2)], 0, T0 + 5) == T0 + 5
    assert read_to(None, [rec(T0 + 1), rec(T0 + 2)], 60_000, T0 + 5) == T0 + 2
    assert read_to(T0 + 5, [rec(T0 + 1)], 60_000, T0 + 6) == T0 + 5  # never back
    assert read_to(T0 + 5, [SimpleNamespace()], 60_000, T0 + 6) == T0 + 5


class FakeKinesis:
    def __init__(self, listings: list[list[dict]], landing: list[list[str]]) -> None:
        self.listings, self.landing, self.puts = listings, landing, []

    def list_shards(self, **kwargs):
        return {"Shards": self.listings.pop(0)}

    def put_records(self, StreamName, Records):
        self.puts.append(Records)
        ids = self.landing.pop(0)
        return {"FailedRecordCount": 0, "Records": [{"ShardId": i, "SequenceNumber": "1"} for i in ids]}


def test_a_marker_goes_to_every_open_keyed_shard_and_a_stale_list_is_refreshed():
    two = [shard("k0", end=HALF - 1), shard("k1", start=HALF)]
    split = [
        shard("k0", closed=True, end=HALF - 1),
        shard("k1", start=HALF),
        shard("k2", "k0", end=HALF // 2 - 1),
        shard("k3", "k0", start=HALF // 2, end=HALF - 1),
    ]
    client = FakeKinesis([two, split], [["k0", "k1"], ["k2", "k1"], ["k1", "k2", "k3"]])
    writer = KinesisWriter(client, "keyed")
    writer.put_on_each_shard(b"m1", "progress-a")
    assert [e["ExplicitHashKey"] for e in client.puts[0]] == ["0", str(HALF)]
    writer.put_on_each_shard(b"m2", "progress-a")  # k0 was split: its start now lands on k2 only
    assert len(client.puts) == 3 and {e["ExplicitHashKey"] for e in client.puts[2]} == {"0", str(HALF // 2), str(HALF)}


def test_keyed_progress_marks_after_the_batch_at_most_every_second_and_at_the_end(monkeypatch):
    class Writer:
        def __init__(self):
            self.data: list[bytes] = []
            self.fail = False

        def put_on_each_shard(self, data, key):
            if self.fail:
                raise RuntimeError("throttled")
            self.data.append(data)

    clock = [100.0]
    monkeypatch.setattr("consumers.reports.time.monotonic", lambda: clock[0])
    from consumers.progress import Progress
    from pipeline.stages import Stage

    writer = Writer()
    report = KeyedProgress(writer)
    p = Progress(Stage.ROUTER, "shardId-1")
    report.update(p)
    assert writer.data == []  # nothing read yet: nothing to claim
    p.read_to, p.last_arrival, p.last_event_time = T0, T0 - 1, T0 - 2
    report.update(p)
    clock[0] += 0.5
    report.update(p)
    assert [markers.read_progress(d) for d in writer.data] == [progress("shardId-1", T0, T0 - 1, T0 - 2)]
    writer.fail, clock[0] = True, clock[0] + 1
    report.update(p)
    writer.fail = False
    report.update(p)  # a marker that failed is tried at the next batch
    report.finish(p, "shard ended")
    assert len(writer.data) == 3 and p.done


def test_the_router_marks_after_its_facts():
    """RouterProcessor with the live report: the progress marker is put after the batch's facts."""
    from consumers.publishing import Alerts
    from consumers.router import RouterProcessor
    from consumers.sinks import MemoryDedupe, Publisher
    from pipeline.encode import cwl_records

    log: list = []

    class Out:
        name = "sink"

        def deliver(self, findings):
            log.append(("findings", len(findings)))

        def put_facts(self, facts):
            log.append(("facts", len(facts)))

        def put_on_each_shard(self, data, key):
            log.append(("marker", markers.read_progress(data)))

    out = Out()
    proc = RouterProcessor(
        RouterStage(bind_pack(CONFIG)), Alerts(Publisher([out], MemoryDedupe())), out, out, report=KeyedProgress(out)
    )
    proc.initialize(SimpleNamespace(shard_id="shardId-000000000001", sequence_number="TRIM_HORIZON"))
    launch = complete_record(
        {
            "eventSource": EC2,
            "eventName": "RunInstances",
            "eventTime": iso_time(T0),
            "eventID": str(uuid.uuid4()),
            "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-1", "minCount": 1, "maxCount": 1}]}},
            "responseElements": {"instancesSet": {"items": [{"instanceId": "i-0000000000000008"}]}},
        }
    )
    records = [
        SimpleNamespace(
            binary_data=d, sequence_number=str(10 + i), sub_sequence_number=0, timestamp_millis=int(T0 * 1000)
        )
        for i, d in enumerate(cwl_records([launch]))
    ]
    proc.process_records(
        SimpleNamespace(
            records=records, checkpointer=SimpleNamespace(checkpoint=lambda *a: None), millis_behind_latest=0
        )
    )
    kinds = [entry[0] for entry in log]
    assert kinds.index("facts") < kinds.index("marker")
    mark = log[kinds.index("marker")][1]
    assert mark.shard == "shardId-000000000001" and mark.arrival == T0 and mark.time == T0 and mark.read_to > T0
