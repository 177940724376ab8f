"""Sinks for findings of the past (replay of the stream, backfill of the S3 archive).

They go to the same Firehose stream as live findings and, only when asked (`--alert`), to the SNS
topic, always behind the live dedupe table: a finding already alerted live (same id) is not sent
again. Without `--alert` the table is read, never marked, since nothing is being alerted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from infra import aws
from pipeline.sinks.dedupe import DedupeTable
from pipeline.sinks.firehose import FirehoseSink
from pipeline.sinks.publisher import Dedupe, Publisher
from pipeline.sinks.sns import SnsSink


class ReadOnlyDedupe:
    """The dedupe table consulted, never marked: without --alert nothing is alerted, so nothing may be
    recorded as alerted."""

    def __init__(self, table: Dedupe) -> None:
        self.table = table

    def seen(self, ids: Iterable[str]) -> set[str]:
        return self.table.seen(ids)

    def mark(self, finding_ids: Iterable[str]) -> int:
        return 0


def make_publisher(target: aws.Target, alert: bool, names: Mapping[str, str] | None = None) -> Publisher:
    """Firehose (and SNS with `alert`) behind the live dedupe table; `names` are the stack's outputs
    (read from the target when not given)."""
    if names is None:
        from infra.provision import outputs

        names = outputs(target)
    sinks: list[Any] = [FirehoseSink(target.client("firehose"), names["FindingsDeliveryStreamName"])]
    table = DedupeTable(target.client("dynamodb"), names["DedupeTableName"])
    if alert:
        sinks.append(SnsSink(target.client("sns"), names["FindingsTopicArn"]))
        return Publisher(sinks, table)
    return Publisher(sinks, ReadOnlyDedupe(table))
