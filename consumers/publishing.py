"""Where a record processor's findings go: the publisher behind the dedupe table (live), or a replay's findings
file first, marked replayed, then the publisher (so the replay command shows those already alerted too)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from consumers.sinks import FileSink, Publisher
from consumers.sinks.publisher import PublishStats
from pipeline.finding import Finding
from pipeline.stages import Stage


class FindingsOut(Protocol):
    stats: PublishStats

    def open(self, stage: Stage, shard: str) -> None:
        """The processor's shard is known (initialize)."""
        ...

    def publish(self, findings: Iterable[Finding]) -> list[Finding]:
        """Deliver until acknowledged (raises `SinkError` otherwise); returns those published now."""
        ...

    def digests_due(self) -> bool:
        """Whether counted repeats are due as digests (a `publish([])` sends them)."""
        ...


class Alerts:
    """Live: the publisher, which sends what the dedupe table has not seen and marks it after."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.stats = publisher.stats

    def open(self, stage: Stage, shard: str) -> None:
        pass

    def publish(self, findings: Iterable[Finding]) -> list[Finding]:
        return self.publisher.publish(findings)

    def digests_due(self) -> bool:
        return self.publisher.digests_due()


class ReplayedFindings:
    """A replay: findings marked replayed, appended to `findings/<stage>-<shard>.jsonl` in the run's directory
    (all of them, for the replay command's output), then published."""

    def __init__(self, publisher: Publisher, directory: Path) -> None:
        self.publisher = publisher
        self.stats = publisher.stats
        self.directory = directory
        self._file: FileSink | None = None

    def open(self, stage: Stage, shard: str) -> None:
        self._file = FileSink(self.directory / "findings" / f"{stage.value}-{shard}.jsonl")

    def publish(self, findings: Iterable[Finding]) -> list[Finding]:
        given = list(findings)
        for f in given:
            f.replayed = True
        if self._file is not None and given:
            self._file.deliver(given)
        return self.publisher.publish(given)

    def digests_due(self) -> bool:
        return self.publisher.digests_due()
