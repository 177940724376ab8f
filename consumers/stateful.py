"""Stage 2 record processor (KCL application over the keyed stream).

initialize: restore the shard's snapshot (or merge the hand-offs of its parents after a reshard).
process_records: apply the facts, fire timers (on empty batches too: the daemon runs with
callProcessRecordsEvenForEmptyRecordList, so an idle shard's watermark follows the wall clock),
publish the findings until acknowledged, save the snapshot, then checkpoint.
shard_ended: hand each child shard the parent's keys in its hash range, then checkpoint.

A snapshot is always saved before the checkpoint it goes with; facts read again after a crash are
recognised by their event ids (kept in the snapshot) and applied at most once.

Run by the MultiLangDaemon as `python -m consumers.stateful`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from amazon_kclpy.v3 import processor

from consumers import common
from consumers.snapshots import S3SnapshotStore, SnapshotStore, merge
from pipeline.alerting import AlertPolicy
from pipeline.config import Config, enabled_rules
from pipeline.decode import DecodeStats
from pipeline.finding import Finding
from pipeline.rule import Rule
from pipeline.sinks import Publisher
from pipeline.sinks.deadletter import S3DeadLetters
from pipeline.stateful import snapshot
from pipeline.stateful.facts import Fact
from pipeline.stateful.kinds import StatefulRule
from pipeline.stateful.state import KeyedState

log = logging.getLogger("consumers.stateful")


def state_factory(config: Config, rules: Iterable[Rule] | None = None,
                  overrides: dict[str, dict[str, Any]] | None = None,
                  only: Iterable[str] | None = None) -> Callable[[], KeyedState]:
    if rules is None:
        from pipeline.rules import rule_pack

        rules = rule_pack(config)
    stateful = [r for r in enabled_rules(rules, config, only) if isinstance(r, StatefulRule)]
    return lambda: KeyedState.for_rules(stateful, config, overrides)


def child_shards(kinesis: Any, stream: str, parent: str) -> list[dict[str, Any]]:
    """Shards whose parent (or adjacent parent, after a merge) is `parent`."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        response = kinesis.list_shards(**kwargs)
        out += [s for s in response.get("Shards", [])
                if parent in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))]
        if not response.get("NextToken"):
            return out
        kwargs = {"NextToken": response["NextToken"]}


class StatefulProcessor(processor.RecordProcessorBase):
    def __init__(self, make_state: Callable[[], KeyedState], publisher: Publisher, store: SnapshotStore,
                 dead_letters: Any = None, kinesis: Any = None, stream: str = "keyed",
                 clock: Callable[[], float] = time.time, snapshot_interval: float = 0.0) -> None:
        self.make_state = make_state
        self.publisher = publisher
        self.store = store
        self.dead_letters = dead_letters
        self.kinesis = kinesis
        self.stream = stream
        self.clock = clock
        self.snapshot_interval = snapshot_interval
        self.state = make_state()
        self.shard_id = ""
        self.decode_stats = DecodeStats()
        self.counts: Counter[str] = Counter()
        self._last_save = -float("inf")

    # --- lifecycle ------------------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        self.state = self.make_state()
        data = common.until_done(lambda: self.store.load(self.shard_id), f"{self.shard_id}: loading snapshot")
        try:
            if data is not None:
                snapshot.load_into(self.state, data)
                log.info("stateful %s: restored %d keys", self.shard_id, self.state.keys())
                return
            handoffs = common.until_done(lambda: self.store.handoffs(self.shard_id), f"{self.shard_id}: hand-offs")
            merged = merge(handoffs)
            if merged is not None:
                snapshot.load_into(self.state, merged)
                log.info("stateful %s: started from %d parent hand-off(s), %d keys", self.shard_id, len(handoffs),
                         self.state.keys())
        except (snapshot.SnapshotError, ValueError, TypeError, KeyError) as exc:
            # An unreadable snapshot must not block the shard forever; its state is lost, and said so.
            log.error("stateful %s: snapshot unreadable (%s): starting with empty state", self.shard_id, exc)
            self.state = self.make_state()

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        now = self.clock()
        findings: list[Finding] = []
        if records:
            facts, dead = self._facts(records)
            findings += self.state.add(facts, now=now)
            if dead and self.dead_letters is not None:
                batch = f"{self.shard_id}/{records[0].sequence_number}"
                common.until_done(lambda: self.dead_letters.deliver(dead, batch), f"{self.shard_id}: dead letters")
        findings += self.state.tick(now)
        self._log_errors()
        if findings:
            common.until_done(lambda: self.publisher.publish(findings), f"{self.shard_id}: publishing findings")
            self.counts["findings"] += len(findings)
        if records and now - self._last_save >= self.snapshot_interval:
            self.save()
            last = records[-1]
            common.checkpoint(process_records_input.checkpointer, last.sequence_number, last.sub_sequence_number)
        elif findings:
            self.save()  # timers fired: the state changed without new records

    def _facts(self, records: list[Any]) -> tuple[list[Fact], list[Any]]:
        facts, dead = [], []
        for record in records:
            origin = f"{self.stream}/{self.shard_id}/{record.sequence_number}"
            try:
                facts.append(Fact.from_bytes(record.binary_data))
            except Exception as exc:
                dead.append(self.decode_stats.dead("not a keyed fact", origin, b"", detail=str(exc)))
        self.counts["facts"] += len(facts)
        return facts, dead

    def _log_errors(self) -> None:
        errors = self.state.stats.last_errors
        if errors:
            for line in errors:
                log.warning("stateful %s: rule error: %s", self.shard_id, line)
            errors.clear()

    def save(self) -> None:
        data = snapshot.dumps(self.state)
        common.until_done(lambda: self.store.save(self.shard_id, data), f"{self.shard_id}: saving snapshot")
        self._last_save = self.clock()
        self.counts["snapshots"] += 1

    def lease_lost(self, lease_lost_input: Any) -> None:
        log.info("stateful lost the lease of %s", self.shard_id)

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Hand each child the parent's keys in its hash range, then checkpoint (which lets children start)."""
        if self.kinesis is not None:
            children = common.until_done(lambda: child_shards(self.kinesis, self.stream, self.shard_id),
                                         f"{self.shard_id}: listing child shards")
            for child in children:
                hashes = child.get("HashKeyRange", {})
                data = snapshot.split_for_child(self.state, int(hashes.get("StartingHashKey", 0)),
                                                int(hashes.get("EndingHashKey", 0)))
                common.until_done(lambda c=child, d=data: self.store.save_handoff(c["ShardId"], self.shard_id, d),
                                  f"{self.shard_id}: hand-off to {child.get('ShardId')}")
            log.info("stateful %s ended: state handed to %s", self.shard_id, [c.get("ShardId") for c in children])
        self.save()
        common.checkpoint(shard_ended_input.checkpointer)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        self.save()
        common.checkpoint(shutdown_requested_input.checkpointer)


def build() -> StatefulProcessor:
    settings = common.Settings.from_env()
    r, t = settings.resources, settings.target
    app = r.get("StatefulAppName", "trailwarden-stateful")
    config = Config.load()
    return StatefulProcessor(
        state_factory(config, overrides=common.overrides()),
        common.publisher(settings, AlertPolicy.from_config(config)),
        S3SnapshotStore(t.client("s3"), r["StateBucketName"], app),
        S3DeadLetters(t.client("s3"), r["StateBucketName"], app),
        kinesis=t.client("kinesis"),
        stream=r.get("KeyedStreamName", "keyed"),
        snapshot_interval=float(os.environ.get("TRAILWARDEN_SNAPSHOT_SECONDS", "0")),
    )


def main() -> None:
    common.run_processor(build)


if __name__ == "__main__":
    main()
