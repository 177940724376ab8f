"""How a record processor tells its progress (`consumers.progress.Progress`): a log line every half minute
(live), a live router's progress markers on the keyed stream, which stage 2 moves its watermark by, or a
replay's progress file, which the replay command reads to know when each shard is done."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

from consumers import markers
from consumers.progress import Progress

log = logging.getLogger("consumers")

LOG_EVERY = 30.0  # seconds between a live processor's count lines
WRITE_EVERY = 0.5  # seconds between progress writes of a busy replay shard
MARK_EVERY = 1.0  # seconds between a live router shard's progress markers


class Report(Protocol):
    def open(self, progress: Progress) -> None: ...

    def update(self, progress: Progress) -> None:
        """After each batch (cheap: it decides itself when to say something)."""
        ...

    def finish(self, progress: Progress, reason: str) -> None:
        """The shard is done (its end, or a replay's end): `progress.done` is set."""
        ...


class LogReport:
    """Live: the counts at INFO, at most every LOG_EVERY seconds."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def open(self, progress: Progress) -> None:
        pass

    def update(self, progress: Progress) -> None:
        if time.monotonic() - self._last >= LOG_EVERY:
            self._last = time.monotonic()
            log.info("%s %s: %s", progress.stage.value, progress.shard, progress.counts())

    def finish(self, progress: Progress, reason: str) -> None:
        progress.done, progress.reason = True, reason
        log.info("%s %s done (%s): %s", progress.stage.value, progress.shard, reason, progress.counts())


class ProgressFile:
    """A replay: `progress/<stage>-<shard>.json` in the run's directory, rewritten at most every WRITE_EVERY
    seconds, and at once when the shard is done."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._written = 0.0

    def open(self, progress: Progress) -> None:
        self._write(progress)

    def update(self, progress: Progress) -> None:
        if time.monotonic() - self._written >= WRITE_EVERY:
            self._write(progress)

    def finish(self, progress: Progress, reason: str) -> None:
        if not progress.done:
            progress.done, progress.reason = True, reason
            self._write(progress)
            log.info("replay %s %s done: %s", progress.stage.value, progress.shard, reason)

    def _write(self, progress: Progress) -> None:
        self._written = time.monotonic()
        try:
            progress.write(self.directory)
        except OSError as exc:  # progress is for display: never stop a shard for it
            log.warning("replay progress of %s not written: %s", progress.shard, exc)


class EachShardWriter(Protocol):
    def put_on_each_shard(self, data: bytes, key: str) -> None: ...


class KeyedProgress(LogReport):
    """A live router: the counts in the log, and after a batch, at most every MARK_EVERY seconds (and when the
    shard ends), a progress marker (`consumers.markers.Progress`) on every keyed shard. The router calls
    `update` only after the batch's facts were acknowledged, so each marker follows the facts it speaks of. A
    marker that cannot be put is tried again after the next batch: until then stage 2 waits, which is safe."""

    def __init__(self, writer: EachShardWriter) -> None:
        super().__init__()
        self.writer = writer
        self._marked = -float("inf")

    def update(self, progress: Progress) -> None:
        super().update(progress)
        if time.monotonic() - self._marked >= MARK_EVERY:
            self._mark(progress)

    def finish(self, progress: Progress, reason: str) -> None:
        self._mark(progress)
        super().finish(progress, reason)

    def _mark(self, progress: Progress) -> None:
        if progress.read_to is None:
            return
        data = markers.encode_progress(
            markers.Progress(progress.shard, progress.read_to, progress.last_arrival, progress.last_event_time)
        )
        try:
            self.writer.put_on_each_shard(data, f"progress-{progress.shard}")
        except Exception as exc:
            log.warning("router %s: progress marker not put: %s", progress.shard, exc)
            return
        self._marked = time.monotonic()
