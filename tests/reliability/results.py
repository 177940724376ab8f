"""Reliability rows: each test appends one JSON line to the results file; `table()` renders them.

A row: test, runs, inputs, findings expected / delivered / duplicated, result, and a free-form figure
(events/s, memory, lag, ...). The file is JSON lines so tests in several processes can append to it; the
table shows the latest row of each test, then the rows of issue 7 that no test has recorded yet.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS_ENV = "TRAILWARDEN_RELIABILITY_RESULTS"
DEFAULT_RESULTS = REPO / "build" / "reliability" / "results.jsonl"

# The rows of issue 7, in its order: (row name, what it shows). A test records under one of these names.
PLANNED: tuple[tuple[str, str], ...] = (
    (
        "crashes",
        "SIGKILL of a daemon or record processor, SIGTERM of a daemon, at random points, both stages; "
        "the supervisor restarts",
    ),
    ("sink outages", "throttling and 5xx from SNS, Firehose, DynamoDB, Kinesis, then recovery"),
    ("lease moves", "a second worker joins, takes shards, leaves"),
    ("resharding", "split and merge hand-off of stage-2 state by hash range"),
    ("kcl resharding", "split and merge of both streams under the real KCL (kinesis-local), records flowing"),
    ("kcl fan-out resharding", "the same with enhanced fan-out (SubscribeToShard over HTTP/2)"),
    ("poison input (live)", "bad records into the live stream: dead-lettered, shard keeps moving"),
    ("fuzz", "mutated corpus events through the decoders and the rule engine"),
    ("output safety", "attacker text cannot forge SNS subjects/attributes, Firehose lines, table rows"),
    ("load", "sustained rate for 10 minutes: events/s, peak RSS, maximum lag"),
    ("least privilege", "template grants against the API calls the code makes"),
)


@dataclass
class Row:
    test: str
    runs: int
    inputs: int | None
    expected: int | None = None
    delivered: int | None = None
    duplicated: int | None = None
    ok: bool = True
    figure: str = ""
    seconds: float = 0.0
    at: float = field(default_factory=time.time)

    @property
    def result(self) -> str:
        return "pass" if self.ok else "FAIL"


def results_path() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def record(row: Row, path: Path | None = None) -> Row:
    """Append `row` to the results file (one line, one write: safe with other appending processes)."""
    path = path or results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(row), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return row


def load(path: Path | None = None, since: float = 0.0) -> list[Row]:
    """The latest row of each test recorded at or after `since`, in the order of PLANNED (others after)."""
    path = path or results_path()
    latest: dict[str, Row] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                raw: dict[str, Any] = json.loads(line)
                row = Row(**{k: v for k, v in raw.items() if k in Row.__dataclass_fields__})
            except (ValueError, TypeError):
                continue
            if row.at >= since:
                latest[row.test] = row
    order = {name: i for i, (name, _) in enumerate(PLANNED)}
    return sorted(latest.values(), key=lambda r: (order.get(r.test, len(order)), r.test))


def _cell(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def table(rows: Iterable[Row], planned: bool = True) -> str:
    """The table: test, runs, inputs, findings expected / delivered / duplicated, result, figure; then the
    planned rows without a result."""
    rows = list(rows)
    header = ("test", "runs", "inputs", "expected", "delivered", "duplicated", "result", "figure")
    body = [
        (
            r.test,
            _cell(r.runs),
            _cell(r.inputs),
            _cell(r.expected),
            _cell(r.delivered),
            _cell(r.duplicated),
            r.result,
            r.figure,
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        pairs = enumerate(zip(line[:-1], widths, strict=True))
        cells = [str(c).rjust(w) if 0 < i < 6 else str(c).ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells) + "  " + str(line[-1]))
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    done = {r.test for r in rows}
    missing = [(name, what) for name, what in PLANNED if name not in done]
    if planned and missing:
        lines.append("")
        lines.append("not run or not implemented yet:")
        lines.extend(f"  {name}: {what}" for name, what in missing)
    return "\n".join(lines)
