"""`trailwarden replay --from T1 --to T2`: a time range of the trail stream through both stages again, under
KCL applications and a keyed stream of its own, beside the live pipeline (see consumers/replay.py)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from infra import aws
from infra.outputs import outputs as stack_outputs
from pipeline.alerting import AlertPolicy
from pipeline.backfill import parse_time
from pipeline.commands import sigterm_interrupts, uninterrupted
from pipeline.commands.scan import Emitter, _rule_ids
from pipeline.config import Config, ConfigError
from pipeline.finding import iso_time
from pipeline.output import FORMATS, format_summary, make_writer, safe
from pipeline.pack import bind_pack
from pipeline.progress import Display
from pipeline.stages import Stage

log = logging.getLogger(__name__)

EXAMPLES = """\
WHEN is an ISO 8601 time (UTC unless it says otherwise, e.g. 2024-08-06T04:30Z), a date (its first second
for --from, its last for --to), epoch seconds, "now", or a duration ago such as 90m, 6h or 2d.

The range is in arrival time: the records that reached the trail stream between --from and --to (their
ApproximateArrivalTimestamp, which is what the AT_TIMESTAMP start position uses), with every event they
carry, whatever its eventTime. Each shard is read from --from until its first record past --to, or its tip.
Ranges older than the stream's retention come from the S3 archive: `trailwarden backfill`.

Findings are marked "replayed": true and printed (like scan); those the alert policy ([alerts] of the
configuration) archives go to the findings Firehose stream, and with --alert those it alerts to the SNS
topic too, except those the dedupe table says were already alerted (live or by an earlier replay).
Without --alert the dedupe table is read, never written. The live applications' leases, snapshots and
keyed stream are never read nor written: the run has its own, removed when it ends (Ctrl-C too).

examples:
  trailwarden replay --from 6h --rules iam-user-console-login-without-mfa
  trailwarden replay --from 2024-08-06T04:00Z --to 2024-08-06T05:00Z --config new-rules.toml --format json
  trailwarden replay --from 2024-08-06 --to 2024-08-06 --alert --aws
"""

PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="run a time range of the trail stream through both stages again (findings marked replayed)",
        description="Replay the records that reached the trail stream between --from and --to through both stages, "
        "under KCL applications of its own; findings are marked as replayed.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="start", required=True, metavar="WHEN", help="start of the range")
    parser.add_argument("--to", dest="end", metavar="WHEN", help="end of the range, included (default: now)")
    parser.add_argument(
        "--rules",
        nargs="+",
        action="extend",
        metavar="ID",
        help="run only these rule ids, enabled in the configuration or not (space- or comma-separated)",
    )
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML configuration for this replay's stages")
    parser.add_argument(
        "--alert",
        action="store_true",
        help="also alert on the SNS topic what the alert policy alerts (not what was alerted "
        "already) and mark the dedupe table",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="table (default on a terminal) or json: one finding per line (default otherwise)",
    )
    parser.add_argument("--all", action="store_true", help="print every repeat of a finding id too")
    parser.add_argument(
        "--timeout", type=float, default=0.0, metavar="SECONDS", help="give up after this long (default: no limit)"
    )
    parser.add_argument(
        "--keyed-shards",
        type=int,
        default=None,
        metavar="N",
        help="shards of the replay's keyed stream (default: as many as the live keyed stream)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary on stderr")
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def parse_when(text: str, *, end: bool = False, now: float | None = None) -> float:
    """Epoch seconds of WHEN (see the epilog). Raises ValueError."""
    now = time.time() if now is None else now
    value = text.strip().lower()
    if value == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    if re.fullmatch(r"\d{9,11}(\.\d+)?", value):
        return float(value)
    return parse_time(text, end=end)


def parse_window(start: str, end: str | None, now: float | None = None) -> tuple[float, float]:
    now = time.time() if now is None else now
    first = parse_when(start, now=now)
    last = parse_when(end, end=True, now=now) if end else now
    if last < first:
        raise ValueError(f"--to {end} is before --from {start}")
    return first, last


def _fail(message: str) -> int:
    print(f"trailwarden replay: {safe(message)}", file=sys.stderr)
    return 2


def _say(message: str) -> None:
    print(f"trailwarden replay: {message}", file=sys.stderr, flush=True)


def _duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def progress_line(status: Any, elapsed: float, findings: int) -> str:
    """Shards done, events, and per router shard how far (in arrival time) it still is from the end."""
    router = status.shards(Stage.ROUTER)
    done = sum(1 for s in router if status.router.get(s) is not None and status.router[s].done)
    parts = []
    for shard in router:
        progress = status.router.get(shard)
        label = _label(shard)
        if progress is None:
            parts.append(f"{label} starting")
        elif progress.done:
            parts.append(f"{label} done")
        else:
            behind = status.behind(shard)
            parts.append(f"{label} " + ("reading" if behind is None else f"{_duration(behind)} behind --to"))
    stateful = status.shards(Stage.STATEFUL)
    ended = sum(1 for s in stateful if status.stateful.get(s) is not None and status.stateful[s].done)
    return (
        f"replay {_duration(elapsed)}  router {done}/{len(router)} shards done  {status.events():,} events  "
        f"[{', '.join(parts)}]  stateful {ended}/{len(stateful)}  {findings:,} findings"
    )


def _label(shard: str) -> str:
    """shardId-000000000012 -> #12; any other id as it is."""
    digits = shard.removeprefix("shardId-")
    return f"#{digits.lstrip('0') or '0'}" if digits != shard and digits.isdigit() else safe(shard, 40)


def run(args: argparse.Namespace) -> int:
    from consumers.replay import Replay  # here, not at the top: ~40 ms the other commands do not need

    try:
        start, end = parse_window(args.start, args.end)
    except ValueError as exc:
        return _fail(str(exc))
    if args.config and not Path(args.config).is_file():
        return _fail(f"configuration file {args.config} does not exist or cannot be read")
    if args.keyed_shards is not None and args.keyed_shards <= 0:
        return _fail("--keyed-shards must be positive")
    rules = _rule_ids(args.rules)
    try:
        config = Config.load(args.config)
        chosen = bind_pack(config, only=rules).rules  # checks ids, the file and parameters now
        policy = AlertPolicy.from_config(config)
    except ConfigError as exc:
        return _fail(str(exc))
    if not chosen:
        return _fail("no rule is enabled: nothing to replay")
    target = aws.from_args(args)
    try:
        outputs = stack_outputs(target)
        target.client("kinesis").describe_stream_summary(StreamName=outputs["TrailStreamName"])
    except Exception as exc:
        return _fail(f"no trail stream on {target.label()} ({type(exc).__name__}: {exc}); is the stack up?")

    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    writer = make_writer(fmt, sys.stdout.buffer)
    emit = Emitter(writer, every=args.all, policy=policy)
    display = Display(enabled=not args.quiet, lines_every=PROGRESS_EVERY)
    job = Replay(
        target, outputs, start, end, rules=rules, alert=args.alert, config=args.config, keyed_shards=args.keyed_shards
    )
    seen: Counter[str] = Counter()

    def show(j: Any) -> None:
        new = j.findings()
        if new:
            display.clear()
            for f in new:
                seen[f.id] += 1
            emit(new)
            writer.close()  # flushes
        display.update(progress_line(j.status(), j.elapsed(), len(emit.seen)))

    code, graceful = 1, True
    with sigterm_interrupts():
        try:
            if not args.quiet:
                _say(
                    f"run {job.names.run_id}: records that reached {outputs['TrailStreamName']} from "
                    f"{iso_time(start)} to {iso_time(end)}; {len(chosen)} rules; "
                    f"alerts {'on' if args.alert else 'off'}"
                )
            job.start()
            if job.wait(timeout=args.timeout or None, on_poll=show):
                show(job)
                code, graceful = 0, False
            else:
                display.clear()
                _say(f"gave up after {args.timeout:g} s (--timeout)")
        except KeyboardInterrupt:
            display.clear()
            _say("interrupted; stopping and removing what this replay started")
            code = 130
        except Exception as exc:  # a daemon that exits, an endpoint that fails: say what, then clean up
            display.clear()
            log.debug("replay failed", exc_info=True)
            _say(f"failed: {type(exc).__name__}: {safe(str(exc))}")
        finally:
            with uninterrupted():
                display.clear()
                problems = job.close(graceful=graceful, keep_directory=code != 0)
                for problem in problems:
                    _say(f"could not remove {safe(problem)}")
                if code not in (0, 130) and job.directory.exists():
                    _say(f"daemon logs kept in {job.directory / 'kcl'}")
            writer.close()
    if code == 0 and not args.quiet:
        print(format_summary(summary(job, emit, seen)), file=sys.stderr)
    return code


def summary(job: Any, emit: Any, seen: Counter[str]) -> dict[str, Any]:
    status = job.status_
    router = list(status.router.values())
    stateful = list(status.stateful.values())
    elapsed = job.elapsed()
    events = sum(p.events for p in router)
    out: dict[str, Any] = {
        "run": job.names.run_id,
        "range": f"{iso_time(job.start_time)} to {iso_time(job.end_time)} (arrival in the stream)",
        "seconds": round(elapsed, 1),
        "records": sum(p.records for p in router),
        "events": events,
        "events_per_second": round(events / elapsed) if elapsed > 0 else 0,
        "trail_shards": {p.shard: p.reason for p in router},
        "keyed_facts": sum(p.records for p in stateful),
        "findings": dict(emit.emitted),
        **emit.policy_summary(),
        "repeats_of_a_finding_id": sum(n - 1 for n in seen.values() if n > 1),
        "published": sum(p.published for p in [*router, *stateful]),
        "already_alerted": sum(p.already_alerted for p in [*router, *stateful]),
    }
    dead = sum(p.dead_letters for p in [*router, *stateful])
    if dead:
        out["dead_letters"] = f"{dead} (s3://{job.outputs['StateBucketName']}/dead-letters/{job.names.router_app}/)"
    return out
