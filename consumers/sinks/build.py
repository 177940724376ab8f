"""The publisher a process uses: the sinks it names, behind the dedupe table in the mode it names.

Live record processors take both from their settings (`TRAILWARDEN_SINKS`, `TRAILWARDEN_DEDUPE`); findings
of the past (a replay, a backfill) go to the archive, and to the alert topic only when asked, behind the live
dedupe table either way: `past_findings(alert)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from consumers.sinks.dedupe import DedupeTable, MemoryDedupe, ReadOnlyDedupe
from consumers.sinks.firehose import FirehoseSink
from consumers.sinks.local import FileSink
from consumers.sinks.publisher import Publisher
from consumers.sinks.sns import SnsSink
from infra import aws
from pipeline.alerting import AlertPolicy
from pipeline.settings import DedupeMode, SinkName


def past_findings(alert: bool) -> tuple[tuple[SinkName, ...], DedupeMode]:
    """Sinks and dedupe mode for findings of the past: archived; alerted too with `alert`, and then marked
    alerted; never an alert the dedupe table says was sent already."""
    if alert:
        return (SinkName.SNS, SinkName.FIREHOSE), DedupeMode.TABLE
    return (SinkName.FIREHOSE,), DedupeMode.READ_ONLY


def build_publisher(
    target: aws.Target,
    resources: Mapping[str, str],
    sinks: Iterable[SinkName],
    dedupe: DedupeMode,
    findings_file: Path | None = None,
    policy: AlertPolicy | None = None,
    digests: bool = True,
    archive_format: str = "trailwarden",
) -> Publisher:
    """The named sinks (a `file` sink only with `findings_file`) behind the dedupe table in `dedupe` mode;
    `policy` decides what each sink is given (the SNS topic the alerts, Firehose every archived finding).
    Findings of the past (`digests` False) are sent without digests: a digest counts repeats over wall-clock
    time, which a replay or backfill of the same input would not give the same."""
    chosen: list[Any] = []
    for name in sinks:
        if name == SinkName.SNS:
            chosen.append(SnsSink(target.client("sns"), resources["FindingsTopicArn"]))
        elif name == SinkName.FIREHOSE:
            chosen.append(
                FirehoseSink(
                    target.client("firehose"), resources["FindingsDeliveryStreamName"], archive_format=archive_format
                )
            )
        elif name == SinkName.FILE and findings_file is not None:
            chosen.append(FileSink(findings_file))
    table: Any = None
    if dedupe in (DedupeMode.TABLE, DedupeMode.READ_ONLY):
        table = DedupeTable(target.client("dynamodb"), resources["DedupeTableName"])
        if dedupe == DedupeMode.READ_ONLY:
            table = ReadOnlyDedupe(table)
    elif dedupe == DedupeMode.MEMORY:
        table = MemoryDedupe()
    return Publisher(chosen, table, policy=policy, digests=digests)
