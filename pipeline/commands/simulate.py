"""`trailwarden simulate`: play CloudTrail into the trail log group, as CloudTrail delivers to CloudWatch Logs."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson

from infra import aws
from infra.outputs import outputs as stack_outputs
from infra.trail_player import Player, PlayStats
from pipeline.alerting import rule_routes
from pipeline.commands.scenario import add_scenario_arguments, build_from_args
from pipeline.config import Config, ConfigError
from pipeline.decode import DeadLetter
from pipeline.pack import bind_pack
from pipeline.progress import Progress
from pipeline.sources import Reader, SourceError, resolve

EXAMPLES = """\
Records go to the log group with PutLogEvents, into log streams named <account>_CloudTrail_<region>,
in event-time order per stream, in calls within the API's limits (10,000 events, 1 MB). The local
stack's subscription filter then delivers them to the trail stream, as on AWS.

examples:
  trailwarden stack up
  trailwarden simulate                                 # the built-in scenario, every attack
  trailwarden simulate --attacks root-usage console-brute-force --events 2000 --rate 200
  trailwarden simulate --scenario none --events 100000            # background only
  trailwarden simulate tests/fixtures/stratus-red-team/detonation-logs/  # any file `trailwarden scan` reads
  trailwarden simulate --endpoint-url http://localhost:4566 trail.json.gz   # e.g. LocalStack

With a scenario, the findings it must raise are printed on stdout at the end (one JSON object per
line with --json), so they can be compared with what the pipeline reports: each says whether the alert
policy ([alerts] of the configuration the consumers use) alerts it on the topic or only archives it.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="send CloudTrail events into the trail log group (plays CloudTrail locally)",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="CloudTrail files or directories (any format `scan` reads); none: the scenario builder",
    )
    add_scenario_arguments(parser, events=2000)
    parser.add_argument(
        "--scenario",
        dest="attacks",
        type=_names,
        default=argparse.SUPPRESS,
        metavar="NAME[,NAME...]",
        help="same as --attacks, comma-separated",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="EPS",
        help="events per second (default: as fast as the endpoint takes them)",
    )
    parser.add_argument(
        "--account", metavar="ID", help="account id in the log stream names (default: each record's recipientAccountId)"
    )
    parser.add_argument(
        "--streams-per-region",
        type=int,
        default=1,
        metavar="K",
        help="log streams per account-region, as CloudTrail uses for busy ones (default 1)",
    )
    parser.add_argument("--log-group", help="log group (default: the template's TrailLogGroupName)")
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="the consumers' configuration, so that the scenario's timing and expectations follow it "
        "(e.g. its business hours) and each expected finding says whether its alert policy "
        "alerts it or only archives it",
    )
    parser.add_argument("--json", action="store_true", help="print expected findings as JSON lines")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary on stderr")
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()] or ["all"]


def _fail(message: str) -> int:
    print(f"trailwarden simulate: {message}", file=sys.stderr)
    return 2


def _from_files(paths: list[str], dead: Counter[str]) -> Iterator[dict[str, Any]]:
    for item in Reader(resolve(paths)).items():
        if isinstance(item, DeadLetter):
            dead[item.kind or item.reason] += 1
        else:
            yield item.raw


class _PlayProgress(Progress):
    def line(self, bytes_done: int, events: int, elapsed: float) -> str:
        rate = events / elapsed if elapsed > 0 else 0.0
        if self.total:
            frac = min(events / self.total, 1.0)
            bar = "#" * int(frac * 24) + "-" * (24 - int(frac * 24))
            return f"simulate [{bar}] {events:,}/{self.total:,} events {frac:4.0%}  {rate:,.0f} events/s"
        return f"simulate {events:,} events  {rate:,.0f} events/s"


def run(args: argparse.Namespace) -> int:
    try:
        target = aws.from_args(args)
    except ValueError as error:
        return _fail(str(error))
    if args.rate is not None and args.rate <= 0:
        return _fail("--rate must be positive")
    scenario = None
    routes: dict[str, str] = {}
    dead: Counter[str] = Counter()
    if args.paths:
        try:
            records = list(_from_files(args.paths, dead))
        except SourceError as error:
            return _fail(str(error))
    else:
        try:
            config = Config.load(args.config) if args.config else Config.from_dict()
            scenario = build_from_args(args, config)
            routes = rule_routes(bind_pack(config).rules, config)
        except (ValueError, ConfigError) as error:
            return _fail(str(error))
        records = scenario.events

    log_group = args.log_group or ""
    progress = _PlayProgress(len(records), enabled=False if args.quiet else None)
    try:
        if not log_group:
            log_group = stack_outputs(target)["TrailLogGroupName"]
        player = Player(
            target.client("logs"),
            log_group,
            rate=args.rate,
            streams_per_region=args.streams_per_region,
            account=args.account,
            on_progress=lambda s: progress.update(s.events, s.events),
        )
        stats = player.play(records)
    except Exception as error:  # an endpoint that is down or a missing log group: say what to do
        progress.close()
        hint = " (is the local stack up? `trailwarden stack up`)" if target.local else ""
        return _fail(f"delivery to {log_group or 'the trail log group'} at {target.label()} failed: {error}{hint}")
    progress.close()
    if not args.quiet:
        _summary(stats, log_group, dead)
    if scenario is not None:
        _print_expected(scenario, args.json, routes)
    return 0


def _summary(stats: PlayStats, log_group: str, dead: Counter[str]) -> None:
    parts = [
        f"sent {stats.events:,} events to {log_group} in {stats.calls:,} PutLogEvents calls",
        f"{len(stats.streams)} log streams",
        f"{stats.elapsed:.1f} s",
        f"{stats.rate:,.0f} events/s",
    ]
    print("trailwarden simulate: " + ", ".join(parts), file=sys.stderr)
    if stats.rejected or stats.oversize:
        print(
            f"  rejected by PutLogEvents: {stats.rejected}; above 256 KB (CloudTrail drops them): {stats.oversize}",
            file=sys.stderr,
        )
    for kind, count in dead.most_common():
        print(f"  not sent, could not be decoded: {count} x {kind}", file=sys.stderr)


def _print_expected(scenario: Any, as_json: bool, routes: dict[str, str]) -> None:
    """The scenario's expectations, each with where the alert policy sends it (`routes`, by rule id)."""
    out = sys.stdout
    if as_json:
        for expected in scenario.expected:
            route = routes.get(expected.rule_id, "no such rule enabled")
            out.write(orjson.dumps({**expected.to_dict(), "delivery": route}).decode() + "\n")
        return
    present = [e for e in scenario.expected if e.present]
    absent = [e for e in scenario.expected if not e.present]
    out.write(f"expected findings ({len(present)}, seed {scenario.seed}):\n")
    for e in present:
        facts = " ".join(f"{k}={v}" for k, v in sorted(e.facts.items()))
        stage = (" [stateful]" if e.stateful else "") + (" [resolved later]" if e.status == "resolved" else "")
        route = routes.get(e.rule_id, "no such rule enabled")
        out.write(f"  {e.rule_id:40} account={e.account or '-'} {facts}{stage}  ({e.attack}; {route})\n")
    if absent:
        out.write(f"must not be raised ({len(absent)}):\n")
        for e in absent:
            out.write(f"  {e.rule_id:40} account={e.account or '-'}  ({e.attack})\n")
