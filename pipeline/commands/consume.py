"""`trailwarden consume router|stateful`: one stage's KCL application (a MultiLangDaemon and its record
processors) in the foreground, until it exits or is told to stop. What a container runs on AWS; `trailwarden run`
starts each of its two daemons the same way (`consumers.live.launch`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from typing import Any

from infra import aws
from pipeline.settings import Settings, SettingsError, environment
from pipeline.stages import Stage

log = logging.getLogger(__name__)

EXAMPLES = """\
The stage reads the stack's names (streams, tables, topic, buckets, application names) from
$TRAILWARDEN_RESOURCES if set, else from the stack's outputs (CloudFormation on AWS, the template
locally). SIGTERM or Ctrl-C is passed on to the daemon as SIGTERM: its record processors finish the
batch in hand, deliver it and checkpoint (stage 2 saves its snapshot first), then the daemon exits (a
second signal kills it). Its leases keep its worker id until they expire (failoverTimeMillis), then
another worker takes them and reads on from the checkpoints. The exit status is the daemon's (143
after a SIGTERM, as for any JVM).

Logs, and the metrics (CloudWatch Embedded Metric Format lines, docs/metrics.md), go to stderr; stdout
stays empty. On AWS the worker id is the KCL's own (a random one per task); locally a fixed one,
<application>-local, whose leases are seeded so the first records are read within seconds.

examples:
  trailwarden consume router --aws                      # in the container (TRAILWARDEN_TARGET=aws)
  trailwarden consume stateful --aws --kcl-property retrievalMode=FANOUT --kcl-property metricsLevel=SUMMARY
  trailwarden consume router --endpoint-url http://localhost:4566    # against a local stack (stack up)
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="run one stage's KCL application (router or stateful) in the foreground, as a container does",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "stage",
        choices=[s.value for s in Stage],
        help="which stage: router (over the trail stream) or stateful (over the keyed stream)",
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="TOML configuration for the record processors (default: $TRAILWARDEN_CONFIG, then ./trailwarden.toml)",
    )
    parser.add_argument(
        "--stack",
        default=None,
        metavar="NAME",
        help="the CloudFormation stack whose outputs name the resources (default: trailwarden)",
    )
    parser.add_argument(
        "--initial-position",
        choices=("TRIM_HORIZON", "LATEST"),
        default="TRIM_HORIZON",
        help="where a shard without a checkpoint starts (default TRIM_HORIZON)",
    )
    parser.add_argument(
        "--worker-id",
        default="",
        metavar="ID",
        help="the KCL worker id (default: the KCL's random one on AWS, <application>-local locally)",
    )
    parser.add_argument(
        "--kcl-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other MultiLangDaemon property, e.g. retrievalMode=FANOUT (repeatable)",
    )
    parser.add_argument("--no-metrics", action="store_true", help="no metric lines on stderr (TRAILWARDEN_METRICS=off)")
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def _say(message: str) -> None:
    print(f"trailwarden consume: {message}", file=sys.stderr, flush=True)


def _properties(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--kcl-property {pair!r}: expected KEY=VALUE, e.g. retrievalMode=FANOUT")
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    # here, not at the top: the launcher and boto3 cost start-up time the other commands do not pay
    from consumers import launcher, live
    from infra.outputs import STACK_NAME, outputs

    try:
        target = aws.from_args(args, local=False)
        properties = _properties(args.kcl_property)
        resources = Settings().resources or outputs(target, args.stack or STACK_NAME)
    except (ValueError, SettingsError) as exc:
        _say(str(exc))
        return 2
    except Exception as exc:  # no such stack, no credentials, an endpoint that does not answer
        _say(
            f"cannot read the stack's outputs ({type(exc).__name__}: {exc}); deploy the stack, or set "
            "TRAILWARDEN_RESOURCES to its outputs as JSON"
        )
        return 2
    stage = Stage(args.stage)
    env = environment(config=args.config, metrics=False if args.no_metrics else None)
    spec = live.stage_spec(
        stage,
        resources,
        env,
        worker_suffix="local" if target.local else "",
        settings=properties,
        initial_position=args.initial_position,
    )
    if args.worker_id:
        spec = dataclasses.replace(spec, worker_id=args.worker_id)
    try:
        daemon = live.launch(spec, target, foreground=True)
    except launcher.JavaNotFound as exc:
        _say(str(exc))
        return 2
    _say(
        f"{stage} stage: KCL application {spec.application} over stream {spec.stream}, daemon pid {daemon.pid} "
        f"({'endpoint ' + str(target.endpoint_url) if target.local else 'AWS'})"
    )
    code = launcher.wait(daemon, say=_say)
    _say(f"daemon exited with status {code}")
    return code
