"""Event-time order across many input files with bounded memory, for `scan` and `backfill`.

The stateful stage tolerates events up to the allowed lateness out of order; reading a CloudTrail
archive in path order (account after account) delivers one account's events hours after another's.
So inputs are read as streams merged by event time:

- streams: CloudTrail archive files (`AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<name>`)
  form one stream per (org, account, region), read one file at a time in (day, file name) order:
  CloudTrail file names carry the delivery time. Every other file belongs to the stream of the input
  it was named by (a file, a directory, standard input); such a stream reads its files in path order
  and merges up to `ROOT_WINDOW` of them at a time by event time, so a few files that overlap in time
  (or a corpus split across files) still come out in order.
- within a file: events are sorted by event time, dead letters first, if the file fits the decode size
  cap (as decoded whole or, for JSON lines, decompressed). Standard input, and JSON lines beyond the
  cap (from the first line over it on), keep their order.
- across streams: a k-way merge by event time (`heapq.merge`).

A dead letter has no event time: it is keyed with the last event time of its file so it passes
through at once and never holds the merge back.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Generic, TypeVar

from pipeline.decode import DeadLetter
from pipeline.event import Event
from pipeline.sources import Reader, Source

Item = Event | DeadLetter
Keyed = tuple[float, Item]
T = TypeVar("T")

_ARCHIVE = re.compile(
    r"(?:^|/)AWSLogs/(?:(?P<org>[^/]+)/)?(?P<account>[^/]+)/CloudTrail/(?P<region>[^/]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<name>[^/]+)$"
)
_NO_TIME = float("-inf")
ROOT_WINDOW = 8  # files of one non-archive input merged at a time
_first = itemgetter(0)


@dataclass(frozen=True, slots=True)
class ArchivePath:
    """Where a CloudTrail log file sits in the S3 archive layout."""

    org: str  # "" for a trail of one account
    account: str
    region: str
    day: date
    name: str

    @property
    def stream(self) -> tuple[str, str, str]:
        return (self.org, self.account, self.region)

    @property
    def order(self) -> tuple[date, str]:
        return (self.day, self.name)


def archive_path(path: str) -> ArchivePath | None:
    """The archive coordinates of an S3 key or a local path (`/` separated), or None if it is not one."""
    m = _ARCHIVE.search(path)
    if m is None:
        return None
    try:
        day = date(int(m["y"]), int(m["m"]), int(m["d"]))
    except ValueError:
        return None
    return ArchivePath(m["org"] or "", m["account"], m["region"], day, m["name"])


@dataclass
class Stream(Generic[T]):
    """Files read one after another (merged `window` at a time); `key` names the stream."""

    key: tuple[str, ...]
    files: list[T] = field(default_factory=list)
    window: int = 1


def group(
    files: Iterable[T], path_of: Callable[[T], str | None], root_of: Callable[[T], Hashable], window: int = 1
) -> list[Stream[T]]:
    """Files in streams: archive files per (org, account, region) in (day, name) order; any other file in its
    root's stream, in the given order, merged `window` at a time. Streams come in order of their first file."""
    archive: dict[tuple[str, str, str], list[tuple[tuple[date, str], T]]] = {}
    roots: dict[Hashable, Stream[T]] = {}
    order: list[tuple[str, Hashable]] = []
    for f in files:
        path = path_of(f)
        where = archive_path(path) if path is not None else None
        if where is not None:
            if where.stream not in archive:
                archive[where.stream] = []
                order.append(("archive", where.stream))
            archive[where.stream].append((where.order, f))
        else:
            root = root_of(f)
            if root not in roots:
                roots[root] = Stream(("root", str(root)), window=window)
                order.append(("root", root))
            roots[root].files.append(f)
    out: list[Stream[T]] = []
    for kind, key in order:
        if kind == "root":
            out.append(roots[key])
        else:
            members = sorted(archive[key], key=_first)  # type: ignore[index]
            out.append(Stream(("archive", *key), [f for _, f in members]))  # type: ignore[misc]
    return out


def sort_file(items: list[Item]) -> list[Item]:
    """One file's items: dead letters first, then events by event time (stable). Sorts `items` in place
    when it holds no dead letter."""
    dead = [i for i in items if type(i) is DeadLetter]
    if not dead:
        items.sort(key=_time)
        return items
    events = [i for i in items if type(i) is not DeadLetter]
    events.sort(key=_time)
    return dead + events


def _time(item: Item) -> float:
    return item.time  # type: ignore[union-attr]


def keyed(items: Iterable[Item], last: float = _NO_TIME) -> Iterator[Keyed]:
    """Items with their merge key: an event's time; for a dead letter the last event time before it."""
    for item in items:
        if type(item) is DeadLetter:
            yield last, item
        else:
            last = item.time  # type: ignore[union-attr]
            yield last, item


def windowed(files: Iterable[Iterable[Item]], window: int = 1) -> Iterator[Keyed]:
    """A stream's items: its files in order, `window` files merged at a time by event time (ties go to the
    earlier file). With a window of 1, file after file."""
    if window <= 1:
        last = _NO_TIME
        for items in files:
            for key, item in keyed(items, last):
                last = key
                yield key, item
        return
    pending = iter(files)
    heap: list[tuple[float, int, Item, Iterator[Keyed]]] = []
    seq = 0
    last = _NO_TIME

    def admit() -> bool:
        nonlocal seq
        for items in pending:
            it = keyed(items, last)
            head = next(it, None)
            if head is not None:
                heapq.heappush(heap, (head[0], seq, head[1], it))
                seq += 1
                return True
        return False

    while len(heap) < window and admit():
        pass
    while heap:
        key, n, item, it = heap[0]
        last = max(last, key)
        yield key, item
        head = next(it, None)
        if head is None:
            heapq.heappop(heap)
            admit()
        else:
            heapq.heapreplace(heap, (head[0], n, head[1], it))


def merge(streams: Sequence[Iterable[Keyed]]) -> Iterator[Item]:
    """The items of all streams by merge key; ties go to the earlier stream."""
    if len(streams) == 1:
        for _, item in streams[0]:
            yield item
        return
    for _, item in heapq.merge(*streams, key=_first):
        yield item


def read_file(reader: Reader, source: Source) -> Iterator[Item]:
    """One source's items, sorted by event time if it fits the decode size cap (see the module docstring)."""
    items = reader.read(source)
    first = next(items, None)
    if first is None:
        return
    whole = [first]
    if reader.streamed:
        if source.path is None:  # standard input may never end: pass it on as it comes
            yield first
            yield from items
            return
        for item in items:
            whole.append(item)
            if reader.streamed_bytes > reader.max_size:
                yield from whole  # too large to hold: in file order from here on
                yield from items
                return
    else:
        whole.extend(items)
    yield from sort_file(whole)


def _source_path(source: Source) -> str | None:
    return source.path.as_posix() if source.path is not None else None


def ordered(reader: Reader, window: int = ROOT_WINDOW) -> Iterator[Item]:
    """The reader's sources in event-time order across streams (see the module docstring)."""
    streams = group(reader.sources, _source_path, lambda s: s.root, window)
    yield from merge([windowed((read_file(reader, f) for f in s.files), s.window) for s in streams])
