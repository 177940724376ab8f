"""Local sinks: findings as JSON lines on a stream (stdout for commands) or appended to a file.

The KCL record processors must never write to stdout (the daemon's protocol owns it); they use
`FileSink`, which flushes and fsyncs before acknowledging.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from consumers.sinks.base import line
from consumers.sinks.retry import SinkUnavailable
from pipeline.finding import Finding


class StreamSink:
    """Writes one JSON line per finding to an open text or binary stream."""

    name = "stream"

    def __init__(self, stream: IO) -> None:
        self.stream = stream

    def deliver(self, findings: Sequence[Finding]) -> None:
        data = b"".join(line(f) for f in findings)
        try:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                self.stream.flush()
                buffer.write(data)
                buffer.flush()
            elif "b" in getattr(self.stream, "mode", "b"):
                self.stream.write(data)
            else:
                self.stream.write(data.decode())
            self.stream.flush()
        except (OSError, ValueError) as exc:
            raise SinkUnavailable(f"stream sink: {exc}") from exc


class FileSink:
    """Appends one JSON line per finding to `path` (created with its directory), durably."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def deliver(self, findings: Sequence[Finding]) -> None:
        if not findings:
            return
        data = b"".join(line(f) for f in findings)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.path, "ab") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise SinkUnavailable(f"file sink {self.path}: {exc}") from exc
