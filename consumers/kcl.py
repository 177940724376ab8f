"""The KCL side of a record processor: its process, and the delivery rules every processor keeps.

A processor's process logs to stderr only (stdout carries the MultiLangDaemon's protocol), and each
destination is retried until it acknowledged (`until_done`) before the shard is checkpointed past the
records concerned (`checkpoint`): docs/architecture.md, "Delivery".
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from amazon_kclpy import kcl
from amazon_kclpy.kcl import CheckpointError

from consumers.sinks.retry import WAITS
from pipeline.runtime import tune_gc
from pipeline.settings import Settings

log = logging.getLogger("consumers")

T = TypeVar("T")

MAX_BACKOFF = 30.0


def setup_logging() -> None:
    """stderr only (the daemon copies a child's stderr into its own log), at TRAILWARDEN_LOG_LEVEL for
    trailwarden's own loggers; libraries stay at WARNING."""
    level = getattr(logging, Settings().log_level)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
    )
    for name in ("consumers", "pipeline"):
        logging.getLogger(name).setLevel(level)


def run_processor(build: Callable[[], Any]) -> None:
    """A record processor's process: logging to stderr, the processor built, the GC tuned, then the KCL
    protocol on stdin/stdout until the daemon closes it."""
    setup_logging()
    processor = build()
    tune_gc()
    kcl.KCLProcess(processor).run()


def until_done(
    fn: Callable[[], T], what: str, sleep: Callable[[float], None] | None = None, rng: random.Random | None = None
) -> T:
    """`fn()` until it succeeds, backing off (full jitter, capped) in between: a sink that stays down
    holds the shard here, so nothing is checkpointed past it and nothing is dropped."""
    rng = rng or random.Random()  # noqa: S311 (backoff jitter, not a secret)
    sleep = sleep or time.sleep
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            delay = rng.uniform(0.0, min(MAX_BACKOFF, 0.5 * 2**attempt))
            attempt += 1
            log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, attempt, exc, delay)
            WAITS.note(delay)
            sleep(delay)


def checkpoint(
    checkpointer: Any, sequence_number: str | None = None, sub_sequence_number: int | None = None, attempts: int = 5
) -> bool:
    """Checkpoint, retrying throttling; False if the lease is gone (shutdown or invalid state)."""
    for attempt in range(attempts):
        try:
            checkpointer.checkpoint(sequence_number, sub_sequence_number)
            return True
        except CheckpointError as exc:
            reason = str(exc)
            if reason == "ThrottlingException" and attempt + 1 < attempts:
                time.sleep(0.2 * 2**attempt)
                continue
            log.warning("checkpoint at %s refused: %s", sequence_number, reason)
            return False
    return False
