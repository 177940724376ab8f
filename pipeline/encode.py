"""CloudTrail records encoded as the four transports trailwarden reads, byte for byte as AWS writes them.

- CloudWatch Logs subscription records: gzip JSON `DATA_MESSAGE`s, one log stream
  (`<account>_CloudTrail_<region>`) per record, events in time order within a stream.
- CloudTrail S3 log files: gzip `{"Records": [...]}` per account, region and ~5 minutes, under
  `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<random>.json.gz`.
- JSON lines: one record per line.
- EventBridge "AWS API Call via CloudTrail" envelopes, one per line.

Everything is deterministic for a given seed (gzip headers carry no timestamp).
"""

from __future__ import annotations

import gzip
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from pipeline.event import parse_event_time

FORMATS = ("cwl", "s3", "jsonl", "eventbridge")
LOG_GROUP = "aws-cloudtrail-logs-organization"
SUBSCRIPTION_FILTER = "trailwarden-trail"
CWL_MAX_EVENTS = 10_000
CWL_MAX_BYTES = 1_000_000  # a Kinesis record holds at most 1 MiB
CONTROL_TEXT = "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

Record = dict[str, Any]


def _gzip(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def _time(ev: Record) -> float:
    return parse_event_time(ev.get("eventTime")) or 0.0


def log_stream(ev: Record) -> str:
    """The log stream CloudTrail writes an event to: `<account>_CloudTrail_<region>`."""
    account = ev.get("recipientAccountId") or (ev.get("userIdentity") or {}).get("accountId") or "unknown"
    return f"{account}_CloudTrail_{ev.get('awsRegion') or 'us-east-1'}"


def by_log_stream(events: Iterable[Record]) -> dict[str, list[Record]]:
    """Records grouped by the log stream CloudTrail writes them to, each group in input (time) order:
    what PutLogEvents needs (one stream per call, events in time order)."""
    streams: dict[str, list[Record]] = {}
    for ev in events:
        streams.setdefault(log_stream(ev), []).append(ev)
    return streams


def cwl_event_id(timestamp_ms: int, seq: int) -> str:
    """A 56-digit log event id, increasing with time as CloudWatch Logs' are."""
    return f"{(timestamp_ms << 143) | (seq & ((1 << 143) - 1)):056d}"[-56:]


def cwl_message(
    owner: str,
    stream: str,
    log_events: list[dict[str, Any]],
    *,
    log_group: str = LOG_GROUP,
    filters: Sequence[str] = (SUBSCRIPTION_FILTER,),
) -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": stream,
        "subscriptionFilters": list(filters),
        "logEvents": log_events,
    }


def control_record(timestamp_ms: int = 0) -> bytes:
    """The CONTROL_MESSAGE CloudWatch Logs sends when a subscription is created (consumers skip it)."""
    body = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": timestamp_ms, "message": CONTROL_TEXT}],
    }
    return _gzip(orjson.dumps(body))


def cwl_records(
    events: Iterable[Record],
    *,
    per_record: int = 75,
    owner: str = "",
    log_group: str = LOG_GROUP,
    filters: Sequence[str] = (SUBSCRIPTION_FILTER,),
    max_bytes: int = CWL_MAX_BYTES,
    level: int = 6,
) -> list[bytes]:
    """Gzip DATA_MESSAGE records of up to `per_record` events from one log stream each.

    Events are read in time order; a stream's buffer is sent when full, so records come out in
    roughly the order CloudWatch Logs would deliver them. `owner` is the log group's account (for
    an organization trail, the management account); by default each event's own account.
    """
    per_record = max(1, min(per_record, CWL_MAX_EVENTS))
    buffers: dict[str, tuple[str, list[dict[str, Any]], list[int]]] = {}
    seq: dict[str, int] = {}
    out: list[bytes] = []
    dumps = orjson.dumps

    def flush(stream: str) -> None:
        acct, log_events, _ = buffers.pop(stream)
        out.append(
            _gzip(dumps(cwl_message(owner or acct, stream, log_events, log_group=log_group, filters=filters)), level)
        )

    for ev in events:
        stream = log_stream(ev)
        message = dumps(ev).decode()
        ts = int(_time(ev) * 1000)
        n = seq[stream] = seq.get(stream, 0) + 1
        entry = {"id": cwl_event_id(ts, n), "timestamp": ts, "message": message}
        if stream in buffers and buffers[stream][2][0] + len(message) + 100 > max_bytes:
            flush(stream)
        if stream not in buffers:
            buffers[stream] = (stream.split("_", 1)[0], [], [0])
        _, log_events, size = buffers[stream]
        log_events.append(entry)
        size[0] += len(message) + 100
        if len(log_events) >= per_record:
            flush(stream)
    for stream in list(buffers):
        flush(stream)
    return out


def cloudtrail_files(
    events: Iterable[Record], *, seed: int = 0, window: int = 300, org_id: str = ""
) -> list[tuple[str, bytes]]:
    """(S3 key, gzip bytes) of CloudTrail log files: one per account, region and `window` seconds.

    The file name carries the delivery time, a few minutes after the last event, as CloudTrail's does.
    """
    rng = random.Random(seed)  # noqa: S311 (seeded, reproducible test payloads, not a secret)
    groups: dict[tuple[str, str, int], list[Record]] = {}
    for ev in events:
        stream = log_stream(ev)
        account, region = stream.split("_CloudTrail_", 1)
        groups.setdefault((account, region, int(_time(ev) // window)), []).append(ev)
    out: list[tuple[str, bytes]] = []
    for (account, region, slot), records in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        delivered = (slot + 1) * window + rng.randrange(60, 300)
        g = time.gmtime(delivered)
        stamp = time.strftime("%Y%m%dT%H%MZ", g)
        prefix = f"AWSLogs/{org_id}/{account}" if org_id else f"AWSLogs/{account}"
        name = f"{account}_CloudTrail_{region}_{stamp}_{''.join(rng.choice(_ALNUM) for _ in range(16))}.json.gz"
        key = f"{prefix}/CloudTrail/{region}/{time.strftime('%Y/%m/%d', g)}/{name}"
        out.append((key, _gzip(orjson.dumps({"Records": records}))))
    return out


def jsonl(events: Iterable[Record]) -> bytes:
    return b"".join(orjson.dumps(ev) + b"\n" for ev in events)


# EventBridge's detail-type by CloudTrail eventType (Amazon EventBridge User Guide, "AWS service events
# delivered via AWS CloudTrail"); everything else is an API call.
_DETAIL_TYPES = {
    "AwsConsoleSignIn": "AWS Console Signin via CloudTrail",
    "AwsConsoleAction": "AWS Console Action via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
}


def eventbridge_envelope(ev: Record, envelope_id: str) -> dict[str, Any]:
    """The EventBridge event that carries a CloudTrail record in `detail`."""
    source = str(ev.get("eventSource") or "")
    return {
        "version": "0",
        "id": envelope_id,
        "detail-type": _DETAIL_TYPES.get(str(ev.get("eventType")), "AWS API Call via CloudTrail"),
        "source": "aws." + source.split(".", 1)[0],
        "account": ev.get("recipientAccountId") or "",
        "time": ev.get("eventTime"),
        "region": ev.get("awsRegion") or "",
        "resources": [],
        "detail": ev,
    }


def eventbridge(events: Iterable[Record], *, seed: int = 0) -> bytes:
    rng = random.Random(seed)  # noqa: S311 (seeded, reproducible test payloads, not a secret)
    lines = []
    for ev in events:
        h = f"{rng.getrandbits(128):032x}"
        lines.append(orjson.dumps(eventbridge_envelope(ev, f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")))
    return b"\n".join(lines) + b"\n" if lines else b""


def encode(
    events: Sequence[Record], fmt: str, *, seed: int = 0, per_record: int = 75, gz: bool = False
) -> Iterator[tuple[str, bytes]]:
    """(relative file name, bytes) for writing `events` in format `fmt` (one of FORMATS)."""
    if fmt == "cwl":
        for n, rec in enumerate(cwl_records(events, per_record=per_record), 1):
            yield f"cwl-{n:06d}.json.gz", rec
    elif fmt == "s3":
        yield from cloudtrail_files(events, seed=seed)
    elif fmt == "jsonl":
        data = jsonl(events)
        yield ("events.jsonl.gz", _gzip(data)) if gz else ("events.jsonl", data)
    elif fmt == "eventbridge":
        data = eventbridge(events, seed=seed)
        yield ("eventbridge.jsonl.gz", _gzip(data)) if gz else ("eventbridge.jsonl", data)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
