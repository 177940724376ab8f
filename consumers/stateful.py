"""Stage 2 record processor: the KCL application over the keyed stream (docs/architecture.md).

Run by the MultiLangDaemon as `python -m consumers.stateful`, live or, with TRAILWARDEN_REPLAY_RUN set, as a
replay's (`consumers.wiring` picks the strategies).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from amazon_kclpy.v3 import processor

from consumers import kcl, markers, shards
from consumers.metrics import (
    DEAD_LETTERS,
    RECORDS_IN,
    SNAPSHOT_BYTES,
    SNAPSHOT_MILLIS,
    TRACKED_KEYS,
    WATERMARK_LAG,
    StageMetrics,
)
from consumers.progress import Progress
from consumers.publishing import FindingsOut
from consumers.reports import LogReport, Report
from consumers.sinks.deadletter import DeadLetterSink
from consumers.snapshots import S3SnapshotStore, SnapshotStore, merge
from consumers.watermarks import RouterProgress, Watermark
from consumers.wiring import Wiring
from pipeline.decode import DeadLetter, DecodeStats
from pipeline.finding import Finding
from pipeline.stages import Stage
from pipeline.stateful import snapshot
from pipeline.stateful.facts import Fact
from pipeline.stateful.state import KeyedState

log = logging.getLogger("consumers.stateful")


class StatefulProcessor(processor.RecordProcessorBase):
    """initialize: restore the shard's snapshot, or merge the hand-offs of its parents after a reshard.
    process_records: apply the facts and move event time as the watermark strategy says (timers fire on
    empty batches too when it moves with the wall clock), publish the findings until acknowledged, save the
    snapshot, then checkpoint. shard_ended: hand each child the parent's keys in its hash range, then checkpoint.

    A snapshot is always saved before the checkpoint it goes with; facts read again after a crash are
    recognised by their event ids (kept in the snapshot) and applied at most once."""

    def __init__(
        self,
        make_state: Callable[[], KeyedState],
        findings: FindingsOut,
        store: SnapshotStore,
        dead_letters: DeadLetterSink | None = None,
        *,
        watermark: Watermark | None = None,
        report: Report | None = None,
        kinesis: Any = None,
        stream: str = "keyed",
        clock: Callable[[], float] = time.time,
        snapshot_interval: float = 0.0,
        metrics: StageMetrics | None = None,
    ) -> None:
        self.make_state = make_state
        self.findings = findings
        self.store = store
        self.dead_letters = dead_letters
        self.watermark = watermark or RouterProgress(lambda: [])
        self.report = report or LogReport()
        self.kinesis = kinesis
        self.stream = stream
        self.clock = clock
        self.snapshot_interval = snapshot_interval
        self.metrics = metrics or StageMetrics.off()
        self.state = self._new_state()
        self.shard_id = ""
        self.decode_stats = DecodeStats()
        self.progress = Progress(Stage.STATEFUL, "")
        self._last_save = -float("inf")
        self._unsaved = False  # facts taken since the last snapshot

    def _new_state(self) -> KeyedState:
        state = self.make_state()
        self.watermark.prepare(state)
        return state

    # --- lifecycle ------------------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = self.progress.shard = initialize_input.shard_id
        self.state = self._new_state()
        self._restore()
        self.findings.open(Stage.STATEFUL, self.shard_id)
        self.report.open(self.progress)

    def _restore(self) -> None:
        data = kcl.until_done(lambda: self.store.load(self.shard_id), f"{self.shard_id}: loading snapshot")
        try:
            if data is not None:
                snapshot.load_into(self.state, data)
                log.info("stateful %s: restored %d keys", self.shard_id, self.state.keys())
                return
            handoffs = kcl.until_done(lambda: self.store.handoffs(self.shard_id), f"{self.shard_id}: hand-offs")
            merged = merge(handoffs)
            if merged is not None:
                snapshot.load_into(self.state, merged)
                log.info(
                    "stateful %s: started from %d parent hand-off(s), %d keys",
                    self.shard_id,
                    len(handoffs),
                    self.state.keys(),
                )
        except (snapshot.SnapshotError, ValueError, TypeError, KeyError) as exc:
            # An unreadable snapshot must not block the shard forever; its state is lost, and said so.
            log.error("stateful %s: snapshot unreadable (%s): starting with empty state", self.shard_id, exc)
            self.state = self._new_state()

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        progress = self.progress
        if progress.done:
            return
        if not (records or self.watermark.idle_batches):
            if self.findings.digests_due():
                kcl.until_done(lambda: self.findings.publish([]), f"{self.shard_id}: publishing digests")
            return
        now = self.clock()
        findings: list[Finding] = []
        ended = False
        if records:
            findings, ended = self._apply(records, now)
        findings += self.watermark.after_batch(self.state, now)
        self._log_errors()
        if findings or self.findings.digests_due():
            fresh = kcl.until_done(lambda: self.findings.publish(findings), f"{self.shard_id}: publishing findings")
            self.metrics.published(len(findings), fresh)
            progress.findings += len(findings)
            progress.published, progress.already_alerted = self.findings.stats.published, self.findings.stats.suppressed
        if records and (not self._unsaved or now - self._last_save >= self.snapshot_interval):
            if self._unsaved or findings:
                self.save()
            # A batch of markers only is checkpointed without a snapshot: the saved state already holds
            # everything before them, and markers read again after a crash only tell progress again.
            last = records[-1]
            kcl.checkpoint(process_records_input.checkpointer, last.sequence_number, last.sub_sequence_number)
        elif findings:
            self.save()  # timers fired: the state changed without new records
        if self.state.max_time > float("-inf"):
            progress.last_event_time = self.state.max_time
        if ended:
            self.report.finish(progress, "end of the replayed input")
        else:
            self.report.update(progress)
        self._measure(now)

    def _measure(self, now: float) -> None:
        metrics = self.metrics
        metrics.rule_errors(self.state.stats.rule_errors)
        metrics.gauge(TRACKED_KEYS, self.state.keys())
        if self.state.watermark > float("-inf"):
            metrics.gauge(WATERMARK_LAG, round(max(0.0, now - self.state.watermark), 3), ("ShardId", self.shard_id))
        metrics.after_batch()

    def _apply(self, records: Sequence[Any], now: float) -> tuple[list[Finding], bool]:
        """The batch's facts to the state, in order, each run of facts before the marker that follows it;
        undecodable records go to the dead letters. Returns the findings now due, and whether an END came."""
        findings: list[Finding] = []
        facts: list[Fact] = []
        dead: list[DeadLetter] = []
        ended = False
        for record in records:
            try:
                data = record.binary_data
                marker = self.watermark.marker(data)
                if marker is None:
                    self.progress.records += 1
                    facts.append(Fact.from_bytes(data))
                    continue
            except Exception as exc:
                origin = f"{self.stream}/{self.shard_id}/{record.sequence_number}"
                dead.append(self.decode_stats.dead("not a keyed fact", origin, b"", detail=str(exc)))
                continue
            findings += self._take(facts, now)
            facts = []
            findings += self.watermark.at_marker(self.state, marker)
            ended = ended or marker.kind is markers.Kind.END
        findings += self._take(facts, now)
        sink = self.dead_letters
        if dead and sink is not None:
            batch = f"{self.shard_id}/{records[0].sequence_number}"
            kcl.until_done(lambda: sink.deliver(dead, batch), f"{self.shard_id}: dead letters")
        self.progress.dead_letters += len(dead)
        self.metrics.add(DEAD_LETTERS, len(dead))
        return findings, ended

    def _take(self, facts: list[Fact], now: float) -> list[Finding]:
        self.progress.facts += len(facts)
        self._unsaved = self._unsaved or bool(facts)
        self.metrics.add(RECORDS_IN, len(facts))
        return self.watermark.facts(self.state, facts, now)

    def _log_errors(self) -> None:
        errors = self.state.stats.last_errors
        if errors:
            for line in errors:
                log.warning("stateful %s: rule error: %s", self.shard_id, line)
            errors.clear()

    def save(self) -> None:
        started = time.perf_counter()
        data = snapshot.dumps(self.state)
        kcl.until_done(lambda: self.store.save(self.shard_id, data), f"{self.shard_id}: saving snapshot")
        self.metrics.sample(SNAPSHOT_MILLIS, round((time.perf_counter() - started) * 1000, 3))
        self.metrics.sample(SNAPSHOT_BYTES, len(data))
        self._last_save = self.clock()
        self._unsaved = False
        self.progress.snapshots += 1

    def lease_lost(self, lease_lost_input: Any) -> None:
        log.info("stateful lost the lease of %s", self.shard_id)
        self.metrics.flush()

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Hand each child the parent's keys in its hash range, then checkpoint (which lets children start)."""
        if self.kinesis is not None:
            children = kcl.until_done(
                lambda: shards.children(self.kinesis, self.stream, self.shard_id),
                f"{self.shard_id}: listing child shards",
            )
            for child in children:
                hashes = child.get("HashKeyRange", {})
                data = snapshot.split_for_child(
                    self.state, int(hashes.get("StartingHashKey", 0)), int(hashes.get("EndingHashKey", 0))
                )
                kcl.until_done(
                    functools.partial(self.store.save_handoff, child["ShardId"], self.shard_id, data),
                    f"{self.shard_id}: hand-off to {child.get('ShardId')}",
                )
            log.info("stateful %s ended: state handed to %s", self.shard_id, [c.get("ShardId") for c in children])
        self.save()
        kcl.checkpoint(shard_ended_input.checkpointer)
        self.report.finish(self.progress, "shard ended")
        self.metrics.flush()

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        self.save()
        kcl.checkpoint(shutdown_requested_input.checkpointer)
        self.metrics.flush()


def build(wiring: Wiring | None = None) -> StatefulProcessor:
    wiring = wiring or Wiring.from_settings()
    resources, target = wiring.resources, wiring.target
    return StatefulProcessor(
        wiring.pack.new_state,
        wiring.findings_out(),
        S3SnapshotStore(target.client("s3"), resources["StateBucketName"], resources.app(Stage.STATEFUL)),
        wiring.dead_letters(Stage.STATEFUL),
        watermark=wiring.watermark(),  # live: bounded by the routers' progress on the trail stream
        report=wiring.report(Stage.STATEFUL),
        kinesis=target.client("kinesis"),
        stream=resources.stream(Stage.STATEFUL),
        snapshot_interval=wiring.settings.snapshot_seconds,
        metrics=wiring.metrics(Stage.STATEFUL),
    )


def main() -> None:
    kcl.run_processor(build)


if __name__ == "__main__":
    main()
