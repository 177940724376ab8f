"""Status lines on stderr for long commands: `Display` (backfill, replay) and `Progress`, the scan's
bytes done/total and events/s.

`Progress` shows only when stderr is a terminal and the input is large (more than 5 MB) or the scan has run
for 2 seconds; redrawn at most every 0.2 s; erased when done. A no-op otherwise.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

LARGE_INPUT = 5 * 1024 * 1024
SLOW_AFTER = 2.0
REDRAW_EVERY = 0.2
_WIDTH = 24


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class StatusLine:
    """One line on a terminal, redrawn in place and erased before other output (scan, backfill, replay)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._next = 0.0
        self._shown = False

    def draw(self, text: str) -> None:
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line (before other output reaches the terminal); the next update redraws it."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
            self._next = 0.0


class Display(StatusLine):
    """A command's status line: redrawn in place on a terminal (at most every REDRAW_EVERY); elsewhere one
    line every `lines_every` seconds, or nothing when it is None. `enabled` (default: when there is
    something to show) turns it off for --quiet."""

    def __init__(
        self, enabled: bool | None = None, stream: TextIO | None = None, lines_every: float | None = None
    ) -> None:
        super().__init__(stream)
        self.tty = _isatty(self.stream)
        self.lines_every = lines_every
        self.enabled = (self.tty or lines_every is not None) if enabled is None else enabled
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (now < self._next and not force):
            return
        if self.tty:
            self._next = now + REDRAW_EVERY
            self.draw(text)
        elif self.lines_every is not None:
            self._next = now + self.lines_every
            self.stream.write(text + "\n")
            self.stream.flush()


class Progress(StatusLine):
    """Call `update(bytes_done, events)` often (it is cheap); `close()` at the end."""

    def __init__(
        self,
        total: int | None,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream)
        self.total = total
        if enabled is None:
            enabled = _isatty(self.stream)
        self.enabled = enabled
        self._clock = clock
        self.started = self._clock()
        self._next = self.started

    def _visible(self, now: float) -> bool:
        return (self.total is not None and self.total > LARGE_INPUT) or now - self.started >= SLOW_AFTER

    def update(self, bytes_done: int, events: int) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if now < self._next:
            return
        self._next = now + REDRAW_EVERY
        if not self._visible(now):
            return
        self.draw(self.line(bytes_done, events, now - self.started))

    def line(self, bytes_done: int, events: int, elapsed: float) -> str:
        rate = events / elapsed if elapsed > 0 else 0.0
        if self.total:
            frac = min(bytes_done / self.total, 1.0)
            filled = int(frac * _WIDTH)
            bar = "#" * filled + "-" * (_WIDTH - filled)
            size = f"{human_bytes(bytes_done)}/{human_bytes(self.total)} {frac:4.0%}"
            return f"scanning [{bar}] {size}  {events:,} events  {rate:,.0f} events/s"
        return f"scanning {human_bytes(bytes_done)}  {events:,} events  {rate:,.0f} events/s"

    def close(self) -> None:
        self.clear()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
