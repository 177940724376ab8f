"""Publisher: a batch of findings in, returns only when every new finding is durably delivered.

    fresh = findings not in the dedupe table (and not twice in the batch)
    every sink delivers its share of `fresh` (each resends its own failed entries, with backoff):
        the SNS topic what the alert policy alerts, Firehose and files what it archives
    the dedupe table marks `fresh`

If a sink stays down, `publish` raises `SinkError` and the caller does not checkpoint. A retry
of the same batch in the same process skips the sinks that already acknowledged a finding, so a
Firehose outage does not resend the SNS alerts.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from consumers.sinks.base import Sink
from pipeline.alerting import AlertPolicy
from pipeline.finding import Finding

log = logging.getLogger(__name__)


class Dedupe(Protocol):
    def seen(self, ids: Iterable[str]) -> set[str]: ...

    def mark(self, finding_ids: Iterable[str]) -> int: ...


@dataclass
class PublishStats:
    published: int = 0
    suppressed: int = 0  # already alerted (dedupe table or earlier in this process)
    batches: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    by_sink: dict[str, int] = field(default_factory=dict)  # findings each sink was given (its policy's share)


class Publisher:
    def __init__(self, sinks: Sequence[Sink], dedupe: Dedupe | None = None, remember: int = 50_000,
                 policy: AlertPolicy | None = None) -> None:
        self.sinks = list(sinks)
        self.dedupe = dedupe
        self.policy = policy or AlertPolicy()
        self._shares = {sink.name: self.policy.for_sink(sink.name) for sink in self.sinks}
        self.stats = PublishStats()
        self._remember = remember
        self._acked: OrderedDict[tuple[str, str], None] = OrderedDict()  # (sink name, finding id)

    def publish(self, findings: Iterable[Finding]) -> list[Finding]:
        """Deliver the findings not alerted before; returns those delivered now. Raises SinkError."""
        given = list(findings)
        unique = list({f.id: f for f in given}.values())
        if not unique:
            return []
        self.stats.batches += 1
        already = self.dedupe.seen(f.id for f in unique) if self.dedupe is not None else set()
        fresh = [f for f in unique if f.id not in already]
        self.stats.suppressed += len(given) - len(fresh)
        for sink in self.sinks:
            share = self._shares.get(sink.name)
            todo = [f for f in fresh if (sink.name, f.id) not in self._acked and (share is None or share(f))]
            if todo:
                sink.deliver(todo)
                for f in todo:
                    self._acked[(sink.name, f.id)] = None
                self.stats.by_sink[sink.name] = self.stats.by_sink.get(sink.name, 0) + len(todo)
        if self.dedupe is not None and fresh:
            self.dedupe.mark(f.id for f in fresh)
        for f in fresh:
            self.stats.by_rule[f.rule_id] = self.stats.by_rule.get(f.rule_id, 0) + 1
        self.stats.published += len(fresh)
        self._forget()
        if fresh:
            log.info("published %d findings (%d already alerted)", len(fresh), len(unique) - len(fresh))
        return fresh

    def _forget(self) -> None:
        while len(self._acked) > self._remember:
            self._acked.popitem(last=False)
