"""Stage 1 record processor (KCL application over the trail stream).

Per batch: decode each record (dead letters counted and kept with reason and origin
`<stream>/<shard>/<sequence number>`), run the stateless rules, extract keyed facts for the
stateful rules; then publish the findings, put the facts on the keyed stream and store the dead
letters, each retried until acknowledged; only then checkpoint at the batch's last record.

Run by the MultiLangDaemon as `python -m consumers.router`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from amazon_kclpy.v3 import processor

from consumers import common
from pipeline.alerting import AlertPolicy
from pipeline.config import Config, enabled_rules
from pipeline.decode import DeadLetter, DecodeStats, decode
from pipeline.engine import Engine
from pipeline.finding import Finding
from pipeline.rule import Rule
from pipeline.sinks import Publisher
from pipeline.sinks.deadletter import S3DeadLetters
from pipeline.sinks.kinesis import KinesisWriter
from pipeline.stateful.extractor import FactExtractor, bind
from pipeline.stateful.facts import Fact
from pipeline.stateful.kinds import StatefulRule

log = logging.getLogger("consumers.router")


class RouterStage:
    """Stateless rules and fact extraction, bound to configuration the way `Detector` binds them."""

    def __init__(self, config: Config, rules: Iterable[Rule] | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, only: Iterable[str] | None = None) -> None:
        if rules is None:
            from pipeline.rules import rule_pack

            rules = rule_pack(config)
        chosen = enabled_rules(rules, config, only)  # `only`: these rule ids, enabled or not (replay --rules)
        stateful = [r for r in chosen if isinstance(r, StatefulRule)]
        self.engine = Engine([r for r in chosen if not isinstance(r, StatefulRule)], config, overrides)
        self.extractor = FactExtractor(bind(stateful, config, overrides), self.engine.stats)

    def process(self, event: Any) -> tuple[list[Finding], list[Fact]]:
        return self.engine.process(event), self.extractor.facts(event)

    def take_errors(self) -> list[str]:
        """The rule errors noted since the last call (match rules and fact extraction share the stats)."""
        errors = list(self.engine.stats.last_errors)
        self.engine.stats.last_errors.clear()
        return errors


class RouterProcessor(processor.RecordProcessorBase):
    def __init__(self, stage: RouterStage, publisher: Publisher, facts: KinesisWriter, dead_letters: Any,
                 stream: str = "trail") -> None:
        self.stage = stage
        self.publisher = publisher
        self.facts = facts
        self.dead_letters = dead_letters
        self.stream = stream
        self.shard_id = ""
        self.decode_stats = DecodeStats()
        self.counts: Counter[str] = Counter()
        self._last_report = time.monotonic()

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        log.info("router initialized on %s at %s", self.shard_id, initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        if not records:
            return
        started = time.time()
        findings: list[Finding] = []
        facts: list[Fact] = []
        dead: list[DeadLetter] = []
        for record in records:
            origin = f"{self.stream}/{self.shard_id}/{record.sequence_number}"
            self.counts["records"] += 1
            try:
                data = record.binary_data
            except Exception as exc:  # the daemon sent data that is not base64
                dead.append(self.decode_stats.dead("record data is not base64", origin, b"", detail=str(exc)))
                continue
            for item in decode(data, origin, self.decode_stats):
                if isinstance(item, DeadLetter):
                    dead.append(item)
                    continue
                self.counts["events"] += 1
                try:
                    new_findings, new_facts = self.stage.process(item)
                except Exception:  # a bug in the engine must not stop the shard
                    self.counts["errors"] += 1
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
        common.checkpoint(process_records_input.checkpointer, last.sequence_number, last.sub_sequence_number)
        if log.isEnabledFor(logging.DEBUG):
            arrival = getattr(records[0], "timestamp_millis", None)
            lag = f"{started - arrival / 1000:.3f}" if isinstance(arrival, int | float) else "?"
            log.debug("%s: %d records, first arrived %s s before; processed %.3f s, delivered %.3f s, "
                      "checkpointed %.3f s", self.shard_id, len(records), lag, processed - started,
                      delivered - processed, time.time() - delivered)
        self._report()

    def deliver(self, findings: list[Finding], facts: list[Fact], dead: list[DeadLetter], first: str) -> None:
        """Each destination until it acknowledged: findings, then facts, then dead letters."""
        if findings:
            common.until_done(lambda: self.publisher.publish(findings), f"{self.shard_id}: publishing findings")
            self.counts["findings"] += len(findings)
        if facts:
            common.until_done(lambda: self.facts.put_facts(facts), f"{self.shard_id}: putting facts")
            self.counts["facts"] += len(facts)
        if dead:
            batch = f"{self.shard_id}/{first}"
            common.until_done(lambda: self.dead_letters.deliver(dead, batch), f"{self.shard_id}: dead letters")
            self.counts["dead_letters"] += len(dead)

    def _report(self) -> None:
        if time.monotonic() - self._last_report >= 30:
            self._last_report = time.monotonic()
            log.info("router %s: %s", self.shard_id, dict(self.counts))

    def lease_lost(self, lease_lost_input: Any) -> None:
        log.info("router lost the lease of %s", self.shard_id)

    def shard_ended(self, shard_ended_input: Any) -> None:
        common.checkpoint(shard_ended_input.checkpointer)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        # process_records returns only after delivery, so everything received so far is acknowledged
        common.checkpoint(shutdown_requested_input.checkpointer)


def build() -> RouterProcessor:
    settings = common.Settings.from_env()
    r, t = settings.resources, settings.target
    config = Config.load()
    return RouterProcessor(
        RouterStage(config, overrides=common.overrides()),
        common.publisher(settings, AlertPolicy.from_config(config)),
        KinesisWriter(t.client("kinesis"), r["KeyedStreamName"]),
        S3DeadLetters(t.client("s3"), r["StateBucketName"], r.get("RouterAppName", "trailwarden-router")),
        stream=r.get("TrailStreamName", "trail"),
    )


def main() -> None:
    common.run_processor(build)


if __name__ == "__main__":
    main()
