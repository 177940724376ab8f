"""Input sources for offline scans: files, directories (recursively), `.gz` files and `-` for stdin.

`resolve()` checks every path before anything is read, so a typo fails fast with a clear message.
`Reader.items()` decodes each source with `pipeline.decode`: JSON lines (gzip or not, as the first
64 KB show) are streamed line by line at any size; any other file up to the size limit is decoded
whole (any transport); a larger one that is not JSON lines is a dead letter. `Reader.bytes_done` and
`Reader.total` feed the progress bar. `Source.root` says which command-line input a file came from
(`pipeline.ordering` groups files into streams by it).
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from pipeline.decode import (
    GZIP_MAGIC,
    MAX_DECOMPRESSED,
    OVERSIZE,
    DeadLetter,
    DecodeStats,
    GzipError,
    decode,
    decode_line,
    decode_members,
    gunzip_members,
    looks_like_json_lines,
)
from pipeline.event import Event

STDIN = "-"
_PROBE_LINES = 5
_PROBE_BYTES = 64 * 1024


class SourceError(Exception):
    """A path that cannot be scanned; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Source:
    """One input: a file (path) or stdin (path None); `size` on disk if known; `root` the index of the
    command-line input it was found under."""

    path: Path | None
    size: int | None
    root: int = 0

    @property
    def origin(self) -> str:
        return str(self.path) if self.path is not None else "<stdin>"


def _file_source(path: Path, root: int = 0) -> Source:
    try:
        st = path.stat()
    except OSError as exc:
        raise SourceError(
            f"{path}: cannot read it ({exc.strerror or exc}); check the path and its permissions"
        ) from None
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: permission denied; make it readable (chmod +r) or run as a user who can read it")
    return Source(path, st.st_size if path.is_file() else None, root)


def _walk(root: Path, index: int = 0) -> Iterator[Source]:
    """Every non-hidden file under `root`, depth first in sorted order."""
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        if errors:
            break
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield _file_source(Path(dirpath) / name, index)
    if errors:
        exc = errors[0]
        raise SourceError(
            f"{exc.filename or root}: cannot list the directory ({exc.strerror or exc}); check its permissions"
        )


def resolve(paths: Sequence[str]) -> list[Source]:
    """The sources named by `paths`, checked up front; raises SourceError."""
    if not paths:
        raise SourceError("no input given; name files or directories, or - to read standard input")
    sources: list[Source] = []
    for index, name in enumerate(paths):
        if name == STDIN:
            sources.append(Source(None, None, index))
            continue
        path = Path(name)
        if not path.exists() and not path.is_symlink():
            raise SourceError(f"{name}: no such file or directory; check the path")
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                raise SourceError(f"{name}: permission denied on the directory; check its permissions")
            sources.extend(_walk(path, index))
        else:
            sources.append(_file_source(path, index))
    return sources


class _Tracked(io.RawIOBase):
    """A raw stream that serves `prefix` first, then `fh`, counting bytes read from `fh` into `reader`."""

    def __init__(self, prefix: bytes, fh: BinaryIO, reader: Reader) -> None:
        self._prefix = prefix
        self._fh = fh
        self._reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._fh.read(len(view))
        self._reader.bytes_done += len(data)
        view[: len(data)] = data
        return len(data)


def _read_up_to(fh: BinaryIO, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = fh.read(min(n, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class Reader:
    """Decodes sources into events and dead letters, tracking progress in raw bytes read."""

    def __init__(
        self, sources: Sequence[Source], stats: DecodeStats | None = None, max_size: int = MAX_DECOMPRESSED
    ) -> None:
        self.sources = list(sources)
        self.stats = stats if stats is not None else DecodeStats()
        self.max_size = max_size
        self.bytes_done = 0
        # Whether the source whose first item was just yielded is streamed as JSON lines (not decoded whole),
        # and how many decompressed bytes of lines the streamed source has given so far.
        self.streamed = False
        self.streamed_bytes = 0
        sizes = [s.size for s in self.sources if s.size is not None]
        self.total: int | None = sum(sizes) if len(sizes) == len(self.sources) else None

    def items(self) -> Iterator[Event | DeadLetter]:
        for source in self.sources:
            yield from self.read(source)

    def read(self, source: Source) -> Iterator[Event | DeadLetter]:
        """Events and dead letters of one source; raises SourceError if it cannot be read."""
        try:
            fh: BinaryIO = source.path.open("rb") if source.path is not None else sys.stdin.buffer
        except OSError as exc:
            raise SourceError(
                f"{source.origin}: cannot open it ({exc.strerror or exc}); check the path and its permissions"
            ) from None
        try:
            yield from self._decode(fh, source.origin)
        except OSError as exc:
            raise SourceError(f"{source.origin}: read error ({exc.strerror or exc})") from None
        finally:
            if source.path is not None:
                fh.close()

    def _decode(self, fh: BinaryIO, origin: str) -> Iterator[Event | DeadLetter]:
        self.streamed = False
        limit = self.max_size
        head = _read_up_to(fh, min(_PROBE_BYTES, limit + 1))
        self.bytes_done += len(head)
        gz = head[:2] == GZIP_MAGIC
        if looks_like_json_lines(_plain_prefix(head) if gz else head):
            # JSON lines are streamed whatever their size: bounded memory, and progress follows the reads.
            yield from self._stream(head, fh, gz, origin)
            return
        rest = _read_up_to(fh, limit + 1 - len(head))
        raw = head + rest
        if len(raw) <= limit:
            if not gz:
                yield from decode(raw, origin, self.stats, limit)
                self.bytes_done += len(rest)
                return
            try:
                members = gunzip_members(raw, limit)
            except GzipError as exc:
                if exc.reason != OVERSIZE:
                    self.bytes_done += len(rest)
                    yield self.stats.dead(exc.reason, origin, raw, detail=exc.detail)
                    return
            else:
                yield from decode_members(members, origin, self.stats)
                self.bytes_done += len(rest)
                return
        # Too large to hold: stream it, as JSON lines if it is (the first lines tell).
        self.bytes_done += len(rest)
        yield from self._stream(raw, fh, gz, origin)

    def _stream(self, prefix: bytes, fh: BinaryIO, gz: bool, origin: str) -> Iterator[Event | DeadLetter]:
        self.streamed = True
        self.streamed_bytes = 0
        stream: io.BufferedIOBase = io.BufferedReader(_Tracked(prefix, fh, self), 1 << 20)
        if gz:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        yield from self._lines(stream, origin)

    def _lines(self, stream: io.BufferedIOBase, origin: str) -> Iterator[Event | DeadLetter]:
        limit, stats = self.max_size, self.stats
        number = 0
        try:
            head: list[bytes] = []  # the first lines, kept until the content is known to be JSON lines
            while len([h for h in head if h.strip()]) < _PROBE_LINES:
                line = stream.readline(limit + 1)
                if not line:
                    break
                head.append(line)
            if not _any_object(head):
                yield stats.dead(
                    "too large to decode whole and not JSON lines",
                    origin,
                    b"".join(head)[:4096],
                    detail=f"more than {limit} bytes",
                )
                return
            lines = itertools.chain(head, iter(lambda: stream.readline(limit + 1), b""))
            for line in lines:
                number += 1
                self.streamed_bytes += len(line)
                if len(line) > limit and not line.endswith(b"\n"):
                    yield stats.dead("line too long", f"{origin}:{number}", line, detail=f"more than {limit} bytes")
                    while line and not line.endswith(b"\n"):
                        line = stream.readline(limit + 1)
                    continue
                yield from decode_line(line, f"{origin}:{number}", stats)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            reason = "truncated gzip" if isinstance(exc, EOFError) else "corrupt gzip"
            yield stats.dead(reason, f"{origin}:{number + 1}", b"", detail=str(exc))


def _plain_prefix(head: bytes) -> bytes:
    """The start of the decompressed content of gzip data (empty if it cannot be read)."""
    try:
        return zlib.decompressobj(31).decompress(head, _PROBE_BYTES)
    except zlib.error:
        return b""


def _any_object(lines: list[bytes]) -> bool:
    """True if one of `lines` is a JSON object by itself."""
    for line in lines:
        if line.strip():
            try:
                if type(orjson.loads(line)) is dict:
                    return True
            except orjson.JSONDecodeError:
                continue
    return False
