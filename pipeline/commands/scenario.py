"""`trailwarden scenario`: write realistic CloudTrail with injected attacks, as any transport,
with the findings it must raise beside it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import Config
from pipeline.encode import FORMATS, encode
from pipeline.scenario import ATTACKS, build, resolve_attacks

EXAMPLES = """\
output (OUT):
  cwl, s3        a directory: CloudWatch Logs subscription records (cwl-000001.json.gz ...), or CloudTrail
                 log files under AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/
  jsonl,         a file (an existing directory gets events.jsonl / eventbridge.jsonl);
  eventbridge    a name ending in .gz is gzipped
  beside it:     OUT.expected.json (the findings the attacks must raise) and OUT.trailwarden.toml
                 (rule periods scaled to the scenario's length: a month of history in a few hours)

examples:
  trailwarden scenario --events 20000 --out /tmp/trail.jsonl
  trailwarden scan /tmp/trail.jsonl --config /tmp/trail.jsonl.trailwarden.toml
  trailwarden scenario --format cwl --attacks none --events 100000 --out /tmp/background
  trailwarden scenario --list-attacks
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scenario",
        help="generate realistic CloudTrail with attacks injected, as any transport",
        description="Generate an organization's CloudTrail (benign background with attacks injected at chosen "
        "points), deterministic from a seed, and the findings it must raise.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scenario_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="transport to write (default jsonl)")
    parser.add_argument(
        "--per-record", type=int, default=75, metavar="N", help="events per CloudWatch Logs record (default 75)"
    )
    parser.add_argument("--out", "-o", metavar="PATH", help="directory (cwl, s3) or file (jsonl, eventbridge)")
    parser.add_argument("--list-attacks", action="store_true", help="list the attack scenarios and exit")
    parser.set_defaults(func=run)


def add_scenario_arguments(parser: argparse.ArgumentParser, events: int = 5000) -> None:
    """The options `scenario`, `demo` and `simulate` share."""
    parser.add_argument(
        "--events",
        "-n",
        type=int,
        default=events,
        metavar="N",
        help=f"about how many records (default {events}; attacks add their own if more)",
    )
    parser.add_argument("--seed", type=int, default=1, help="same seed, same scenario (default 1)")
    parser.add_argument(
        "--attacks",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help="all (default), none, or attack names (see --list-attacks)",
    )
    parser.add_argument("--accounts", type=int, default=6, metavar="N", help="accounts in the organization (2-8)")


def list_attacks() -> int:
    width = max(len(n) for n in ATTACKS)
    for attack in ATTACKS.values():
        kind = "stateful" if attack.stateful else "match"
        print(f"{attack.name:<{width}}  {kind:<8}  {attack.summary}")
    return 0


def build_from_args(args: argparse.Namespace, config: Config | None = None) -> Any:
    """The scenario the shared options describe, its attacks timed for `config` (e.g. its business hours);
    raises ValueError with a message for the user."""
    if args.events < 0:
        raise ValueError("--events must be zero or more")
    return build(args.events, args.seed, resolve_attacks(args.attacks), accounts=args.accounts, config=config)


def run(args: argparse.Namespace) -> int:
    if args.list_attacks:
        return list_attacks()
    if not args.out:
        print("trailwarden scenario: --out is required (a directory for cwl and s3, a file otherwise)", file=sys.stderr)
        return 2
    try:
        scenario = build_from_args(args)
    except ValueError as exc:
        print(f"trailwarden scenario: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    gz = out.suffix == ".gz"
    try:
        written = write(scenario.events, args.format, out, seed=args.seed, per_record=args.per_record, gz=gz)
        beside = out.with_name(out.name + ".expected.json")
        beside.write_bytes(orjson.dumps(scenario.summary(), option=orjson.OPT_INDENT_2))
        config = out.with_name(out.name + ".trailwarden.toml")
        config.write_text(scenario.config_toml())
    except OSError as exc:
        print(f"trailwarden scenario: cannot write {exc.filename or out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(
        f"{len(scenario.events):,} events, {len(scenario.attacks)} attacks, {len(scenario.expected)} expected "
        f"findings -> {written} file(s) under {out}\n"
        f"expected findings: {beside}\nscaled rule periods: {config}\n"
        f"scan it: trailwarden scan {out} --config {config}",
        file=sys.stderr,
    )
    return 0


def write(events: list[dict[str, Any]], fmt: str, out: Path, *, seed: int, per_record: int, gz: bool) -> int:
    """Write the encoded files; returns how many."""
    single = fmt in ("jsonl", "eventbridge")
    if single and not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        [(_, data)] = list(encode(events, fmt, seed=seed, gz=gz))
        out.write_bytes(data)
        return 1
    n = 0
    for name, data in encode(events, fmt, seed=seed, per_record=per_record, gz=gz):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        n += 1
    return n
