"""Backfill: a date range of the CloudTrail S3 archive (or a local copy of it), in event-time order.
The archive is read through a `Store`: a local directory here, the bucket itself in `consumers.archive`.

Listing never walks the whole bucket: the account and region folders are found with delimited
listings under `AWSLogs/` (`AWSLogs/<account>/CloudTrail/<region>/`, organization trails
`AWSLogs/<org-id>/<account>/CloudTrail/<region>/`), then each day prefix `YYYY/MM/DD/` from the first
day of the range through the day after its last (CloudTrail delivers a file up to about 15 minutes
after its events, into the folder of the delivery day) is listed on its own, in parallel.

Files are downloaded, decoded, cut to the range and sorted by a thread pool; each account-region is
one stream (`pipeline.ordering`) holding its current file and at most `ahead` more, and the streams
are merged by event time for the detector. With a `Router` (`pipeline.routed`), the threads only
download: worker processes decode each file and run stage 1 on it, on every core, and the merge passes
on, per event, a `Routed` (its time, findings and facts) or, for an event that gave neither, its time
alone, for the detector's stage 2.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from pipeline.decode import MAX_DECOMPRESSED, DeadLetter, DecodeStats, decode
from pipeline.engine import EngineStats
from pipeline.ordering import Item, Stream, group, merge, sort_file, windowed
from pipeline.routed import Routed, RoutedFile, Router, add_stats

log = logging.getLogger(__name__)

AWSLOGS = "AWSLogs"
TRAIL_DIR = "CloudTrail"
LATE_DELIVERY = timedelta(days=1)  # a day folder holds files delivered that day, events up to ~15 min older
_LEVELS = 3  # AWSLogs/ -> [org-id/] -> account/ -> CloudTrail/


@dataclass(frozen=True)
class TimeRange:
    """Event times from `start` through `end` (epoch seconds, both included)."""

    start: float
    end: float

    def __contains__(self, t: float) -> bool:
        return self.start <= t <= self.end

    def days(self) -> list[date]:
        """The day folders to list: the range's days and the day after (late deliveries)."""
        first = datetime.fromtimestamp(self.start, UTC).date()
        last = datetime.fromtimestamp(self.end, UTC).date() + LATE_DELIVERY
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def parse_time(text: str, *, end: bool = False) -> float:
    """Epoch seconds of `YYYY-MM-DD` (its first second, or with `end` its last) or an ISO 8601 time
    (UTC unless it says otherwise). Raises ValueError."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            return (day + timedelta(days=1)).timestamp() - 1e-6 if end else day.timestamp()
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time (YYYY-MM-DDTHH:MM:SSZ)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_range(start: str, end: str | None = None, now: Callable[[], float] | None = None) -> TimeRange:
    """The range `--from start --to end` (end defaults to now). Raises ValueError."""
    first = parse_time(start)
    last = parse_time(end, end=True) if end else (now or _now)()
    if last < first:
        raise ValueError(f"--to {end} is before --from {start}")
    return TimeRange(first, last)


def _now() -> float:
    return datetime.now(UTC).timestamp()


class Store(Protocol):
    """A tree of objects addressed by `/`-separated keys: an S3 bucket or a local directory."""

    def dirs(self, prefix: str) -> list[str]:
        """The child "folders" of `prefix` (each ending in `/`)."""
        ...

    def files(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of the objects directly under `prefix`."""
        ...

    def get(self, key: str) -> bytes: ...

    def origin(self, key: str) -> str: ...


class LocalStore:
    """A directory laid out like the bucket (hidden entries skipped)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.list_calls = 0

    def _entries(self, prefix: str) -> list[os.DirEntry[str]]:
        self.list_calls += 1
        try:
            with os.scandir(self.root / prefix) as it:
                return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def dirs(self, prefix: str) -> list[str]:
        return [f"{prefix}{e.name}/" for e in self._entries(prefix) if e.is_dir()]

    def files(self, prefix: str) -> list[tuple[str, int]]:
        return [(f"{prefix}{e.name}", e.stat().st_size) for e in self._entries(prefix) if e.is_file()]

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def origin(self, key: str) -> str:
        return str(self.root / key)


def local_location(path: Path) -> tuple[LocalStore, str]:
    """A local directory as (store, prefix): rooted above its `AWSLogs` component if it has one."""
    parts = path.resolve().parts
    if AWSLOGS in parts:
        i = len(parts) - 1 - parts[::-1].index(AWSLOGS)
        return LocalStore(Path(*parts[:i])), "/".join(parts[i:]) + "/"
    return LocalStore(path), ""


def parse_s3(location: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`. Raises ValueError."""
    rest = location[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"{location}: no bucket; use s3://BUCKET or s3://BUCKET/PREFIX")
    return bucket, normalize(prefix)


def normalize(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def region_prefixes(store: Store, prefix: str) -> list[str]:
    """Every `.../CloudTrail/<region>/` at or below `prefix` (the bucket, AWSLogs/, an org, an account,
    its CloudTrail/ folder or one region). Raises ValueError for a prefix below a region."""
    prefix = normalize(prefix)
    parts = prefix.rstrip("/").split("/") if prefix else []
    if AWSLOGS not in parts:
        prefix, parts = f"{prefix}{AWSLOGS}/", [*parts, AWSLOGS]
    rest = parts[len(parts) - 1 - parts[::-1].index(AWSLOGS) + 1 :]
    if TRAIL_DIR in rest:
        depth = len(rest) - rest.index(TRAIL_DIR)
        if depth == 1:
            return store.dirs(prefix)
        if depth == 2:
            return [prefix]
        raise ValueError(
            f"{prefix}: below a region folder; name the bucket, AWSLogs/, an account or a region "
            "(the days come from --from/--to)"
        )
    found: list[str] = []
    frontier = [prefix]
    for _ in range(_LEVELS - len(rest)):
        deeper: list[str] = []
        for folder in frontier:
            for child in store.dirs(folder):
                name = child.rstrip("/").rsplit("/", 1)[-1]
                if name == TRAIL_DIR:
                    found.extend(store.dirs(child))
                elif not name.startswith(TRAIL_DIR):  # CloudTrail-Digest/, CloudTrail-Insight/: no API events
                    deeper.append(child)
        frontier = deeper
    return sorted(found)


@dataclass
class Loaded:
    """One file, downloaded and decoded: its items in the range (sorted), and what was counted."""

    key: str
    size: int
    items: list[Item]
    stats: DecodeStats
    events: int = 0
    outside: int = 0
    failed: bool = False
    routed: RoutedFile | None = None  # with a Router: the file after stage 1 (and no `items`)


@dataclass
class BackfillStats:
    files_total: int = 0
    files: int = 0
    bytes: int = 0
    outside_range: int = 0
    download_errors: int = 0
    streams: int = 0
    listings: int = 0
    last_time: float | None = None
    decode: DecodeStats = field(default_factory=DecodeStats)
    stage1: EngineStats = field(default_factory=EngineStats)  # with a Router: its workers' stage-1 counts
    facts_out: int = 0
    worker_cpu: dict[int, float] = field(default_factory=dict)  # with a Router: CPU seconds per worker process

    def day(self) -> str:
        """The day of the latest event passed on, for progress."""
        return datetime.fromtimestamp(self.last_time, UTC).strftime("%Y-%m-%d") if self.last_time else "-"


class Backfill:
    """The archive under `prefix` in `store`, cut to `window`, as one event-time ordered iterator of items.

    `plan()` lists (in parallel), `items()` downloads and decodes (in parallel) while the caller consumes.
    Use it as a context manager so the thread pool is shut down.
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        window: TimeRange,
        *,
        downloads: int = 8,
        max_size: int = MAX_DECOMPRESSED,
        ahead: int = 1,
        router: Router | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.window = window
        self.max_size = max_size
        self.ahead = max(0, ahead)
        self.stats = BackfillStats()
        self.pool = ThreadPoolExecutor(max_workers=max(1, downloads), thread_name_prefix="backfill")
        self.streams: list[Stream[tuple[str, int]]] = []
        self.router = router

    def __enter__(self) -> Backfill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.router is not None:
            self.router.close()

    def plan(self) -> list[Stream[tuple[str, int]]]:
        """List the region folders, then each day folder of the range: the files, in streams."""
        regions = region_prefixes(self.store, self.prefix)
        days = self.window.days()
        folders = [f"{region}{day:%Y/%m/%d}/" for region in regions for day in days]
        listed = list(self.pool.map(self.store.files, folders))
        files = [f for chunk in listed for f in chunk]
        self.streams = group(files, lambda f: f[0], lambda f: "other")
        self.stats.files_total = len(files)
        self.stats.streams = len(self.streams)
        self.stats.listings = len(folders)
        return self.streams

    def items(self) -> Iterator[Item | Routed | float]:
        """Events in the range and dead letters, by event time across account-regions. With a `Router`,
        each event after stage 1: a `Routed` if it gave findings or facts, else its time."""
        if not self.streams and not self.stats.files_total:
            self.plan()
        feeds = [_Prefetch(stream.files, self._submit, self.ahead) for stream in self.streams]
        if self.router is not None:
            yield from merge([self._routed(feed) for feed in feeds])  # type: ignore[misc]
        else:
            yield from merge([windowed(self._counted(feed), 1) for feed in feeds])

    def _routed(self, feed: _Prefetch) -> Iterator[tuple[float, Routed | float | DeadLetter]]:
        """One stream's files after stage 1, keyed like `ordering.windowed` keys items (a dead letter with
        the last event time before it)."""
        last = float("-inf")
        for loaded in self._loaded(feed):
            routed = loaded.routed
            if routed is None:  # not downloaded: a dead letter
                for item in loaded.items:
                    yield last, item  # type: ignore[misc]
                continue
            for dead in routed.dead:
                yield last, dead
            if routed.times:
                yield from routed.keyed()
                last = routed.times[-1]

    def _submit(self, f: tuple[str, int]) -> Future[Loaded]:
        return self.pool.submit(self.load, *f)

    def _counted(self, feed: _Prefetch) -> Iterator[list[Item]]:
        for loaded in self._loaded(feed):
            yield loaded.items

    def _loaded(self, feed: _Prefetch) -> Iterator[Loaded]:
        """The feed's files, counted as they are passed on."""
        stats = self.stats
        for loaded in feed:
            stats.files += 1
            stats.bytes += loaded.size
            stats.outside_range += loaded.outside
            stats.download_errors += loaded.failed
            stats.decode.dead_letters.update(loaded.stats.dead_letters)
            stats.decode.skipped.update(loaded.stats.skipped)
            if loaded.routed is not None:
                add_stats(stats.stage1, [loaded.routed.stage1])
                stats.facts_out += loaded.routed.facts_out
                cpu = stats.worker_cpu
                cpu[loaded.routed.worker] = max(cpu.get(loaded.routed.worker, 0.0), loaded.routed.worker_cpu)
            yield loaded

    def load(self, key: str, size: int = 0) -> Loaded:
        """Download and decode one file; events outside the range are dropped (counted). Never raises."""
        stats = DecodeStats()
        origin = self.store.origin(key)
        try:
            data = self.store.get(key)
        except Exception as exc:  # a file gone since the listing, access denied, retries exhausted
            log.warning("cannot download %s: %s", origin, exc)
            return Loaded(key, size, [stats.dead("cannot download", origin, b"", detail=str(exc))], stats, failed=True)
        window = self.window
        if self.router is not None:
            routed: RoutedFile = self.router.submit(data, origin, window.start, window.end, self.max_size).result()
            return Loaded(key, routed.size, [], routed.decode, routed.events, routed.outside, routed=routed)
        kept: list[Item] = []
        events = outside = 0
        for item in decode(data, origin, stats, self.max_size):
            if type(item) is DeadLetter:
                kept.append(item)
            elif item.time in window:  # type: ignore[union-attr]
                kept.append(item)
                events += 1
            else:
                outside += 1
        return Loaded(key, len(data), sort_file(kept), stats, events, outside)


class _Prefetch:
    """One stream's files, loaded by the pool: the current one and up to `ahead` more in flight."""

    def __init__(
        self, files: Sequence[tuple[str, int]], submit: Callable[[tuple[str, int]], Future[Loaded]], ahead: int
    ) -> None:
        self._files = iter(files)
        self._submit = submit
        self._queue: deque[Future[Loaded]] = deque()
        for _ in range(ahead + 1):  # submitted now, so every stream's first files load in parallel
            self._more()

    def _more(self) -> None:
        f = next(self._files, None)
        if f is not None:
            self._queue.append(self._submit(f))

    def __iter__(self) -> Iterator[Loaded]:
        while self._queue:
            loaded = self._queue.popleft().result()
            yield loaded
            self._more()
