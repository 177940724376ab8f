"""The publisher and the finding lifecycle: a resolution is delivered once beside its alert, repeats of an
alerted finding become one digest per interval with a total every process shares (the dedupe table), and
the alert policy sends a resolution or digest where it sends the finding."""

from __future__ import annotations

import pytest

from consumers.sinks.dedupe import MemoryDedupe, ReadOnlyDedupe
from consumers.sinks.publisher import Publisher
from consumers.sinks.retry import SinkUnavailable
from consumers.sinks.sns import entry, subject
from pipeline.alerting import AlertPolicy
from pipeline.finding import OPEN, RESOLVED
from tests.unit.consumers.sinks.test_sinks import aws, dedupe_table, make_finding  # noqa: F401  (aws is a fixture)


class Sink:
    def __init__(self, name: str, fail_times: int = 0) -> None:
        self.name = name
        self.fail_times = fail_times
        self.got: list[tuple[str, str, int]] = []

    def deliver(self, findings) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise SinkUnavailable(f"{self.name} down")
        self.got.extend((f.id, f.status, f.occurrences) for f in findings)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publisher(sinks, dedupe=None, interval: str = "15m", clock=None) -> Publisher:
    return Publisher(
        sinks,
        MemoryDedupe() if dedupe is None else dedupe,
        policy=AlertPolicy(digest_interval=AlertPolicy.from_config(_config(interval)).digest_interval),
        clock=clock or Clock(),
    )


def _config(interval: str):
    from pipeline.config import Config

    return Config.from_dict({"alerts": {"digest_interval": interval}})


def test_a_resolution_is_delivered_once_after_its_alert_with_the_same_id():
    sink = Sink("sns")
    pub = publisher([sink])
    alert = make_finding(1)
    resolution = alert.resolved(alert.event_time + 60, "tags added")
    assert pub.publish([alert]) == [alert]
    assert pub.publish([resolution, alert]) == [resolution]
    assert pub.publish([resolution]) == []
    assert sink.got == [(alert.id, OPEN, 1), (alert.id, RESOLVED, 1)]
    assert pub.dedupe.seen([alert.id, f"{alert.id}:resolved"]) == {alert.id, f"{alert.id}:resolved"}
    assert pub.stats.resolved == 1


def test_repeats_are_counted_and_sent_as_one_digest_per_interval_the_first_alert_at_once():
    sink, clock = Sink("sns"), Clock()
    pub = publisher([sink], clock=clock)
    alert = make_finding(1)
    pub.publish([alert, alert])  # the first at once, a repeat in the same batch counted
    pub.publish([alert])
    pub.publish([make_finding(1, event_time=alert.event_time + 30)])
    assert sink.got == [(alert.id, OPEN, 1)]
    assert not pub.digests_due()
    clock.now += 900
    assert pub.digests_due()
    sent = pub.publish([])
    assert [(f.id, f.status, f.occurrences) for f in sent] == [(alert.id, OPEN, 4)]
    assert sent[0].updated_at == alert.event_time + 30
    assert sink.got[-1] == (alert.id, OPEN, 4)
    clock.now += 900
    assert pub.publish([]) == [] and not pub.digests_due()  # nothing repeated since
    pub.publish([alert])
    clock.now += 900
    assert [f.occurrences for f in pub.publish([])] == [5]


def test_digests_off_drop_repeats_as_before():
    sink, clock = Sink("sns"), Clock()
    pub = publisher([sink], interval="0", clock=clock)
    alert = make_finding(1)
    for _ in range(3):
        pub.publish([alert])
        clock.now += 1000
    assert pub.publish([]) == [] and sink.got == [(alert.id, OPEN, 1)]


def test_repeats_of_more_ids_than_the_bound_are_dropped_and_counted(monkeypatch):
    monkeypatch.setattr("consumers.sinks.publisher.MAX_PENDING_DIGESTS", 2)
    sink, clock = Sink("sns"), Clock()
    pub = publisher([sink], clock=clock)
    alerts = [make_finding(i) for i in range(3)]
    pub.publish(alerts)
    pub.publish(alerts)
    clock.now += 900
    assert sorted(f.occurrences for f in pub.publish([])) == [2, 2]
    assert pub.stats.repeats_dropped == 1


def test_a_resolution_drops_its_pending_digest():
    sink, clock = Sink("sns"), Clock()
    pub = publisher([sink], clock=clock)
    alert = make_finding(1)
    pub.publish([alert])
    pub.publish([alert])
    pub.publish([alert.resolved(alert.event_time + 10, "burst stopped")])
    clock.now += 900
    assert pub.publish([]) == []
    assert sink.got == [(alert.id, OPEN, 1), (alert.id, RESOLVED, 1)]


def test_a_digest_whose_delivery_failed_is_resent_not_counted_again():
    sns, firehose, clock = Sink("sns"), Sink("firehose"), Clock()
    pub = publisher([sns, firehose], clock=clock)
    alert = make_finding(1)
    pub.publish([alert])
    pub.publish([alert, alert])  # two repeats
    clock.now += 900
    firehose.fail_times = 1
    with pytest.raises(SinkUnavailable):
        pub.publish([])
    pub.publish([])
    assert sns.got == [(alert.id, OPEN, 1), (alert.id, OPEN, 3)]
    assert firehose.got == [(alert.id, OPEN, 1), (alert.id, OPEN, 3)]


def test_two_processes_share_the_total_in_the_dedupe_table(aws):  # noqa: F811
    table, clock = dedupe_table(), Clock()
    a_sink, b_sink = Sink("sns"), Sink("sns")
    a, b = publisher([a_sink], table, clock=clock), publisher([b_sink], table, clock=clock)
    alert = make_finding(1)
    a.publish([alert])
    a.publish([alert, alert])
    b.publish([alert])  # already alerted by a: a repeat here
    clock.now += 900
    a.publish([])
    b.publish([])
    assert a_sink.got == [(alert.id, OPEN, 1), (alert.id, OPEN, 3)]
    assert b_sink.got == [(alert.id, OPEN, 4)]
    assert ReadOnlyDedupe(table).count(alert.id, 5) is None  # a read-only replay counts nothing


@pytest.mark.parametrize(("severity", "alerted"), [("low", False), ("high", True)])
def test_a_resolution_and_a_digest_go_where_their_finding_goes(severity, alerted):
    sns, firehose, clock = Sink("sns"), Sink("firehose"), Clock()
    pub = publisher([sns, firehose], clock=clock)
    alert = make_finding(1, severity=severity)
    pub.publish([alert, alert])
    clock.now += 900
    pub.publish([alert.resolved(alert.event_time + 1, "tags added")])  # the digest is due: it goes first
    lifecycle = [(alert.id, OPEN, 1), (alert.id, RESOLVED, 1)]
    assert firehose.got == lifecycle
    assert sns.got == (lifecycle if alerted else [])


def test_a_fifo_topic_deduplicates_a_resolution_and_a_digest_apart_from_the_alert():
    alert = make_finding(1)
    ids = {
        entry(f, 0, fifo=True)["MessageDeduplicationId"]
        for f in (alert, alert.resolved(alert.event_time + 1, "tags added"), alert.digest(3, alert.event_time))
    }
    assert len(ids) == 3
    assert entry(alert, 0, fifo=True)["MessageAttributes"]["status"]["StringValue"] == "open"
    assert [subject(f) for f in (alert, alert.resolved(1.0, "x"), alert.digest(3, 1.0))] == [
        "[high] Title 1",
        "[high] [resolved] Title 1",
        "[high] [x3] Title 1",
    ]
