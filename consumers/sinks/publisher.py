"""Publisher: a batch of findings in, returns only when every new delivery is durably made.

    fresh = findings whose delivery (first alert: the id; resolution: id and status) is not in the dedupe
            table (and not twice in the batch), plus the digests now due
    every sink delivers its share of `fresh` (each resends its own failed entries, with backoff):
        the SNS topic what the alert policy alerts, Firehose and files what it archives
    the dedupe table marks `fresh` (digests excepted)
    repeats (an open finding's id already delivered) are counted for its next digest

If a sink stays down, `publish` raises `SinkError` and the caller does not checkpoint. A retry
of the same batch in the same process skips the sinks that already acknowledged a finding, so a
Firehose outage does not resend the SNS alerts.

Digests (`[alerts] digest_interval`, see docs/findings.md): the repeats of a finding are counted in the
process that saw them, and at most once per interval per process each counted finding's total is added
to its dedupe-table item (an atomic update every shard shares) and sent as one digest with that total.
The crash window: repeats a process counted since its last digest are lost with it (at most one
interval's worth, and only the count: their records were checkpointed); repeats in records read again
after a crash are counted again. A resolution drops the pending digest of its finding.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from consumers.sinks.base import Sink
from pipeline.alerting import AlertPolicy
from pipeline.finding import OPEN, RESOLVED, Finding

log = logging.getLogger(__name__)

MAX_PENDING_DIGESTS = 50_000  # ids with repeats counted per interval; repeats of more ids are dropped (counted)


class Dedupe(Protocol):
    def seen(self, ids: Iterable[str]) -> set[str]: ...

    def mark(self, finding_ids: Iterable[str]) -> int: ...

    def count(self, finding_id: str, repeats: int) -> int | None: ...


@dataclass
class PublishStats:
    published: int = 0
    suppressed: int = 0  # already alerted (dedupe table or earlier in this process)
    batches: int = 0
    resolved: int = 0  # resolutions published
    digests: int = 0  # digests published
    repeats: int = 0  # repeats counted for digests
    repeats_dropped: int = 0  # repeats of ids beyond MAX_PENDING_DIGESTS in one interval
    by_rule: dict[str, int] = field(default_factory=dict)
    by_sink: dict[str, int] = field(default_factory=dict)  # findings each sink was given (its policy's share)


@dataclass
class _Repeats:
    """An open finding's repeats not yet sent in a digest."""

    finding: Finding
    count: int = 0
    latest: float = 0.0  # event time of the newest


class Publisher:
    def __init__(
        self,
        sinks: Sequence[Sink],
        dedupe: Dedupe | None = None,
        remember: int = 50_000,
        policy: AlertPolicy | None = None,
        clock: Callable[[], float] = time.time,
        digests: bool = True,
    ) -> None:
        self.sinks = list(sinks)
        self.dedupe = dedupe
        self.policy = policy or AlertPolicy()
        self._shares = {sink.name: self.policy.for_sink(sink.name) for sink in self.sinks}
        self.stats = PublishStats()
        self._remember = remember
        self._acked: OrderedDict[tuple[str, str], None] = OrderedDict()  # (sink name, delivery key)
        self.clock = clock
        self.digest_interval = self.policy.digest_interval if dedupe is not None and digests else 0.0
        self._repeats: dict[str, _Repeats] = {}  # finding id -> its repeats since its last digest
        self._digests: list[Finding] = []  # built (counted in the table), not yet delivered
        self._next_digest = clock() + self.digest_interval

    def digests_due(self) -> bool:
        """Whether a `publish`, even of nothing, would send digests now."""
        return bool(self._digests) or (bool(self._repeats) and self.clock() >= self._next_digest)

    def publish(self, findings: Iterable[Finding]) -> list[Finding]:
        """Deliver the findings not delivered before, and the digests due; returns those delivered now.
        Raises SinkError."""
        given = list(findings)
        by_key: dict[str, Finding] = {}
        repeats: list[Finding] = []
        for f in given:
            if f.delivery_key in by_key:
                repeats.append(f)
            else:
                by_key[f.delivery_key] = f
        self._build_digests()
        if not by_key and not self._digests:
            return []
        self.stats.batches += 1
        already = self.dedupe.seen(by_key) if self.dedupe is not None and by_key else set()
        fresh = [f for k, f in by_key.items() if k not in already]
        repeats += [f for k, f in by_key.items() if k in already]
        resolved = {f.id for f in fresh if f.status == RESOLVED}
        digests = [d for d in self._digests if d.id not in resolved]
        outgoing = fresh + digests
        for sink in self.sinks:
            share = self._shares.get(sink.name)
            todo = [
                f for f in outgoing if (sink.name, f.delivery_key) not in self._acked and (share is None or share(f))
            ]
            if todo:
                sink.deliver(todo)
                for f in todo:
                    self._acked[(sink.name, f.delivery_key)] = None
                self.stats.by_sink[sink.name] = self.stats.by_sink.get(sink.name, 0) + len(todo)
        if self.dedupe is not None and fresh:
            self.dedupe.mark(f.delivery_key for f in fresh)
        self._digests = []
        for f in fresh:
            self.stats.by_rule[f.rule_id] = self.stats.by_rule.get(f.rule_id, 0) + 1
            if f.status == RESOLVED:
                self._repeats.pop(f.id, None)
        self._count(repeats, resolved)
        self.stats.published += len(fresh)
        self.stats.resolved += len(resolved)
        self.stats.digests += len(digests)
        self.stats.suppressed += len(given) - len(fresh)
        self._forget()
        if outgoing:
            log.info(
                "published %d findings (%d already delivered, %d resolved, %d digests)",
                len(fresh),
                len(by_key) - len(fresh),
                len(resolved),
                len(digests),
            )
        return outgoing

    def _count(self, repeats: list[Finding], resolved: set[str]) -> None:
        """Repeats of open findings, counted for their next digest (after delivery: a retried batch counts once)."""
        if self.digest_interval <= 0:
            return
        for f in repeats:
            if f.status != OPEN or f.id in resolved:
                continue
            pending = self._repeats.get(f.id)
            if pending is None:
                if len(self._repeats) >= MAX_PENDING_DIGESTS:
                    self.stats.repeats_dropped += 1
                    continue
                pending = self._repeats[f.id] = _Repeats(f)
            pending.count += max(f.occurrences, 1)
            pending.latest = max(pending.latest, f.event_time)
            self.stats.repeats += 1

    def _build_digests(self) -> None:
        """When the interval has passed: each counted finding's repeats added to its total in the dedupe
        table, and its digest queued until delivered."""
        if self._digests or not self._repeats or self.clock() < self._next_digest or self.dedupe is None:
            return
        self._next_digest = self.clock() + self.digest_interval
        for finding_id, pending in list(self._repeats.items()):
            total = self.dedupe.count(finding_id, pending.count)
            del self._repeats[finding_id]
            if total is not None and total > 1:
                self._digests.append(pending.finding.digest(total, pending.latest))

    def _forget(self) -> None:
        while len(self._acked) > self._remember:
            self._acked.popitem(last=False)
