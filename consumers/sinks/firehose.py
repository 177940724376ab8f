"""Firehose: PutRecordBatch of up to 500 findings (4 MiB), one JSON finding per line, in our schema or as an
OCSF Detection Finding (`[archive] format`).

Firehose concatenates records as they are, so each record ends with a newline. The records that
the response marks failed (FailedPutCount, RequestResponses[i].ErrorCode) are resent, only those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from consumers.sinks.base import encode
from consumers.sinks.base import line as finding_line
from consumers.sinks.batching import batches
from consumers.sinks.retry import RetryPolicy, resend_failed
from pipeline.finding import Finding
from pipeline.ocsf import detection_finding

MAX_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024


def line(finding: Finding) -> bytes:
    """One finding as one line: JSON without raw line breaks, then a newline."""
    return finding_line(finding, MAX_RECORD_BYTES)


def ocsf_line(finding: Finding) -> bytes:
    """One finding as an OCSF Detection Finding on one line; from the size-bounded finding if the whole is too big."""
    data = orjson.dumps(detection_finding(finding.to_dict()), default=str)
    if len(data) >= MAX_RECORD_BYTES:
        data = orjson.dumps(detection_finding(orjson.loads(encode(finding, MAX_RECORD_BYTES // 2))), default=str)
    return data + b"\n"


ENCODERS: dict[str, Callable[[Finding], bytes]] = {"trailwarden": line, "ocsf": ocsf_line}


class FirehoseSink:
    name = "firehose"

    def __init__(
        self, client: Any, delivery_stream: str, policy: RetryPolicy | None = None, archive_format: str = "trailwarden"
    ) -> None:
        self.client = client
        self.encode = ENCODERS[archive_format]
        self.delivery_stream = delivery_stream
        self.policy = policy or RetryPolicy()
        self.calls = 0

    def deliver(self, findings: Sequence[Finding]) -> None:
        records = [self.encode(f) for f in findings]
        for batch in batches(records, MAX_RECORDS, MAX_BATCH_BYTES, len):
            resend_failed(self._send, batch, self.policy, f"Firehose PutRecordBatch to {self.delivery_stream}")

    def _send(self, batch: list[bytes]) -> list[tuple[bytes, str]]:
        self.calls += 1
        response = self.client.put_record_batch(
            DeliveryStreamName=self.delivery_stream, Records=[{"Data": data} for data in batch]
        )
        if not response.get("FailedPutCount"):
            return []
        results = response.get("RequestResponses") or []
        failed = []
        for i, data in enumerate(batch):
            result = results[i] if i < len(results) else {}
            if not result.get("RecordId") or result.get("ErrorCode"):
                failed.append((data, ""))  # Firehose's per-record errors (ServiceUnavailable, Internal) are transient
        return failed
