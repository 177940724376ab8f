"""A record processor's tally for one shard, and its file format: what a replay's processors report to the
replay command (`progress/<stage>-<shard>.json` in the run's directory), and what a live one logs."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.stages import Stage


@dataclass
class Progress:
    stage: Stage
    shard: str
    records: int = 0  # taken (stage 1) or fact records (stage 2)
    events: int = 0
    facts: int = 0
    findings: int = 0  # given to the sinks, repeats included
    published: int = 0
    already_alerted: int = 0
    dead_letters: int = 0
    errors: int = 0  # events the engine failed on
    snapshots: int = 0
    last_arrival: float | None = None  # epoch seconds of the last record taken (stage 1)
    read_to: float | None = None  # stage 1: every record that arrived before it was read and delivered
    last_event_time: float | None = None  # the largest event time seen, once its facts were acknowledged
    behind_latest_ms: int | None = None
    first_record_at: float | None = None  # wall clock when the first record was taken
    done: bool = False
    reason: str = ""
    updated: float = 0.0

    def counts(self) -> dict[str, int]:
        """The counters that are not zero (for a log line)."""
        names = (
            "records",
            "events",
            "facts",
            "findings",
            "published",
            "already_alerted",
            "dead_letters",
            "errors",
            "snapshots",
        )
        return {name: getattr(self, name) for name in names if getattr(self, name)}

    def path(self, directory: Path) -> Path:
        return directory / "progress" / f"{self.stage.value}-{self.shard}.json"

    def write(self, directory: Path) -> None:
        """Atomically (rename), so the reader never sees half a file."""
        self.updated = time.time()
        target = self.path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(asdict(self)))
        os.replace(temporary, target)

    @classmethod
    def read(cls, path: Path) -> Progress | None:
        try:
            data = json.loads(path.read_text())
            progress = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
            progress.stage = Stage(progress.stage)
            return progress
        except (OSError, ValueError, TypeError):
            return None


def read_progress(directory: Path) -> dict[Stage, dict[str, Progress]]:
    """{stage: {shard: progress}} from the processors' progress files."""
    out: dict[Stage, dict[str, Progress]] = {stage: {} for stage in Stage}
    for path in sorted((directory / "progress").glob("*.json")):
        progress = Progress.read(path)
        if progress is not None and progress.shard:
            out[progress.stage][progress.shard] = progress
    return out
