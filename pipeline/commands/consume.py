"""`trailwarden consume router|stateful`: one stage's KCL application (a MultiLangDaemon and its record
processors) in the foreground, until it exits or is told to stop. What a container runs on AWS; `trailwarden run`
starts each of its two daemons the same way (`consumers.live.launch`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import sys
import uuid
from typing import Any

from infra import aws
from pipeline.settings import Settings, SettingsError, environment
from pipeline.stages import Stage

log = logging.getLogger(__name__)

STOP_TIMEOUT = 90.0  # seconds; the task definitions' StopTimeout is 120

EXAMPLES = """\
The stage reads the stack's names (streams, tables, topic, buckets, application names) from
$TRAILWARDEN_RESOURCES if set, else from the stack's outputs (CloudFormation on AWS, the template
locally). SIGTERM or Ctrl-C is passed on to the daemon as SIGTERM: its record processors finish the
batch in hand, deliver it and checkpoint (stage 2 saves its snapshot first), then the daemon exits (a
second signal, or no exit within --stop-timeout seconds, kills it). The KCL itself leaves its leases
owned until they expire, so once the daemon is gone this command gives them back: every lease still
owned by its worker id is left without an owner (checkpoints untouched), its leader lock and worker
metrics row are removed, and another worker takes the shards at once. The exit status is the daemon's
(143 after a SIGTERM, as for any JVM; 137 if it had to be killed).

Logs, and the metrics (CloudWatch Embedded Metric Format lines, docs/metrics.md), go to stderr; stdout
stays empty. The worker id is <host>:<random UUID> on AWS (one per task), <application>-local locally,
whose leases are seeded so the first records are read within seconds.

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
        help="the KCL worker id (default: <host>:<random UUID> on AWS, <application>-local locally)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=STOP_TIMEOUT,
        metavar="SECONDS",
        help=f"after a SIGTERM, how long the daemon may take to exit before it is killed (default {STOP_TIMEOUT:g}: "
        "under the task's StopTimeout of 120 s, leaving time to give the leases back)",
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
    worker_id = args.worker_id or spec.worker_id or f"{socket.gethostname()}:{uuid.uuid4()}"
    spec = dataclasses.replace(spec, worker_id=worker_id)  # known here, so its leases can be given back
    try:
        daemon = live.launch(spec, target, foreground=True)
    except launcher.JavaNotFound as exc:
        _say(str(exc))
        return 2
    _say(
        f"{stage} stage: KCL application {spec.application} over stream {spec.stream}, worker {worker_id}, "
        f"daemon pid {daemon.pid} ({'endpoint ' + str(target.endpoint_url) if target.local else 'AWS'})"
    )
    code = launcher.wait(daemon, say=_say, stop_timeout=args.stop_timeout)
    _say(f"daemon exited with status {code}")
    _give_back(target, spec.application, worker_id)
    return code


def _give_back(target: aws.Target, application: str, worker_id: str) -> None:
    """The daemon is gone: give its worker's leases, leader lock and metrics row back (`leases.release_worker`)."""
    from consumers import leases  # here, as in run(): the consumers' modules load only for this command

    try:
        released = leases.release_worker(target.client("dynamodb"), application, worker_id)
    except Exception as exc:  # the table unreachable: the leases expire after the failover time instead
        _say(f"could not give the leases back ({type(exc).__name__}: {exc}); they expire after the failover time")
        return
    _say(
        f"gave back {len(released.leases)} lease(s) of worker {worker_id} ({', '.join(released.leases) or 'none'})"
        f"{', the leader lock' if released.leader else ''}"
        f"{', its worker metrics row' if released.metrics else ''}"
    )
