"""The record processors of a replay: the live stages' processors, bounded to a time range.

Run by the replay's own MultiLangDaemons (`python -m consumers.replay_router`, `consumers.replay_stateful`)
with the environment of `consumers.common` plus:

- TRAILWARDEN_REPLAY_DIR: the run's directory; each processor writes `progress/<stage>-<shard>.json`
  (counts, how far it got, whether it is done) and `findings/<stage>-<shard>.jsonl` (every finding it
  raised, for the replay command's standard output). Never stdout: the daemon's protocol owns it.
- TRAILWARDEN_REPLAY_FROM, TRAILWARDEN_REPLAY_TO: the range, epoch seconds of arrival in the stream.
- TRAILWARDEN_REPLAY_RUN: the run id, which the end-of-input marker on the keyed stream carries.
- TRAILWARDEN_REPLAY_RULES: comma-separated rule ids to run (enabled or not); all enabled ones if unset.

Stage 1 keeps the records whose approximate arrival time is within the range and is done with its
shard at the first record past the end (or at the shard's tip: an empty read, or one at
MillisBehindLatest 0). It reports the largest event time it has seen (after its facts were acknowledged).

Stage 2 runs on event time only, and not on its own: live, the router shards move in step with the
wall clock, so a keyed shard's largest event time minus the allowed lateness is a safe watermark; in a
replay each router shard reads the past at its own pace, and a fact from a shard behind the others
would arrive after its timer had fired. So the keyed state never advances on what it sees alone
(`KeyedState.external_watermark`): the replay command puts watermark markers on every keyed shard, carrying the
smallest largest-event-time over the router shards still reading (every fact still to come is at most
the allowed lateness older than that), and the state advances to it minus the allowed lateness. When
every router shard is done, an end marker carries the replay's largest event time; the state moves
there and flushes its timers up to it, as `scan` does at the end of a file, publishes, and is done.

Findings are marked replayed. They are written to the processor's findings file (all of them), then
published behind the dedupe table (Firehose; SNS only when the replay alerts).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from consumers import common
from consumers.router import RouterProcessor
from consumers.sinks import FileSink, Publisher
from consumers.stateful import StatefulProcessor
from pipeline.finding import Finding
from pipeline.settings import ReplaySettings, SettingsError, Var
from pipeline.settings import Settings as EnvSettings
from pipeline.stateful.state import KeyedState

log = logging.getLogger("consumers.replay")

WRITE_EVERY = 0.5  # seconds between progress writes of a busy shard


MARKER_KEY = "trailwarden_replay"
END, WATERMARK = "end", "watermark"


def marker(run_id: str, kind: str, event_time: float | None = None) -> bytes:
    """A control record on the replay's keyed stream: END (the largest event time of the replay) or
    WATERMARK (the event time every router shard still reading has reached)."""
    return json.dumps({MARKER_KEY: run_id, "kind": kind, "time": event_time}, separators=(",", ":")).encode()


def end_marker(run_id: str, event_time: float | None = None) -> bytes:
    return marker(run_id, END, event_time)


def read_marker(data: bytes | None, run_id: str) -> tuple[str | None, float | None]:
    """(END or WATERMARK if this is one of this run's markers, else None; its event time). A fact is never
    one: facts have no such field."""
    if not data or not data.startswith(b'{"' + MARKER_KEY.encode()):
        return None, None
    try:
        doc = json.loads(data)
    except ValueError:
        return None, None
    if not isinstance(doc, dict) or doc.get(MARKER_KEY) != run_id or doc.get("kind") not in (END, WATERMARK):
        return None, None
    when = doc.get("time")
    valid = isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when)
    return doc["kind"], float(when) if valid else None


def event_time_only(state: KeyedState) -> KeyedState:
    """The state never advances its watermark on the facts it sees (see the module docstring): the
    replay's watermark markers move it, through `advance`."""
    state.external_watermark = True
    return state


def advance(state: KeyedState, watermark: float) -> list[Finding]:
    """Apply the facts and fire the timers due up to `watermark` minus the allowed lateness, as `scan`'s
    single state would once every event before it was seen."""
    return state.advance_to(watermark - state.lateness)


def select(arrivals_ms: Sequence[int | None], start: float, end: float) -> tuple[int, int, bool]:
    """The records of a batch within [start, end] by arrival time: (first, past the last, passed end).

    Records before `start` (AT_TIMESTAMP has one-second resolution) are skipped; the first record
    after `end` ends the shard, and nothing after it is taken. A record without an arrival time is
    taken (it cannot be placed, and dropping it could lose an event)."""
    first = 0
    while first < len(arrivals_ms) and _before(arrivals_ms[first], start):
        first += 1
    for i in range(first, len(arrivals_ms)):
        arrival = arrivals_ms[i]
        if arrival is not None and arrival / 1000.0 > end:
            return first, i, True
    return first, len(arrivals_ms), False


def _before(arrival_ms: int | None, start: float) -> bool:
    return arrival_ms is not None and arrival_ms / 1000.0 < start


def at_tip(millis_behind_latest: Any, batch_size: int) -> bool:
    """True when a read reached the shard's newest record: MillisBehindLatest 0 if the service gave it,
    else an empty read."""
    if isinstance(millis_behind_latest, int | float) and not isinstance(millis_behind_latest, bool):
        return millis_behind_latest <= 0
    return batch_size == 0


@dataclass
class Progress:
    """What one processor reports to the replay command (one small JSON file per shard)."""

    stage: str
    shard: str
    records: int = 0
    events: int = 0
    facts: int = 0
    findings: int = 0
    published: int = 0
    already_alerted: int = 0
    dead_letters: int = 0
    last_arrival: float | None = None  # epoch seconds of the last record taken (router)
    last_event_time: float | None = None  # the largest event time seen
    behind_latest_ms: int | None = None
    first_record_at: float | None = None  # wall clock when the first record in the range was taken
    done: bool = False
    reason: str = ""
    updated: float = 0.0

    def path(self, directory: Path) -> Path:
        return directory / "progress" / f"{self.stage}-{self.shard}.json"

    def write(self, directory: Path) -> None:
        """Atomically (rename), so the reader never sees half a file."""
        self.updated = time.time()
        target = self.path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(asdict(self)))
        os.replace(temporary, target)

    @classmethod
    def read(cls, path: Path) -> Progress | None:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return None


class Reporter:
    """A processor's progress file and findings file; findings are marked replayed and written to the
    findings file before they are published (so standard output shows those already alerted too)."""

    def __init__(self, publisher: Publisher, directory: Path, stage: str) -> None:
        self.publisher = publisher
        self.directory = directory
        self.progress = Progress(stage, "")
        self._file: FileSink | None = None
        self._written = 0.0

    @property
    def stats(self) -> Any:
        return self.publisher.stats

    def start(self, shard: str) -> None:
        self.progress.shard = shard
        self._file = FileSink(self.directory / "findings" / f"{self.progress.stage}-{shard}.jsonl")
        self.write(force=True)

    def publish(self, findings: Iterable[Finding]) -> list[Finding]:
        given = list(findings)
        for f in given:
            f.replayed = True
        if self._file is not None and given:
            self._file.deliver(given)
        fresh = self.publisher.publish(given)
        self.progress.findings += len(given)
        self.progress.published = self.publisher.stats.published
        self.progress.already_alerted = self.publisher.stats.suppressed
        return fresh

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or self.progress.done or now - self._written >= WRITE_EVERY:
            self._written = now
            try:
                self.progress.write(self.directory)
            except OSError as exc:  # progress is for display: never stop a shard for it
                log.warning("replay progress of %s not written: %s", self.progress.shard, exc)

    def finish(self, reason: str) -> None:
        if not self.progress.done:
            self.progress.done, self.progress.reason = True, reason
            self.write(force=True)
            log.info("replay %s %s done: %s", self.progress.stage, self.progress.shard, reason)


class _Batch:
    """A ProcessRecordsInput narrowed to some of its records."""

    def __init__(self, records: list[Any], source: Any) -> None:
        self.records = records
        self.checkpointer = source.checkpointer
        self.millis_behind_latest = getattr(source, "millis_behind_latest", None)


class _Timed:
    """A router stage that remembers the largest event time it was given."""

    def __init__(self, stage: Any) -> None:
        self.stage = stage
        self.max_time: float | None = None

    def process(self, event: Any) -> Any:
        t = event.time
        if self.max_time is None or t > self.max_time:
            self.max_time = t
        return self.stage.process(event)

    def take_errors(self) -> list[str]:
        return self.stage.take_errors()


class ReplayRouterProcessor(RouterProcessor):
    def __init__(self, *args: Any, start: float, end: float, reporter: Reporter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start, self.end = start, end
        self.reporter = reporter
        self.publisher = reporter  # type: ignore[assignment]
        self.stage = _Timed(self.stage)  # type: ignore[assignment]

    def initialize(self, initialize_input: Any) -> None:
        super().initialize(initialize_input)
        self.reporter.start(self.shard_id)

    def process_records(self, process_records_input: Any) -> None:
        progress = self.reporter.progress
        if progress.done:
            return  # past the range: read on by the daemon, ignored here
        records = process_records_input.records
        first, last, passed = select([getattr(r, "timestamp_millis", None) for r in records], self.start, self.end)
        taken = records[first:last]
        if taken:
            if progress.first_record_at is None:
                progress.first_record_at = time.time()
            super().process_records(_Batch(taken, process_records_input))
            arrival = getattr(taken[-1], "timestamp_millis", None)
            if isinstance(arrival, int | float):
                progress.last_arrival = arrival / 1000.0
        behind = getattr(process_records_input, "millis_behind_latest", None)
        progress.behind_latest_ms = behind if isinstance(behind, int) else None
        progress.records += len(taken)
        progress.events = self.counts["events"]
        progress.facts = self.counts["facts"]
        progress.dead_letters = self.counts["dead_letters"]
        progress.last_event_time = self.stage.max_time  # type: ignore[attr-defined]
        if passed:
            self.reporter.finish("passed the end of the range")
        elif at_tip(behind, len(records)):
            self.reporter.finish("reached the tip of the shard")
        else:
            self.reporter.write()

    def shard_ended(self, shard_ended_input: Any) -> None:
        super().shard_ended(shard_ended_input)
        self.reporter.finish("shard ended")


class ReplayStatefulProcessor(StatefulProcessor):
    """Event time only: facts are applied as the watermark passes them, never by the wall clock; the end
    marker flushes the timers up to the last event time seen."""

    def __init__(self, *args: Any, run_id: str, reporter: Reporter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_id = run_id
        self.reporter = reporter
        self.publisher = reporter  # type: ignore[assignment]

    def initialize(self, initialize_input: Any) -> None:
        super().initialize(initialize_input)
        self.reporter.start(self.shard_id)

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        progress = self.reporter.progress
        if not records or progress.done:
            return
        findings: list[Finding] = []
        ended, kept = False, 0
        run: list[Any] = []  # consecutive fact records, applied before the next marker
        for record in [*records, None]:
            kind, when = read_marker(_data(record), self.run_id) if record is not None else (None, None)
            if record is not None and kind is None:
                run.append(record)
                continue
            if run:
                findings += self._add(run)
                kept, run = kept + len(run), []
            if kind == WATERMARK and when is not None:
                findings += advance(self.state, when)
            elif kind == END:
                ended = True
                if when is not None:
                    findings += self.state.observe(when)
                findings += self.state.flush()
        self._log_errors()
        if findings:
            common.until_done(lambda: self.publisher.publish(findings), f"{self.shard_id}: publishing findings")
            self.counts["findings"] += len(findings)
        self.save()
        last = records[-1]
        common.checkpoint(process_records_input.checkpointer, last.sequence_number, last.sub_sequence_number)
        progress.records += kept
        progress.facts = self.counts["facts"]
        if self.state.max_time > float("-inf"):
            progress.last_event_time = self.state.max_time
        if ended:
            self.reporter.finish("end of the replayed input")
        else:
            self.reporter.write()


    def _add(self, records: list[Any]) -> list[Finding]:
        facts, dead = self._facts(records)
        if dead and self.dead_letters is not None:
            batch = f"{self.shard_id}/{records[0].sequence_number}"
            common.until_done(lambda: self.dead_letters.deliver(dead, batch), f"{self.shard_id}: dead letters")
            self.reporter.progress.dead_letters += len(dead)
        return self.state.add(facts)


def _data(record: Any) -> bytes | None:
    with contextlib.suppress(Exception):
        return record.binary_data
    return None


# --- built from the environment by the daemon's child processes -----------------------------------


def _replay() -> ReplaySettings:
    replay = EnvSettings().replay
    if replay is None:
        raise SettingsError(f"a replay's processor needs {Var.REPLAY_RUN} and the other replay variables")
    return replay


def build_router() -> ReplayRouterProcessor:
    from consumers.sinks.deadletter import S3DeadLetters
    from consumers.sinks.kinesis import KinesisWriter
    from pipeline.config import Config
    from pipeline.pack import bind_pack
    from pipeline.stages import RouterStage

    settings = common.Settings.from_env()
    r, t = settings.resources, settings.target
    replay = _replay()
    reporter = Reporter(common.publisher(settings), replay.directory, "router")
    return ReplayRouterProcessor(
        RouterStage(bind_pack(Config.load(), replay.rules or None, overrides=common.overrides())),
        reporter,
        KinesisWriter(t.client("kinesis"), r["KeyedStreamName"]),
        S3DeadLetters(t.client("s3"), r["StateBucketName"], r["RouterAppName"]),
        stream=r.get("TrailStreamName", "trail"),
        start=replay.start,
        end=replay.end,
        reporter=reporter,
    )


def build_stateful() -> ReplayStatefulProcessor:
    from consumers.sinks.deadletter import S3DeadLetters
    from consumers.snapshots import S3SnapshotStore
    from pipeline.config import Config
    from pipeline.pack import bind_pack

    settings = common.Settings.from_env()
    r, t = settings.resources, settings.target
    app = r["StatefulAppName"]
    replay = _replay()
    reporter = Reporter(common.publisher(settings), replay.directory, "stateful")
    factory = bind_pack(Config.load(), replay.rules or None, overrides=common.overrides()).new_state
    return ReplayStatefulProcessor(
        lambda: event_time_only(factory()),
        reporter,
        S3SnapshotStore(t.client("s3"), r["StateBucketName"], app),
        S3DeadLetters(t.client("s3"), r["StateBucketName"], app),
        kinesis=t.client("kinesis"),
        stream=r["KeyedStreamName"],
        run_id=replay.run_id,
        reporter=reporter,
    )

