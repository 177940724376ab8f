"""Retries for sink calls: exponential backoff with full jitter, bounded by a budget.

Only transient failures are retried (throttling, 5xx, connection errors). When the budget is
spent, or the error is permanent, `SinkUnavailable` is raised: the caller must not checkpoint,
and nothing is dropped (the records are read again, or the caller retries the whole batch).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

log = logging.getLogger(__name__)

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "LimitExceededException",
        "TransactionInProgressException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalFailureException",
        "KMSThrottlingException",
        "ThrottledOperation",
    }
)


@dataclass
class Waits:
    """This process's retries of sink calls and the seconds slept before them (read by `consumers.metrics`).
    `listener` is called after each one: the processor's metrics, so that a batch a sink holds for minutes
    still writes its lines every interval (and the stage's sink-wait alarm can fire)."""

    retries: int = 0
    seconds: float = 0.0
    listener: Callable[[], None] | None = None

    def note(self, delay: float) -> None:
        self.retries += 1
        self.seconds += delay
        if self.listener is not None:
            try:
                self.listener()
            except Exception:  # metrics must never stop a delivery
                log.exception("writing the metrics during a sink retry")


WAITS = Waits()


class SinkError(Exception):
    """A sink did not acknowledge: the caller must not checkpoint past the records concerned."""


class SinkUnavailable(SinkError):
    """A sink kept failing for the whole retry budget (or failed permanently)."""


@dataclass
class RetryPolicy:
    """`attempts` calls in all; delays drawn uniformly from [0, min(cap, base * 2**n)] (full jitter)."""

    attempts: int = 8
    base: float = 0.1
    cap: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delays(self) -> Iterator[float]:
        """One delay before each retry (attempts - 1 of them)."""
        for n in range(max(0, self.attempts - 1)):
            yield self.rng.uniform(0.0, min(self.cap, self.base * (2**n)))


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict):
            return str(error.get("Code") or "")
    return ""


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata")
        if isinstance(meta, dict) and isinstance(meta.get("HTTPStatusCode"), int):
            return int(meta["HTTPStatusCode"])
    return 0


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, and connection-level failures are worth retrying; everything else is not."""
    if isinstance(exc, ClientError):
        return error_code(exc) in THROTTLING_CODES or http_status(exc) >= 500 or http_status(exc) == 429
    return isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | TimeoutError)


def entry_transient(code: str) -> bool:
    """Whether a per-entry error code in a batch response (SNS Failed[], Firehose ErrorCode) is transient."""
    return code in THROTTLING_CODES or code.startswith(("Internal", "ServiceUnavailable")) or not code


def call(fn: Callable[[], T], policy: RetryPolicy, what: str) -> T:
    """`fn()`, retried on transient errors within the policy's budget; raises SinkUnavailable otherwise."""
    delays = policy.delays()
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise SinkUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
            delay = next(delays, None)
            if delay is None:
                raise SinkUnavailable(f"{what}: still failing after {policy.attempts} attempts: {exc}") from exc
            log.warning("%s failed (%s), retrying in %.2fs", what, error_code(exc) or type(exc).__name__, delay)
            WAITS.note(delay)
            policy.sleep(delay)


def resend_failed(
    send: Callable[[list[T]], list[tuple[T, str]]], items: Sequence[T], policy: RetryPolicy, what: str
) -> None:
    """Send `items`; `send` returns the (item, error code) pairs the service did not accept.

    Those, and only those, are sent again until none is left. A permanent per-entry error or a spent
    budget raises SinkUnavailable (the caller does not checkpoint; nothing is dropped).
    """
    pending = list(items)
    delays = policy.delays()
    while pending:
        failed = call(functools.partial(send, pending), policy, what)
        if not failed:
            return
        permanent = [code for _, code in failed if not entry_transient(code)]
        if permanent:
            raise SinkUnavailable(f"{what}: {len(failed)} entries refused, e.g. {permanent[0]}")
        delay = next(delays, None)
        if delay is None:
            raise SinkUnavailable(f"{what}: {len(failed)} entries still failing after {policy.attempts} attempts")
        codes = sorted({code or "transient" for _, code in failed})
        log.warning(
            "%s: %d of %d entries failed (%s), resending in %.2fs",
            what,
            len(failed),
            len(pending),
            ", ".join(codes),
            delay,
        )
        WAITS.note(delay)
        policy.sleep(delay)
        pending = [item for item, _ in failed]
