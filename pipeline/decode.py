"""Decode a blob (a Kinesis record's data, a file's content) into CloudTrail events.

The transport is detected from the content, gzip or not (gzip members are concatenated):

- CloudWatch Logs subscription records: `{"messageType": "DATA_MESSAGE", "logEvents": [{"message": "<event>"}]}`;
  a CONTROL_MESSAGE is skipped (counted in `DecodeStats.skipped`, not dead-lettered);
- CloudTrail S3 log files `{"Records": [...]}`, and a bare JSON array of records;
- JSON lines: one document per line, each any of these shapes; blank lines are ignored;
- EventBridge envelopes of CloudTrail records `{"detail-type": "AWS API Call via CloudTrail", "detail": {<event>}}`
  (and the other "... via CloudTrail" detail-types: console sign-ins, service events);
- a single CloudTrail event object.

CloudTrail Insights events are skipped (counted). Everything else becomes a `DeadLetter` with its
reason, where it came from and a sample. Nothing here raises on bad input. `decode_floor` is the
benchmark's baseline: gunzip and orjson and nothing else.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.event import Event

GZIP_MAGIC = b"\x1f\x8b"
MAX_DECOMPRESSED = 64 * 1024 * 1024
SAMPLE_BYTES = 512
EVENTBRIDGE_DETAIL_TYPE = "AWS API Call via CloudTrail"
# EventBridge also carries "AWS Console Signin via CloudTrail", "AWS Service Event via CloudTrail", ...
CLOUDTRAIL_DETAIL_SUFFIX = " via CloudTrail"
# CloudTrail Insights events name the API whose call rate was unusual: not API activity, so rules must not see them.
INSIGHT = "AwsCloudTrailInsight"
OVERSIZE = "decompressed size exceeds the limit"

_loads = orjson.loads
_from_record = Event.from_record
_JSONError = orjson.JSONDecodeError
_BOM = b"\xef\xbb\xbf"
_INDEX = re.compile(r"\[\d+\]")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that is not a usable CloudTrail event: why, where from, and its first bytes."""

    reason: str
    origin: str
    sample: bytes = b""
    kind: str = ""  # the reason without its details (indexes, values, parser messages), for counting

    def to_dict(self) -> dict[str, str]:
        return {
            "reason": self.reason,
            "kind": self.kind,
            "origin": self.origin,
            "sample": self.sample.decode("utf-8", "backslashreplace"),
        }


@dataclass
class DecodeStats:
    """What `decode` counted besides the events it yielded (those the caller counts)."""

    dead_letters: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def dead(self, reason: str, origin: str, sample: Any, *, where: str = "", detail: str = "") -> DeadLetter:
        """A dead letter (counted by kind): `where` is the field path, `detail` the variable part."""
        sep = " " if reason.startswith("is ") else ": "
        kind = f"{_INDEX.sub('[]', where)}{sep}{reason}" if where else reason
        full = f"{where}{sep}{reason}" if where else reason
        if detail:
            full = f"{full}: {detail}"
        self.dead_letters[kind] += 1
        return DeadLetter(full, origin, _sample(sample), kind)


def _sample(value: Any) -> bytes:
    """The first SAMPLE_BYTES of raw input or of a decoded value re-encoded as JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value[:SAMPLE_BYTES])
    if isinstance(value, str):
        return value[:SAMPLE_BYTES].encode("utf-8", "backslashreplace")[:SAMPLE_BYTES]
    try:
        return orjson.dumps(value, default=repr)[:SAMPLE_BYTES]
    except (TypeError, orjson.JSONEncodeError):  # nested deeper than orjson writes (its limit is below the reader's)
        pass
    try:
        return repr(value)[:SAMPLE_BYTES].encode("utf-8", "backslashreplace")
    except RecursionError:
        return f"<a JSON {_kind(value)} nested too deeply to show>".encode()


class GzipError(ValueError):
    """Compressed input that cannot be read; `reason` is stable, `detail` the specifics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def gunzip_members(data: bytes, max_size: int = MAX_DECOMPRESSED) -> list[bytes]:
    """The decompressed bytes of each gzip member in `data`; raises GzipError."""
    out: list[bytes] = []
    total = 0
    rest = data
    while True:
        d = zlib.decompressobj(31)
        try:
            chunk = d.decompress(rest, max_size - total + 1)
        except zlib.error as exc:
            raise GzipError("corrupt gzip", str(exc)) from None
        total += len(chunk)
        if total > max_size:
            raise GzipError(OVERSIZE, f"more than {max_size} bytes")
        out.append(chunk)
        if not d.eof:
            raise GzipError("truncated gzip")
        rest = d.unused_data
        if not rest or not rest.strip(b"\x00"):
            return out
        if rest[:2] != GZIP_MAGIC:
            raise GzipError("trailing data after gzip", f"{len(rest)} bytes")


def gunzip(data: bytes, max_size: int = MAX_DECOMPRESSED) -> bytes:
    """The decompressed bytes of every gzip member in `data`, concatenated; raises GzipError."""
    members = gunzip_members(data, max_size)
    return members[0] if len(members) == 1 else b"".join(members)


def _kind(value: Any) -> str:
    """The JSON type name of a decoded value."""
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def _shown(value: Any) -> str:
    """A short, quoted rendering of an attacker-controlled value for a reason's detail."""
    return repr(value[:80]) if type(value) is str else f"a JSON {_kind(value)}"


def _not_json(data: bytes, origin: str, exc: Exception, stats: DecodeStats, where: str = "") -> DeadLetter:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return stats.dead("not UTF-8", origin, data, where=where, detail=f"{uexc.reason} at byte {uexc.start}")
    return stats.dead("not JSON", origin, data, where=where, detail=str(exc))


def _record(raw: Any, origin: str, where: str, stats: DecodeStats, envelope: bool = True) -> Event | DeadLetter | None:
    """A record normalized to an Event (an EventBridge envelope is opened), a dead letter saying why not,
    or None for a record that is skipped (counted in `stats.skipped`)."""
    if type(raw) is not dict:
        return stats.dead(f"record is a JSON {_kind(raw)}, not an object", origin, raw, where=where)
    event = _from_record(raw, origin)
    if isinstance(event, Event):
        if raw.get("eventType") == INSIGHT:
            stats.skipped["CloudTrail Insights event"] += 1
            return None
        return event
    if envelope and type(raw) is dict and "detail" in raw and "eventSource" not in raw:
        return _eventbridge(raw, origin, where, stats)
    return stats.dead(event, origin, raw, where=where)


def _eventbridge(doc: dict[str, Any], origin: str, where: str, stats: DecodeStats) -> Event | DeadLetter | None:
    inner = f"{where}.detail" if where else "detail"
    detail_type = doc.get("detail-type")
    if detail_type is not None and not (type(detail_type) is str and detail_type.endswith(CLOUDTRAIL_DETAIL_SUFFIX)):
        return stats.dead(
            "EventBridge detail-type is not one of CloudTrail's (... via CloudTrail)",
            origin,
            doc,
            where=where,
            detail=_shown(detail_type),
        )
    detail = doc.get("detail")
    if type(detail) is not dict:
        return stats.dead(f"is a JSON {_kind(detail)}, not an object", origin, doc, where=inner)
    return _record(detail, origin, inner, stats, envelope=False)


def _cwl(doc: dict[str, Any], origin: str, stats: DecodeStats) -> Iterator[Event | DeadLetter]:
    message_type = doc.get("messageType")
    if message_type == "CONTROL_MESSAGE":
        stats.skipped["CONTROL_MESSAGE"] += 1
        return
    if message_type != "DATA_MESSAGE":
        yield stats.dead("messageType is not DATA_MESSAGE or CONTROL_MESSAGE", origin, doc, detail=_shown(message_type))
        return
    log_events = doc.get("logEvents")
    if type(log_events) is not list:
        yield stats.dead(f"is a JSON {_kind(log_events)}, not an array", origin, doc, where="logEvents")
        return
    # The hot path: one orjson.loads and one Event.from_record per log event, each handed on before the next
    # message is parsed, so that only one decoded record is alive at a time (75 of them at once cost a third
    # more than the parsing).
    loads, from_record, json_error = _loads, _from_record, _JSONError
    i = -1
    for log_event in log_events:
        i += 1
        try:
            raw = loads(log_event["message"])
        except (TypeError, KeyError, json_error):
            yield _bad_log_event(log_event, i, origin, stats)
            continue
        event = from_record(raw, origin)
        if type(event) is Event and raw.get("eventType") != INSIGHT:
            yield event
        else:
            item = _record(raw, origin, f"logEvents[{i}].message", stats)
            if item is not None:
                yield item


def _bad_log_event(log_event: Any, i: int, origin: str, stats: DecodeStats) -> DeadLetter:
    where = f"logEvents[{i}]"
    if type(log_event) is not dict:
        return stats.dead(f"is a JSON {_kind(log_event)}, not an object", origin, log_event, where=where)
    message = log_event.get("message")
    if type(message) is not str:
        return stats.dead(f"is a JSON {_kind(message)}, not a string", origin, log_event, where=f"{where}.message")
    try:
        _loads(message)
    except _JSONError as exc:
        return stats.dead("is not JSON", origin, message, where=f"{where}.message", detail=str(exc))
    return stats.dead("could not be read", origin, message, where=f"{where}.message")  # pragma: no cover


def _records(items: list[Any], origin: str, label: str, stats: DecodeStats) -> list[Event | DeadLetter]:
    from_record = _from_record
    out: list[Event | DeadLetter] = []
    i = -1
    for raw in items:
        i += 1
        event = from_record(raw, origin)
        if type(event) is Event and raw.get("eventType") != INSIGHT:
            out.append(event)
        else:
            item = _record(raw, origin, f"{label}[{i}]", stats)
            if item is not None:
                out.append(item)
    return out


def from_document(doc: Any, origin: str, stats: DecodeStats | None = None) -> list[Event | DeadLetter]:
    """Events of one parsed JSON document of any supported shape."""
    stats = stats if stats is not None else DecodeStats()
    if type(doc) is dict:
        if "logEvents" in doc or "messageType" in doc:
            return list(_cwl(doc, origin, stats))
        if "Records" in doc:
            records = doc["Records"]
            if type(records) is list:
                return _records(records, origin, "Records", stats)
            return [stats.dead(f"is a JSON {_kind(records)}, not an array", origin, doc, where="Records")]
        item = _record(doc, origin, "", stats)
        return [] if item is None else [item]
    if type(doc) is list:
        return _records(doc, origin, "", stats)
    return [stats.dead(f"JSON {_kind(doc)} is not a CloudTrail record or envelope", origin, doc)]


def decode_line(line: bytes, origin: str, stats: DecodeStats | None = None) -> list[Event | DeadLetter]:
    """Events of one JSON-lines line (a blank line gives none)."""
    stats = stats if stats is not None else DecodeStats()
    if not line.strip():
        return []
    try:
        doc = _loads(line[3:] if line[:3] == _BOM else line)
    except _JSONError as exc:
        return [_not_json(line, origin, exc, stats)]
    return from_document(doc, origin, stats)


def looks_like_json_lines(data: bytes, probe: int = 5) -> bool:
    """True if the text has several non-blank lines and one of the first `probe` is a JSON object by itself."""
    lines: list[bytes] = []
    start = 0
    while len(lines) <= probe and start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data[start:end].strip():
            lines.append(data[start:end])
        start = end + 1
    if len(lines) < 2:
        return False
    for line in lines[:probe]:
        try:
            if type(_loads(line)) is dict:
                return True
        except _JSONError:
            continue
    return False


def decode(
    data: bytes, origin: str = "", stats: DecodeStats | None = None, max_size: int = MAX_DECOMPRESSED
) -> list[Event | DeadLetter]:
    """Events and dead letters of one blob, transport and gzip detected from the content (`iter_decode`, as a list).

    Every input is accounted for: each record or log event yields one Event or DeadLetter, a blob that
    cannot be read at all yields one DeadLetter, and a CONTROL_MESSAGE counts in `stats.skipped`.
    JSON-lines origins get ":<line number>" appended.
    """
    return list(iter_decode(data, origin, stats, max_size))


def iter_decode(
    data: bytes, origin: str = "", stats: DecodeStats | None = None, max_size: int = MAX_DECOMPRESSED
) -> Iterator[Event | DeadLetter]:
    """`decode`, one item at a time: a CloudWatch Logs record's messages are parsed as they are taken, which
    is what the stages do with each record. The blob is decompressed and its envelope parsed when this is
    called; `stats` is complete once the iterator is exhausted."""
    # Not a generator itself: the iterator handed back is `_cwl`'s own, so each event passes through one
    # generator, not three.
    stats = stats if stats is not None else DecodeStats()
    if type(data) is not bytes:
        data = bytes(data)
    if data[:2] == GZIP_MAGIC:
        try:
            members = gunzip_members(data, max_size)
        except GzipError as exc:
            return iter((stats.dead(exc.reason, origin, data, detail=exc.detail),))
        return _iter_members(members, origin, stats)
    if len(data) > max_size:
        return iter((stats.dead("size exceeds the limit", origin, data, detail=f"more than {max_size} bytes"),))
    return _iter_members([data], origin, stats)


def decode_members(members: list[bytes], origin: str, stats: DecodeStats | None = None) -> list[Event | DeadLetter]:
    """Events of decompressed content: the gzip members of one blob (or the one plain blob)."""
    return list(_iter_members(members, origin, stats if stats is not None else DecodeStats()))


def _iter_members(members: list[bytes], origin: str, stats: DecodeStats) -> Iterator[Event | DeadLetter]:
    data = members[0] if len(members) == 1 else b"".join(members)
    if data[:3] == _BOM:  # written by some Windows tools; orjson refuses it
        data = data[3:]
    try:
        doc = _loads(data)
    except _JSONError as exc:
        return _unparsed(data, members, origin, stats, exc)
    if type(doc) is dict and ("logEvents" in doc or "messageType" in doc):
        return _cwl(doc, origin, stats)
    return iter(from_document(doc, origin, stats))


def _unparsed(
    data: bytes, members: list[bytes], origin: str, stats: DecodeStats, exc: Exception
) -> Iterator[Event | DeadLetter]:
    """Content that is not one JSON document: JSON lines, concatenated documents, or a dead letter."""
    if looks_like_json_lines(data):
        for number, line in enumerate(data.split(b"\n"), 1):
            yield from decode_line(line, f"{origin}:{number}", stats)
    elif len(members) > 1 and _each_json(members):
        # Concatenated gzip members of one document each, as Firehose delivers CloudWatch Logs records.
        for number, member in enumerate(members, 1):
            yield from from_document(_loads(member), f"{origin} member {number}", stats)
    elif not data.strip():
        yield stats.dead("empty input", origin, data)
    else:
        yield _not_json(data, origin, exc, stats)


def _each_json(members: list[bytes]) -> bool:
    try:
        for member in members:
            _loads(member)
    except _JSONError:
        return False
    return True


def decode_floor(data: bytes) -> int:
    """The benchmark baseline for a CloudWatch Logs record: gunzip, orjson.loads of the envelope and
    of each log event's message, nothing else. Returns the number of messages parsed."""
    loads = _loads
    doc = loads(zlib.decompress(data, 31) if data[:2] == GZIP_MAGIC else data)
    n = 0
    for log_event in doc["logEvents"]:
        loads(log_event["message"])
        n += 1
    return n
