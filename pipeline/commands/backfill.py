"""`trailwarden backfill s3://BUCKET/PREFIX|DIR --from D1 --to D2`: the CloudTrail S3 archive through both
stages, in event-time order, findings marked as replayed: stage 1 in worker processes on every core
(`pipeline.routed`), stage 2 in this one."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from consumers.archive import S3Store
from consumers.sinks import Publisher, SinkError
from consumers.sinks.build import build_publisher, past_findings
from infra import aws
from infra.outputs import outputs as stack_outputs
from infra.workers import RouterPool
from pipeline.alerting import AlertPolicy
from pipeline.backfill import Backfill, BackfillStats, Store, local_location, parse_range, parse_s3
from pipeline.commands.scan import Emitter, _open_file, _rule_ids, summarize
from pipeline.config import Config
from pipeline.decode import MAX_DECOMPRESSED, DeadLetter
from pipeline.detector import Detector
from pipeline.finding import Finding
from pipeline.output import FORMATS, format_summary, make_writer, safe
from pipeline.pack import bind_pack
from pipeline.progress import Display
from pipeline.routed import Routed

log = logging.getLogger(__name__)

EXAMPLES = """\
LOCATION is s3://BUCKET[/PREFIX] (the bucket, AWSLogs/, an organization, an account or a region) or a
local directory of the same layout: AWSLogs/[ORG-ID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/.
Only the day folders of the range are listed (and the day after it, for late deliveries); events outside
[--from, --to] are skipped. A date means the whole day (UTC); a time is ISO 8601, e.g. 2024-08-06T04:30Z.

Findings have the ids scan and replay give, marked "replayed": true. Those the alert policy ([alerts] of
the configuration) archives go to standard output, and with --sinks to the findings Firehose stream too
(except those the dedupe table says were already alerted); with --alert those it alerts also go to the
SNS topic, and the dedupe table is marked, so nothing is alerted twice.

examples:
  trailwarden backfill s3://org-trail-bucket --from 2024-08-01 --to 2024-08-07
  trailwarden backfill s3://org-trail-bucket/AWSLogs/o-abc123/111122223333/ --from 2024-08-06 --rules root-account-usage
  trailwarden backfill ~/trail-archive --from 2024-08-06T00:00Z --to 2024-08-06T12:00Z --format json
  trailwarden backfill s3://bucket --from 2024-08-01 --to 2024-08-02 --aws --sinks --alert
"""

PROGRESS_EVERY = 1024
PUBLISH_EVERY = 500


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="run the rule pack over a date range of the CloudTrail S3 archive",
        description="Run both stages over a date range of the CloudTrail S3 archive (or a local copy), in event-time "
        "order per account and region; findings are marked as replayed.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("location", metavar="LOCATION", help="s3://BUCKET[/PREFIX] or a local directory")
    parser.add_argument("--from", dest="start", required=True, metavar="WHEN", help="first day or time (UTC)")
    parser.add_argument("--to", dest="end", metavar="WHEN", help="last day or time, included (default: now)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="table (default on a terminal) or json: one finding per line (default otherwise)",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write findings to FILE instead of standard output")
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (as for scan)")
    parser.add_argument(
        "--rules", nargs="+", action="extend", metavar="ID", help="run only these rule ids (space- or comma-separated)"
    )
    parser.add_argument(
        "--sigma",
        action="append",
        default=[],
        metavar="PATH",
        help="also run the Sigma rules of a folder or file (repeatable; besides [sigma] folders "
        "of the configuration; one rule that cannot be loaded stops the command)",
    )
    parser.add_argument("--dead-letters", metavar="FILE", help="write what could not be decoded to FILE (JSON lines)")
    parser.add_argument(
        "--max-size",
        type=int,
        default=MAX_DECOMPRESSED // (1024 * 1024),
        metavar="MB",
        help="largest file decoded, in MB (default 64)",
    )
    parser.add_argument(
        "--workers",
        "--processes",
        dest="workers",
        type=int,
        default=usable_cores(),
        metavar="N",
        help="worker processes that decode files and run the match rules and fact extraction, one file at a "
        f"time each (default: the cores this process may use, {usable_cores()} here); stage 2 runs in this "
        "process, in event-time order, so the findings do not depend on N; 1 runs everything in this process",
    )
    parser.add_argument(
        "--downloads",
        dest="downloads",
        type=int,
        default=8,
        metavar="N",
        help="threads that list and download files in parallel (default 8)",
    )
    parser.add_argument("--all", action="store_true", help="print every repeat of a finding id too")
    parser.add_argument(
        "--sinks",
        action="store_true",
        help="also send findings to the findings Firehose stream (not those already alerted)",
    )
    parser.add_argument(
        "--alert", action="store_true", help="also alert on the SNS topic (implies --sinks; marks the dedupe table)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary and no progress on stderr")
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def usable_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _fail(message: str) -> int:
    print(f"trailwarden backfill: {safe(message)}", file=sys.stderr)
    return 2


def open_store(location: str, args: argparse.Namespace) -> tuple[Store, str]:
    """The store and prefix LOCATION names. Raises ValueError."""
    if location.startswith("s3://"):
        bucket, prefix = parse_s3(location)
        return S3Store(aws.from_args(args).client("s3"), bucket), prefix
    path = Path(location)
    if not path.is_dir():
        raise ValueError(f"{location}: not a directory or an s3:// location")
    return local_location(path)


def line(stats: BackfillStats, events: int, elapsed: float) -> str:
    rate = events / elapsed if elapsed > 0 else 0.0
    return (
        f"backfill {stats.files:,}/{stats.files_total:,} files  {events:,} events  day {stats.day()}  "
        f"{rate:,.0f} events/s"
    )


def run(args: argparse.Namespace) -> int:
    if args.max_size <= 0 or args.workers <= 0 or args.downloads <= 0:
        return _fail("--max-size, --workers and --downloads must be positive")
    try:
        window = parse_range(args.start, args.end)
        store, prefix = open_store(args.location, args)
    except ValueError as exc:
        return _fail(str(exc))
    if args.config and not Path(args.config).is_file():
        return _fail(f"configuration file {args.config} does not exist or cannot be read")
    config = Config.load(args.config)
    policy = AlertPolicy.from_config(config)
    detector = Detector(bind_pack(config, only=_rule_ids(args.rules), sigma=args.sigma))
    publisher = _publisher(aws.from_args(args), args.alert, policy) if args.sinks or args.alert else None
    fmt = args.format or ("table" if args.output is None and sys.stdout.isatty() else "json")
    try:
        with (
            _open_file(args.output) as out,
            _open_file(args.dead_letters) as dead_out,
            Backfill(
                store,
                prefix,
                window,
                # A thread waits on each file its worker decodes, and each account-region keeps a file
                # per worker in flight: every worker busy, the downloads too, even for a single stream.
                downloads=args.downloads + (args.workers if args.workers > 1 else 0),
                ahead=args.workers,
                max_size=args.max_size * 1024 * 1024,
                router=RouterPool(detector.pack, args.workers, args.sigma) if args.workers > 1 else None,
            ) as job,
        ):
            writer = make_writer(fmt, out if out is not None else sys.stdout.buffer)
            try:
                return _backfill(
                    args, job, detector, Emitter(writer, every=args.all, policy=policy), dead_out, publisher
                )
            finally:
                writer.close()
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        return _fail(f"cannot write {exc.filename or 'output'}: {exc.strerror or exc}")


def _publisher(target: aws.Target, alert: bool, policy: AlertPolicy) -> Publisher:
    """Firehose (and SNS with `alert`) behind the live dedupe table, named by the stack's outputs, each
    given its share by the alert policy."""
    return build_publisher(target, stack_outputs(target), *past_findings(alert), policy=policy, digests=False)


def _backfill(
    args: argparse.Namespace,
    job: Backfill,
    detector: Detector,
    emit: Emitter,
    dead_out: BinaryIO | None,
    publisher: Publisher | None,
) -> int:
    started = time.monotonic()
    display = Display(enabled=False if args.quiet else None)
    try:
        job.plan()
    except ValueError as exc:
        return _fail(str(exc))
    except (ClientError, BotoCoreError, OSError) as exc:
        return _fail(f"cannot list {args.location}: {exc}")
    stats = job.stats
    events = 0
    pending: list[Finding] = []

    def found(findings: list[Finding]) -> None:
        for f in findings:
            f.replayed = True
        display.clear()
        written = emit(findings)
        if publisher is not None:
            pending.extend(written)
            if len(pending) >= PUBLISH_EVERY:
                publisher.publish(pending)
                pending.clear()

    try:
        advance, take, process = detector.advance, detector.take, detector.process
        for item in job.items():
            kind = type(item)
            if kind is float:  # an event whose stage 1 (in a worker) gave nothing: only its time counts
                findings = advance(item)  # type: ignore[arg-type]
            elif kind is Routed:
                findings = take(item)  # type: ignore[arg-type]
            elif kind is DeadLetter:
                if dead_out is not None:
                    dead_out.write(orjson.dumps(item.to_dict()) + b"\n")  # type: ignore[union-attr]
                continue
            else:
                findings = process(item)  # type: ignore[arg-type]
            events += 1
            if findings:
                found(findings)
            if not events % PROGRESS_EVERY:
                stats.last_time = item if kind is float else item.time  # type: ignore[assignment,union-attr]
                display.update(line(stats, events, display.elapsed()))
        found(detector.finish())
        detector.absorb(stats.stage1, stats.facts_out)
        if publisher is not None and pending:
            publisher.publish(pending)
    except BrokenProcessPool as exc:
        display.clear()
        print(
            f"trailwarden backfill: a worker process died ({safe(str(exc))}); nothing after the findings above "
            "was checked. Rerun the range with --workers 1 to run everything in this process.",
            file=sys.stderr,
        )
        return 1
    except SinkError as exc:
        display.clear()
        print(
            f"trailwarden backfill: a sink stayed down; findings from here on were not delivered: {safe(str(exc))}",
            file=sys.stderr,
        )
        return 1
    display.clear()
    if not args.quiet:
        summary = summarize(detector, stats.decode, stats.files, stats.bytes, events, time.monotonic() - started, emit)
        summary["files_listed"] = stats.files_total
        summary["streams"] = stats.streams
        summary["day_folders_listed"] = stats.listings
        summary["outside_the_range"] = stats.outside_range
        if stats.download_errors:
            summary["download_errors"] = stats.download_errors
        if stats.worker_cpu:
            summary["worker_processes"] = len(stats.worker_cpu)
            summary["worker_cpu_seconds"] = round(sum(stats.worker_cpu.values()), 2)
        if publisher is not None:
            summary["published"] = publisher.stats.published
            summary["already_alerted"] = publisher.stats.suppressed
            summary["sent_to"] = dict(publisher.stats.by_sink)
        print(format_summary(summary), file=sys.stderr)
    return 0
