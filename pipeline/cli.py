"""`trailwarden`: the command line. Each module in `pipeline/commands/` adds one subcommand.

A command module defines `register(subparsers)` which adds its parser and sets `func`, a
callable taking the parsed arguments and returning the exit status. Output meant for people or
pipes goes to stdout; logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from pipeline import commands
from pipeline.config import ConfigError
from pipeline.runtime import tune_gc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trailwarden",
        description="Catch suspicious AWS API activity in CloudTrail: offline over files, or live from Kinesis.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"pipeline.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    tune_gc()
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"trailwarden: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trailwarden: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
