"""`trailwarden scan PATH...`: run the rule pack over CloudTrail files, offline, no AWS needed."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from pipeline.alerting import AlertPolicy
from pipeline.config import Config
from pipeline.decode import MAX_DECOMPRESSED, DeadLetter, DecodeStats
from pipeline.detector import Detector
from pipeline.finding import RESOLVED, Finding
from pipeline.ordering import ordered
from pipeline.output import FORMATS, FindingWriter, format_summary, make_writer, safe
from pipeline.pack import bind_pack
from pipeline.progress import Progress
from pipeline.sources import Reader, Source, SourceError, resolve

EXAMPLES = """\
inputs (the transport is detected from the content, gzip or not):
  CloudTrail S3 log files {"Records": [...]}, JSON arrays of records, JSON lines,
  CloudWatch Logs subscription records, EventBridge "AWS API Call via CloudTrail" envelopes.
  Directories are read recursively, skipping hidden files. Events reach the rules in event-time order
  across inputs: CloudTrail archive files (AWSLogs/[ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/) are merged
  per account and region, each other file or directory named is one stream, and the events of each file
  are sorted. JSON lines read as a stream (standard input, files of any size) keep their order.

examples:
  trailwarden scan ~/cloudtrail/                       # every file below, a table on a terminal
  trailwarden scan trail.json.gz --format json > findings.jsonl
  aws s3 cp s3://bucket/AWSLogs/... - | trailwarden scan -
  trailwarden scan logs/ --rules root-account-usage --config trailwarden.toml
  trailwarden scan logs/ --dead-letters bad.jsonl -q   # keep what could not be decoded

exit status: 0 when the scan completed (with or without findings), 2 when a path or the
configuration cannot be read.
"""

PROGRESS_EVERY = 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan CloudTrail files with the rule pack (offline)",
        description="Scan CloudTrail files, directories or standard input with the rule pack and print the findings.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for standard input")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="table (default on a terminal) or json: one finding per line (default otherwise)",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write findings to FILE instead of standard output")
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="TOML configuration (default: $TRAILWARDEN_CONFIG, ./trailwarden.toml, built-in defaults)",
    )
    parser.add_argument(
        "--rules",
        nargs="+",
        action="extend",
        metavar="ID",
        help="run only these rule ids (space- or comma-separated; put PATHs first or end with --)",
    )
    parser.add_argument(
        "--sigma",
        action="append",
        default=[],
        metavar="PATH",
        help="also run the Sigma rules of a folder or file (repeatable; besides [sigma] folders "
        "of the configuration; one rule that cannot be loaded stops the command)",
    )
    parser.add_argument(
        "--dead-letters", metavar="FILE", help="write input that could not be decoded to FILE, one JSON object per line"
    )
    parser.add_argument(
        "--max-size",
        type=int,
        default=MAX_DECOMPRESSED // (1024 * 1024),
        metavar="MB",
        help="largest file or record decoded whole, in MB (larger JSON lines are streamed; default 64)",
    )
    parser.add_argument(
        "--all", action="store_true", help="print a finding for every matching event, also repeats of one finding id"
    )
    parser.add_argument(
        "--alerts-only",
        action="store_true",
        help="print only the findings the alert policy alerts ([alerts] in the configuration; "
        "by default every finding it archives is printed)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary and no progress bar on stderr")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"trailwarden scan: {safe(message)}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _open_file(path: str | None) -> Iterator[BinaryIO | None]:
    """`path` opened for writing, or None when no path was given."""
    if path is None:
        yield None
        return
    with open(path, "wb") as fh:
        yield fh


def _rule_ids(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part for value in values for part in value.split(",") if part]


def run(args: argparse.Namespace) -> int:
    if args.max_size <= 0:
        return _fail("--max-size must be a positive number of MB")
    try:
        sources = resolve(args.paths)
    except SourceError as exc:
        return _fail(str(exc))
    if args.config and not (Path(args.config).is_file() and os.access(args.config, os.R_OK)):
        return _fail(f"configuration file {args.config} does not exist or cannot be read")
    config = Config.load(args.config)  # ConfigError: the command line reports it and exits 2
    policy = AlertPolicy.from_config(config)
    detector = Detector(bind_pack(config, only=_rule_ids(args.rules), sigma=args.sigma))
    fmt = args.format or ("table" if args.output is None and sys.stdout.isatty() else "json")
    try:
        with _open_file(args.output) as out, _open_file(args.dead_letters) as dead_out:
            writer = make_writer(fmt, out if out is not None else sys.stdout.buffer)
            return _scan(args, sources, detector, writer, dead_out, policy)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        return _fail(f"cannot write {exc.filename or 'output'}: {exc.strerror or exc}")


def _scan(
    args: argparse.Namespace,
    sources: list[Source],
    detector: Detector,
    writer: FindingWriter,
    dead_out: BinaryIO | None,
    policy: AlertPolicy,
) -> int:
    decode_stats = DecodeStats()
    reader = Reader(sources, decode_stats, max_size=args.max_size * 1024 * 1024)
    progress = Progress(reader.total, enabled=False if args.quiet else None)
    started = time.monotonic()
    events = 0
    emit = Emitter(writer, every=args.all, policy=policy, alerts_only=args.alerts_only)

    try:
        for item in ordered(reader):
            if isinstance(item, DeadLetter):
                if dead_out is not None:
                    dead_out.write(orjson.dumps(item.to_dict()) + b"\n")
                continue
            events += 1
            findings = detector.process(item)
            if findings:
                progress.clear()
                emit(findings)
            if not events % PROGRESS_EVERY:
                progress.update(reader.bytes_done, events)
        progress.clear()
        emit(detector.finish())
    except SourceError as exc:
        progress.close()
        writer.close()
        return _fail(str(exc))
    progress.close()
    writer.close()
    if not args.quiet:
        summary = summarize(
            detector, decode_stats, len(reader.sources), reader.bytes_done, events, time.monotonic() - started, emit
        )
        print(format_summary(summary), file=sys.stderr)
    return 0


class Emitter:
    """Writes findings once per delivery (unless `every`): a finding id is deterministic (rule, dedup key,
    window), so like the live dedupe table, alert once, and once more when it resolves. Writes what the
    alert policy archives (with `alerts_only`, what it alerts); counts what it wrote, what it alerts and
    what it held back."""

    def __init__(
        self, writer: FindingWriter, every: bool = False, policy: AlertPolicy | None = None, alerts_only: bool = False
    ) -> None:
        self.writer = writer
        self.every = every
        self.policy = policy or AlertPolicy()
        self.alerts_only = alerts_only
        self.emitted: Counter[str] = Counter()
        self.alerted: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.left_out: Counter[str] = Counter()  # below what the policy archives (or alerts, with alerts_only)
        self.resolved: Counter[str] = Counter()  # resolutions among those written
        self.seen: set[str] = set()

    def __call__(self, findings: list[Finding]) -> list[Finding]:
        """Write the findings not written before that the policy keeps; returns them."""
        written = []
        for finding in findings:
            if not self.every and finding.delivery_key in self.seen:
                self.duplicates[finding.rule_id] += 1
                continue
            self.seen.add(finding.delivery_key)
            alerted = self.policy.alerts(finding)
            if not (alerted if self.alerts_only else self.policy.archives(finding)):
                self.left_out[finding.rule_id] += 1
                continue
            self.emitted[finding.rule_id] += 1
            self.alerted[finding.rule_id] += alerted
            self.resolved[finding.rule_id] += finding.status == RESOLVED
            self.writer.write(finding)
            written.append(finding)
        return written

    def policy_summary(self) -> dict[str, Any]:
        """What the alert policy made of the findings written: alerted, archived only, left out."""
        alerted = +self.alerted
        return {
            "alert_policy": self.policy.describe(),
            "alerted": dict(alerted),
            "archived_only": dict(self.emitted - alerted),
            "left_out_by_the_policy": dict(self.left_out),
        }


# The scan counts these itself (findings once per id), so a detector's own figures for them are left out.
_SCAN_COUNTS = ("events", "findings", "findings_by_rule")


def summarize(
    detector: Detector,
    decode_stats: DecodeStats,
    sources: int,
    bytes_read: int,
    events: int,
    elapsed: float,
    emit: Emitter,
) -> dict[str, Any]:
    """The end-of-scan statistics. A detector's `summary()` adds its own (stateful stages, open watches)."""
    stats = detector.stats
    summary: dict[str, Any] = {
        "sources": sources,
        "bytes": bytes_read,
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_second": round(events / elapsed) if elapsed > 0 else 0,
        "findings": dict(emit.emitted),
        "of_which_resolutions": dict(+emit.resolved),
        **emit.policy_summary(),
        "repeats_of_a_finding_id": dict(emit.duplicates),
        "dead_letters": dict(decode_stats.dead_letters),
        "skipped": dict(decode_stats.skipped),
    }
    extra = getattr(detector, "summary", None)
    more = (
        extra()
        if callable(extra)
        else {"suppressed_by_rule": dict(stats.suppressed), "rule_errors": dict(stats.rule_errors)}
    )
    for key, value in more.items():
        if key not in _SCAN_COUNTS:
            summary.setdefault(key, value)
    summary["rule_error_samples"] = list(stats.last_errors[:5])
    return summary
