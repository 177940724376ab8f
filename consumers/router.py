"""Stage 1 record processor: the KCL application over the trail stream (docs/architecture.md).

Run by the MultiLangDaemon as `python -m consumers.router`, live or, with TRAILWARDEN_REPLAY_RUN set, as a
replay's (`consumers.wiring` picks the strategies).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from amazon_kclpy.v3 import processor

from consumers import kcl
from consumers.intake import AllRecords, Intake, at_tip
from consumers.metrics import DEAD_LETTERS, EVENTS_IN, KEYED_FACTS_OUT, RECORDS_IN, WATERMARK_LAG, StageMetrics
from consumers.progress import Progress
from consumers.publishing import FindingsOut
from consumers.reports import LogReport, Report
from consumers.sinks.deadletter import DeadLetterSink
from consumers.sinks.kinesis import KinesisWriter
from consumers.wiring import Wiring
from pipeline.decode import DeadLetter, DecodeStats, iter_decode
from pipeline.finding import Finding
from pipeline.stages import RouterStage, Stage
from pipeline.stateful.facts import Fact

log = logging.getLogger("consumers.router")


class FactWriter(Protocol):
    def put_facts(self, facts: Sequence[Fact]) -> None: ...


class RouterProcessor(processor.RecordProcessorBase):
    """Per batch: decode the records the intake takes (dead letters kept with their reason and origin
    `<stream>/<shard>/<sequence number>`), run each event through the `RouterStage`, then deliver the findings,
    the facts and the dead letters, each until acknowledged; only then checkpoint at the last record taken."""

    def __init__(
        self,
        stage: RouterStage,
        findings: FindingsOut,
        facts: FactWriter,
        dead_letters: DeadLetterSink,
        *,
        intake: Intake | None = None,
        report: Report | None = None,
        stream: str = "trail",
        metrics: StageMetrics | None = None,
    ) -> None:
        self.stage = stage
        self.findings = findings
        self.facts = facts
        self.dead_letters = dead_letters
        self.intake = intake or AllRecords()
        self.report = report or LogReport()
        self.stream = stream
        self.metrics = metrics or StageMetrics.off()
        self.shard_id = ""
        self.decode_stats = DecodeStats()
        self.progress = Progress(Stage.ROUTER, "")

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = self.progress.shard = initialize_input.shard_id
        self.findings.open(Stage.ROUTER, self.shard_id)
        self.report.open(self.progress)
        log.info("router initialized on %s at %s", self.shard_id, initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        progress = self.progress
        if progress.done:
            return  # past a replay's range: read on by the daemon, ignored here
        handed = time.time()
        taken = self.intake.take(process_records_input)
        if taken:
            self._process(taken, process_records_input.checkpointer)
        elif self.findings.digests_due():
            kcl.until_done(lambda: self.findings.publish([]), f"{self.shard_id}: publishing digests")
        behind = getattr(process_records_input, "millis_behind_latest", None)
        progress.behind_latest_ms = behind if isinstance(behind, int) else None
        progress.read_to = read_to(progress.read_to, process_records_input.records, behind, handed)
        reason = self.intake.finished(process_records_input)
        if reason:
            self.report.finish(progress, reason)
        else:
            self.report.update(progress)
        self.metrics.after_batch()

    def _process(self, records: list[Any], checkpointer: Any) -> None:
        progress = self.progress
        started = time.time()
        if progress.first_record_at is None:
            progress.first_record_at = started
        findings: list[Finding] = []
        facts: list[Fact] = []
        dead: list[DeadLetter] = []
        events = errors = 0
        latest = progress.last_event_time
        for record in records:
            origin = f"{self.stream}/{self.shard_id}/{record.sequence_number}"
            try:
                data = record.binary_data
            except Exception as exc:  # the daemon sent data that is not base64
                dead.append(self.decode_stats.dead("record data is not base64", origin, b"", detail=str(exc)))
                continue
            for item in iter_decode(data, origin, self.decode_stats):
                if isinstance(item, DeadLetter):
                    dead.append(item)
                    continue
                events += 1
                if latest is None or item.time > latest:
                    latest = item.time
                try:
                    new_findings, new_facts = self.stage.process(item)
                except Exception:  # a bug in the engine must not stop the shard
                    errors += 1
                    log.exception("engine failed on an event from %s", origin)
                    continue
                findings.extend(new_findings)
                facts.extend(new_facts)
        for line in self.stage.take_errors():
            log.warning("router %s: rule error: %s", self.shard_id, line)
        processed = time.time()
        self.deliver(findings, facts, dead, first=records[0].sequence_number)
        delivered = time.time()
        last = records[-1]
        kcl.checkpoint(checkpointer, last.sequence_number, last.sub_sequence_number)
        # Only now, with its facts acknowledged, may the shard say how far in event time it got (replay markers).
        progress.records += len(records)
        progress.events += events
        progress.errors += errors
        progress.last_event_time = latest
        metrics = self.metrics
        metrics.add(RECORDS_IN, len(records))
        metrics.add(EVENTS_IN, events)
        metrics.rule_errors(self.stage.stats.rule_errors)
        if latest is not None:
            metrics.gauge(WATERMARK_LAG, round(max(0.0, time.time() - latest), 3), ("ShardId", self.shard_id))
        arrival = getattr(last, "timestamp_millis", None)
        if isinstance(arrival, int | float):
            progress.last_arrival = arrival / 1000.0
        if log.isEnabledFor(logging.DEBUG):
            first_arrival = getattr(records[0], "timestamp_millis", None)
            lag = f"{started - first_arrival / 1000:.3f}" if isinstance(first_arrival, int | float) else "?"
            log.debug(
                "%s: %d records, first arrived %s s before; processed %.3f s, delivered %.3f s, checkpointed %.3f s",
                self.shard_id,
                len(records),
                lag,
                processed - started,
                delivered - processed,
                time.time() - delivered,
            )

    def deliver(self, findings: list[Finding], facts: list[Fact], dead: list[DeadLetter], first: str) -> None:
        """Each destination until it acknowledged: findings, then facts, then dead letters."""
        progress = self.progress
        if findings or self.findings.digests_due():
            fresh = kcl.until_done(lambda: self.findings.publish(findings), f"{self.shard_id}: publishing findings")
            self.metrics.published(len(findings), fresh)
            progress.findings += len(findings)
            progress.published, progress.already_alerted = self.findings.stats.published, self.findings.stats.suppressed
        if facts:
            kcl.until_done(lambda: self.facts.put_facts(facts), f"{self.shard_id}: putting facts")
            progress.facts += len(facts)
            self.metrics.add(KEYED_FACTS_OUT, len(facts))
        if dead:
            batch = f"{self.shard_id}/{first}"
            kcl.until_done(lambda: self.dead_letters.deliver(dead, batch), f"{self.shard_id}: dead letters")
            progress.dead_letters += len(dead)
            self.metrics.add(DEAD_LETTERS, len(dead))

    def lease_lost(self, lease_lost_input: Any) -> None:
        log.info("router lost the lease of %s", self.shard_id)
        self.metrics.flush()

    def shard_ended(self, shard_ended_input: Any) -> None:
        kcl.checkpoint(shard_ended_input.checkpointer)
        self.report.finish(self.progress, "shard ended")
        self.metrics.flush()

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        # process_records returns only after delivery, so everything received so far is acknowledged
        kcl.checkpoint(shutdown_requested_input.checkpointer)
        self.metrics.flush()


def read_to(before: float | None, records: Sequence[Any], millis_behind_latest: Any, handed: float) -> float | None:
    """How far in arrival time the shard has been read once a batch is delivered: at the tip (an empty batch,
    or MillisBehindLatest 0), the time the batch was handed over, `handed` (the KCL fetched it shortly before:
    its prefetch, which the allowed lateness covers); behind it, the arrival time of the batch's last record."""
    if at_tip(millis_behind_latest, len(records)):
        now = handed
    else:
        arrival = getattr(records[-1], "timestamp_millis", None) if records else None
        if not isinstance(arrival, int | float):
            return before
        now = arrival / 1000.0
    return now if before is None else max(before, now)


def build(wiring: Wiring | None = None) -> RouterProcessor:
    wiring = wiring or Wiring.from_settings()
    resources = wiring.resources
    return RouterProcessor(
        RouterStage(wiring.pack),
        wiring.findings_out(),
        KinesisWriter(wiring.target.client("kinesis"), resources.stream(Stage.STATEFUL)),
        wiring.dead_letters(Stage.ROUTER),
        intake=wiring.intake(),
        report=wiring.report(Stage.ROUTER),
        stream=resources.stream(Stage.ROUTER),
        metrics=wiring.metrics(Stage.ROUTER),
    )


def main() -> None:
    kcl.run_processor(build)


if __name__ == "__main__":
    main()
