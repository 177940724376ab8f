"""Keyed facts to the keyed stream: PutRecords within its limits, failed records resent.

Limits: 500 records and 5 MiB (data plus partition keys) per call, 1 MiB per record. The
partition key is the fact's entity key (or its digest), so one key always lands on one shard.
Resent records may overtake others; stage 2 orders facts by event time and applies each at most
once, so neither reordering nor a duplicate changes its result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from consumers import shards
from consumers.sinks.batching import batches
from consumers.sinks.retry import RetryPolicy, resend_failed

log = logging.getLogger(__name__)

MAX_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024


class KinesisWriter:
    """Writes (partition key, data) records to one stream; returns only when all were accepted."""

    name = "kinesis"

    def __init__(self, client: Any, stream: str, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.stream = stream
        self.policy = policy or RetryPolicy()
        self.calls = 0
        self.records = 0
        self.oversize = 0  # records Kinesis would refuse outright: logged and counted, never retried forever
        self._open_shards: list[dict[str, Any]] | None = None

    def put(self, records: Sequence[tuple[str, bytes]]) -> None:
        entries = []
        for key, data in records:
            if len(data) + len(key.encode()) > MAX_RECORD_BYTES:
                self.oversize += 1
                log.error("record of %d bytes for key %.80r exceeds the Kinesis limit: not sent", len(data), key)
                continue
            entries.append({"PartitionKey": key, "Data": data})
        for batch in batches(entries, MAX_RECORDS, MAX_BATCH_BYTES, _size):
            resend_failed(self._send, batch, self.policy, f"Kinesis PutRecords to {self.stream}")
        self.records += len(entries)

    def put_facts(self, facts: Sequence[Any]) -> None:
        """Facts (`pipeline.stateful.facts.Fact`) keyed by their partition key."""
        self.put([(f.partition_key, f.to_bytes()) for f in facts])

    def put_on_each_shard(self, data: bytes, key: str) -> None:
        """`data` once on every open shard (ExplicitHashKey at each shard's start), for control records such as
        progress markers. A shard list made stale by a reshard shows in the shard ids PutRecords answers: the
        stream is listed again and the record put again (a repeat is harmless). Raises if an entry failed."""
        for attempt in range(2):
            if self._open_shards is None or attempt:
                self._open_shards = shards.open_shards(self.client, self.stream)
            targets = self._open_shards or []
            entries = [
                {"PartitionKey": key, "Data": data, "ExplicitHashKey": s["HashKeyRange"]["StartingHashKey"]}
                for s in targets
            ]
            self.calls += 1
            results = self.client.put_records(StreamName=self.stream, Records=entries).get("Records") or []
            failed = [r.get("ErrorCode") for r in results if r.get("ErrorCode") or not r.get("SequenceNumber")]
            if failed or len(results) != len(entries):
                raise RuntimeError(f"PutRecords to {self.stream}: {failed or 'entries missing'}")
            if [r.get("ShardId") for r in results] == [s["ShardId"] for s in targets]:
                return
        raise RuntimeError(f"PutRecords to {self.stream}: the shards moved while being listed")

    def _send(self, batch: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        self.calls += 1
        response = self.client.put_records(StreamName=self.stream, Records=batch)
        if not response.get("FailedRecordCount"):
            return []
        results = response.get("Records") or []
        failed = []
        for i, entry in enumerate(batch):
            result = results[i] if i < len(results) else {}
            if result.get("ErrorCode") or not result.get("SequenceNumber"):
                failed.append((entry, ""))  # ProvisionedThroughputExceeded / InternalFailure: both transient
        return failed


def _size(entry: dict[str, Any]) -> int:
    return len(entry["Data"]) + len(entry["PartitionKey"].encode())
