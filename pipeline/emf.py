"""CloudWatch Embedded Metric Format (EMF): a metric record as one JSON object, one log line.

CloudWatch Logs turns such a line into metrics when it reaches a log group (the ECS awslogs driver sends
each line of the task's output as a log event):

    {"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [{"Namespace": "Trailwarden",
        "Dimensions": [["Application", "Stage"]], "Metrics": [{"Name": "RecordsIn", "Unit": "Count"}]}]},
     "Application": "trailwarden-router", "Stage": "router", "RecordsIn": 120}

Every dimension named in `Dimensions` and every metric named in `Metrics` is a key at the top level: a
dimension's value a string, a metric's a number or a list of up to 100 numbers (several samples). Written
here rather than with `aws-embedded-metrics`, which prints to stdout (or sends to a CloudWatch agent) and
cannot target stderr: a record processor's stdout is the KCL protocol channel. docs/metrics.md lists ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

MAX_VALUES = 100  # samples of one metric in one record
MAX_DIMENSIONS = 30  # dimensions in one dimension set


class Unit(StrEnum):
    COUNT = "Count"
    SECONDS = "Seconds"
    MILLISECONDS = "Milliseconds"
    BYTES = "Bytes"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: Unit


Value = float | int | Sequence[float | int]


def record(
    namespace: str,
    dimensions: Mapping[str, str],
    values: Mapping[Metric, Value],
    timestamp_ms: int,
    dimension_sets: Sequence[Sequence[str]] | None = None,
) -> dict[str, object]:
    """One EMF record: `values` under `dimensions` (all of them one dimension set unless `dimension_sets` says
    which). A list of samples keeps its last MAX_VALUES."""
    sets = [list(s) for s in dimension_sets] if dimension_sets is not None else [list(dimensions)]
    for names in sets:
        missing = [n for n in names if n not in dimensions]
        if missing or len(names) > MAX_DIMENSIONS:
            raise ValueError(f"dimension set {names}: {'no value for ' + str(missing) if missing else 'too long'}")
    doc: dict[str, object] = {
        "_aws": {
            "Timestamp": int(timestamp_ms),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": sets,
                    "Metrics": [{"Name": m.name, "Unit": m.unit.value} for m in values],
                }
            ],
        },
    }
    doc.update({name: str(value) for name, value in dimensions.items()})
    for metric, value in values.items():
        doc[metric.name] = list(value)[-MAX_VALUES:] if isinstance(value, Sequence) else value
    return doc


def line(doc: Mapping[str, object]) -> str:
    """The record as one line of compact JSON, newline included."""
    return json.dumps(doc, separators=(",", ":")) + "\n"
