"""`trailwarden deliver`: the deliverers of the configured destinations, until stopped; `trailwarden destinations
list|redrive NAME`: their queues. `trailwarden run` starts `trailwarden deliver` as a child process and restarts
it when it exits; on AWS it is an ECS service. The stack's resource names come from $TRAILWARDEN_RESOURCES if
set (as the ECS task gives them), else from the stack's outputs."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from infra import aws
from pipeline.commands import sigterm_interrupts
from pipeline.config import Config, ConfigError
from pipeline.pack import bind_pack
from pipeline.routing import Routing
from pipeline.settings import Settings


def register(subparsers: Any) -> None:
    deliver = subparsers.add_parser(
        "deliver",
        help="send alerted findings to the configured destinations (Slack, PagerDuty, webhook, ...)",
        description="Run one deliverer per configured destination ([destinations.<name>] and [[routes]]): each "
        "drains its own queue on the findings topic, retries with backoff, and moves what keeps failing "
        "to its dead-letter queue. Runs until Ctrl-C or SIGTERM.",
    )
    deliver.add_argument("--config", default=None, help="trailwarden configuration file")
    deliver.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="deliver to this destination only (repeatable; default: all of them)",
    )
    aws.add_arguments(deliver)
    deliver.set_defaults(func=run_deliver)

    destinations = subparsers.add_parser(
        "destinations",
        help="the destinations' queues: list them, redrive a dead-letter queue",
        description="Show each configured destination's pending and dead-lettered findings, or move a "
        "destination's dead-letter queue back to its queue once the cause is fixed.",
    )
    destinations.add_argument("action", choices=("list", "redrive"))
    destinations.add_argument("name", nargs="?", help="the destination to redrive")
    destinations.add_argument("--config", default=None, help="trailwarden configuration file")
    aws.add_arguments(destinations)
    destinations.set_defaults(func=run_destinations)


def _say(message: str) -> None:
    print(f"trailwarden: {message}", file=sys.stderr, flush=True)


def run_deliver(args: argparse.Namespace) -> int:
    from consumers.deliverer import DeliveryThreads, build_deliverers  # here: only this command delivers
    from infra.outputs import outputs  # (the same reason)

    config = Config.load(args.config)
    routing = Routing.from_config(config)
    if not routing.destinations:
        raise ConfigError(f"{config.where()}: no [destinations.<name>] configured; docs/destinations.md shows how")
    target = aws.from_args(args)
    runbooks = {r.id: r.runbook for r in bind_pack(config).rules}
    resources = Settings().resources or outputs(target)
    deliverers, _ = build_deliverers(target, resources, routing, runbooks, only=args.only)
    threads = DeliveryThreads(deliverers).start()
    _say(f"delivering to {', '.join(d.name for d in deliverers)}; Ctrl-C stops")
    with sigterm_interrupts():
        try:
            while True:
                time.sleep(60)
                for d in deliverers:
                    s = d.stats
                    _say(f"{d.name}: {s.delivered} delivered, {s.retried} retried, {s.dead_lettered} dead-lettered")
        except KeyboardInterrupt:
            return 0
        finally:
            threads.stop()


def run_destinations(args: argparse.Namespace) -> int:
    from infra import destination_queues  # here: only this command reads the queues
    from infra.outputs import outputs  # (the same reason)

    config = Config.load(args.config)
    routing = Routing.from_config(config)
    target = aws.from_args(args)
    topic = outputs(target)["FindingsTopicArn"]
    if args.action == "redrive":
        if not args.name or args.name not in routing.destinations:
            raise ConfigError(f"redrive needs a destination name: one of {sorted(routing.destinations) or 'none'}")
        queue = destination_queues.ensure(target, topic, args.name)
        moved = destination_queues.redrive(target, queue)
        print(f"{args.name}: {moved} finding(s) moved from the dead-letter queue back to the queue")
        return 0
    for name, spec in sorted(routing.destinations.items()):
        queue = destination_queues.ensure(target, topic, name)
        print(
            f"{name:24} {spec.type:12} pending {destination_queues.depth(target, queue.url):6}  "
            f"dead-lettered {destination_queues.depth(target, queue.dlq_url):6}"
        )
    return 0
