"""The deliverer: one per destination, it drains the destination's queue (fed by the findings topic) into
the destination, so a destination that is down or throttling holds only its own queue.

    receive up to 10 findings (long poll)
    per finding: not routed here -> delete; already delivered (dedupe: id, destination, status,
        occurrences) -> delete; else wait for the rate limit, send, mark delivered, delete
    transient failure (5xx, 429, unreachable): the message and the rest of the batch come back after a
        backoff (visibility timeout, doubling, Retry-After honoured); after the queue's maxReceiveCount
        receives SQS moves it to the dead-letter queue
    permanent failure (4xx, unreadable finding): to the dead-letter queue at once, with the reason

The crash window: a process that dies after the destination accepted a finding and before the mark sends
it again when the message reappears. Nothing that was sent is deleted before the mark.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from consumers.destinations.base import DeliveryError, Destination, delivery_id
from infra.destination_queues import DestinationQueue
from pipeline.config import ConfigError
from pipeline.routing import Routing

log = logging.getLogger(__name__)


class Dedupe(Protocol):
    def seen(self, ids: Iterable[str]) -> set[str]: ...

    def mark(self, finding_ids: Iterable[str]) -> int: ...


@dataclass
class DeliveryStats:
    delivered: int = 0
    not_routed: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0


@dataclass
class Backoff:
    """Seconds a message stays hidden after its n-th failed receive: base * 2**(n-1), at most cap."""

    base: float = 5.0
    cap: float = 900.0

    def delay(self, receives: int, retry_after: float | None = None) -> int:
        wanted = min(self.cap, self.base * 2 ** max(0, receives - 1))
        return int(min(43_200, max(wanted, retry_after or 0.0, 0.0)))  # SQS takes up to 12 hours


class RateLimit:
    """At most `per_minute` sends a minute, spaced evenly (0: no limit)."""

    def __init__(
        self,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


@dataclass
class Deliverer:
    destination: Destination
    queue: DestinationQueue
    sqs: Any
    routing: Routing
    dedupe: Dedupe
    rate: RateLimit = field(default_factory=lambda: RateLimit(0))
    backoff: Backoff = field(default_factory=Backoff)
    stats: DeliveryStats = field(default_factory=DeliveryStats)

    @property
    def name(self) -> str:
        return self.destination.name

    def step(self, wait: int = 1) -> int:
        """One receive and what follows; returns how many messages were handled."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        for index, message in enumerate(messages):
            if not self._handle(message):
                for later in messages[index + 1 :]:  # the destination failed: the rest of the batch waits too
                    self._hide(later, self.backoff.delay(_receives(later)))
                break
        return len(messages)

    def _handle(self, message: dict[str, Any]) -> bool:
        """False when the destination failed transiently (the caller stops this batch)."""
        finding = _finding(message["Body"])
        if finding is None:
            self._dead_letter(message, "the message is not a finding (JSON object with an id)")
            return True
        if self.name not in self.routing.targets(finding):
            self.stats.not_routed += 1
            self._delete(message)
            return True
        key = "delivery:" + delivery_id(finding, self.name)
        if self.dedupe.seen([key]):
            self.stats.duplicates += 1
            self._delete(message)
            return True
        self.rate.wait()
        try:
            self.destination.send(finding)
        except DeliveryError as exc:
            if not exc.transient:
                self._dead_letter(message, str(exc))
                return True
            delay = self.backoff.delay(_receives(message), exc.retry_after)
            self.stats.retried += 1
            log.warning("%s (finding %s); retrying in %d s", exc, str(finding.get("id"))[:40], delay)
            self._hide(message, delay)
            return False
        self.dedupe.mark([key])
        self._delete(message)
        self.stats.delivered += 1
        return True

    def _hide(self, message: dict[str, Any], seconds: int) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=seconds
        )

    def _delete(self, message: dict[str, Any]) -> None:
        self.sqs.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])

    def _dead_letter(self, message: dict[str, Any], reason: str) -> None:
        """Refused for good: to the dead-letter queue with the reason (the error's message, which never holds a
        secret: see consumers/destinations/base.py), then deleted here."""
        self.sqs.send_message(
            QueueUrl=self.queue.dlq_url,
            MessageBody=message["Body"],
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000] or "refused"}},
        )
        self._delete(message)
        self.stats.dead_lettered += 1
        log.error("%s: finding moved to the dead-letter queue: %s", self.name, reason)


def _receives(message: dict[str, Any]) -> int:
    value = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
    return int(value) if str(value).isdigit() else 1


def _finding(body: str) -> dict[str, Any] | None:
    """The finding in a message body: raw delivery (the finding JSON) or an SNS envelope around it."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
            doc = json.loads(doc["Message"])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("id"), str) and doc["id"] else None


class DeliveryThreads:
    """Every deliverer in a thread of its own, until `stop()`; an error in one (e.g. SQS unreachable) is logged
    and that deliverer goes on after a pause, the others are not affected."""

    def __init__(self, deliverers: Iterable[Deliverer], wait: int = 1) -> None:
        self.deliverers = list(deliverers)
        self.wait = wait
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(d,), name=f"deliver-{d.name}", daemon=True)
            for d in self.deliverers
        ]

    def start(self) -> DeliveryThreads:
        for t in self._threads:
            t.start()
        return self

    def _loop(self, deliverer: Deliverer) -> None:
        while not self._stop.is_set():
            try:
                deliverer.step(self.wait)
            except Exception as exc:  # SQS or the dedupe table failing: say so, pause, go on
                log.error("deliverer %s: %s: %s", deliverer.name, type(exc).__name__, exc)
                self._stop.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            if t.ident is not None:  # started
                t.join(timeout)


def build_deliverers(
    target: Any,
    outputs: dict[str, str],
    routing: Routing,
    runbooks: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    dedupe: Dedupe | None = None,
    only: Iterable[str] | None = None,
) -> tuple[list[Deliverer], Any]:
    """A deliverer per configured destination (or those in `only`), its queues ensured on the findings topic,
    behind the stack's dedupe table unless `dedupe` is given; and the secrets read. ConfigError before any
    queue is read if a destination is wrong."""
    from consumers.destinations.build import build_all  # here: the destination modules load only to deliver
    from consumers.sinks.dedupe import DedupeTable  # (the same reason)
    from infra import destination_queues  # (the same reason)

    built, secrets = build_all(routing, target, runbooks, env)
    chosen = set(only) if only else set(built)
    unknown = chosen - set(built)
    if unknown:
        raise ConfigError(f"no destination named {sorted(unknown)}; configured: {sorted(built) or 'none'}")
    table = dedupe if dedupe is not None else DedupeTable(target.client("dynamodb"), outputs["DedupeTableName"])
    sqs = target.client("sqs")
    deliverers = [
        Deliverer(
            dest,
            destination_queues.ensure(target, outputs["FindingsTopicArn"], name),
            sqs,
            routing,
            table,
            rate=RateLimit(routing.destinations[name].rate_per_minute),
        )
        for name, dest in sorted(built.items())
        if name in chosen
    ]
    return deliverers, secrets
