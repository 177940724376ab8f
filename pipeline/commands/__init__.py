"""Subcommands of the `trailwarden` command line, one module each (`pipeline.cli` registers them all), and what
the long-running ones share: how they take signals while they run and while they clean up.

A command module imports the heavy parts of trailwarden (the emulator, the daemons' launcher, boto3's clients)
inside the functions that use them: building the parser imports every command module, and `trailwarden --help`
or `trailwarden scan` should not pay for `trailwarden run`'s imports.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM interrupts like Ctrl-C (KeyboardInterrupt), so the command cleans up either way."""
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Inside the block Ctrl-C and SIGTERM are ignored: a second signal must not cut a clean-up short."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
