"""`trailwarden stack up|down|status`: the local AWS stack (emulator + the template's resources).

`up` starts the embedded emulator (moto under hypercorn on 127.0.0.1:4566) as a background process
recorded in `~/.local/state/trailwarden/emulator.pid` (or under $TRAILWARDEN_STATE_DIR), waits until it
is healthy and provisions every resource of infra/template.yaml that it can hold, the consumer service's
ECS, scaling and alarm resources included (nothing runs its image locally). Against another
endpoint (AWS_ENDPOINT_URL, LOCALSTACK_HOST, --endpoint-url: e.g. LocalStack) it only provisions. Both
are idempotent. `down` stops only the process `up` started and checks that the port is free. `status`
shows the emulator and each resource.

With --localstack, `up` starts LocalStack (installed by `make localstack`) on 127.0.0.1:4566 (or --port) for
Kinesis, Logs, SNS, SQS, S3, Firehose, IAM, STS and KMS, and the embedded emulator on the next port for DynamoDB
and Glue, provisions across the two and prints the variables that point later commands at them; `down
--localstack` stops both, `status --localstack` shows them.
"""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from infra import aws, cfn, emulator, localstack, provision
from infra.outputs import LOCAL_SERVICE

_AWS_HINT = (
    "on AWS, deploy the template with CloudFormation:\n"
    "  aws cloudformation deploy --template-file infra/template.yaml --stack-name trailwarden "
    "--capabilities CAPABILITY_IAM"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stack", help="start, provision, inspect or stop the local AWS stack")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    actions = parser.add_subparsers(dest="stack_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the emulator if needed and provision the template's resources")
    up.add_argument("--reset", action="store_true", help="drop everything in the emulator first (moto reset)")
    down = actions.add_parser("down", help="stop the emulator that `stack up` started")
    status = actions.add_parser("status", help="show the emulator and every template resource")
    status.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    for sub in (up, down, status):
        sub.add_argument(
            "--localstack",
            action="store_true",
            help="LocalStack (from `make localstack`) for Kinesis, Logs, SNS, SQS, S3, Firehose, IAM, STS, KMS, "
            "and the embedded emulator on the next port for DynamoDB and Glue",
        )
        aws.add_arguments(sub)
        sub.add_argument(
            "--port",
            type=int,
            default=None,
            help=f"run the embedded emulator on this port of {emulator.DEFAULT_HOST} (default {emulator.DEFAULT_PORT})",
        )
    parser.set_defaults(func=run)


def _target(args: argparse.Namespace) -> aws.Target:
    if args.port is not None:
        if getattr(args, "aws_target", None):
            raise SystemExit("trailwarden stack: --port is for the embedded emulator; drop --aws/--endpoint-url")
        return aws.emulator(f"http://{emulator.DEFAULT_HOST}:{args.port}")
    return aws.from_args(args)


def run(args: argparse.Namespace) -> int:
    if args.localstack:
        if getattr(args, "aws_target", None):
            raise SystemExit(
                "trailwarden stack: --localstack starts its own LocalStack; drop --aws/--endpoint-url "
                "(for a LocalStack you run yourself, give --endpoint-url alone)"
            )
        return {"up": _up_localstack, "down": _down_localstack, "status": _status_localstack}[args.stack_action](args)
    target = _target(args)
    if not target.local:
        print(f"trailwarden stack: the local stack has no meaning on real AWS; {_AWS_HINT}", file=sys.stderr)
        return 2
    action = {"up": _up, "down": _down, "status": _status}[args.stack_action]
    return action(args, target)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _host_port(target: aws.Target) -> tuple[str, int]:
    url = urlparse(target.endpoint_url or "")
    return url.hostname or emulator.DEFAULT_HOST, url.port or (443 if url.scheme == "https" else 80)


def ensure_emulator(target: aws.Target) -> emulator.Emulator | None:
    """For the emulator target: the running emulator, started if needed. None for other endpoints."""
    if target.kind != "emulator":
        if emulator.health(target.endpoint_url or "") is None:
            _say(f"using endpoint {target.endpoint_url} (not started by trailwarden)")
        return None
    host, port = _host_port(target)
    current = emulator.running()
    if current is not None and (current.host, current.port) == (host, port) and current.healthy():
        _say(f"emulator already running: pid {current.pid} at {current.endpoint}")
        return current
    if current is not None:
        raise RuntimeError(
            f"the emulator recorded in {emulator.default_pid_file()} (pid {current.pid} at {current.endpoint}) "
            f"is not healthy at {target.endpoint_url}; run `trailwarden stack down` first"
        )
    if not emulator.port_free(host, port):
        document = emulator.health(target.endpoint_url or "")
        if document is not None:
            _say(
                f"a trailwarden emulator (pid {document.get('pid')}) already serves {target.endpoint_url}; "
                "using it (it was not started by this checkout, so `stack down` will not stop it)"
            )
            return None
        raise RuntimeError(
            f"{host}:{port} is in use by something else; stop it, or point trailwarden at it with "
            "AWS_ENDPOINT_URL / --endpoint-url if it is an AWS emulator"
        )
    _say(f"starting the emulator on {host}:{port} ...")
    handle = emulator.start(port, host, pid_file=emulator.default_pid_file())
    _say(f"emulator pid {handle.pid} healthy at {handle.endpoint} (log {handle.log_file})")
    return handle


def _up(args: argparse.Namespace, target: aws.Target) -> int:
    try:
        ensure_emulator(target)
    except RuntimeError as error:
        _say(f"trailwarden stack up: {error}")
        return 1
    if args.reset:
        emulator.reset(target.endpoint_url or "")
        _say("emulator state reset")
    return _provision(target)


def _provision(target: aws.Target) -> int:
    counts = {"created": 0, "kept": 0}

    def progress(row: provision.Row, created: bool) -> None:
        r = row.resource
        if created:
            counts["created"] += 1
            _say(f"  created  {r.type:38} {r.name}")
        elif row.state == provision.PRESENT:
            counts["kept"] += 1
        else:
            _say(f"  {row.state:8} {r.type:38} {r.logical_id}: {row.reason}")

    try:
        outputs = provision.provision(target, LOCAL_SERVICE, on_resource=progress)
    except (BotoCoreError, ClientError, cfn.TemplateError) as error:
        _say(f"trailwarden stack up: provisioning at {target.endpoint_url} failed: {error}")
        return 1
    _say(f"stack ready at {target.label()}: {counts['created']} created, {counts['kept']} already there")
    width = max(map(len, outputs), default=0)
    for key, value in outputs.items():
        print(f"{key:{width}}  {value}")
    return 0


def _down(args: argparse.Namespace, target: aws.Target) -> int:
    if target.kind != "emulator":
        _say(f"trailwarden stack down: {target.endpoint_url} was not started by trailwarden; nothing to stop")
        return 0
    host, port = _host_port(target)
    handle = emulator.running()
    if handle is None:
        emulator.default_pid_file().unlink(missing_ok=True)
        busy = not emulator.port_free(host, port)
        _say(
            "no emulator started by `trailwarden stack up` is running"
            + (f"; {host}:{port} is in use by another process, left alone" if busy else "")
        )
        return 0
    try:
        handle.stop()
    except RuntimeError as error:
        _say(f"trailwarden stack down: {error}")
        return 1
    _say(f"stopped emulator pid {handle.pid}; {handle.host}:{handle.port} is free")
    return 0


def _status(args: argparse.Namespace, target: aws.Target) -> int:
    handle = emulator.running() if target.kind == "emulator" else None
    reachable = emulator.health(target.endpoint_url or "") is not None
    if not reachable and target.kind != "emulator":
        reachable = not emulator.port_free(*_host_port(target))
    resources: list[dict[str, str]] = []
    document: dict[str, object] = {
        "endpoint": target.endpoint_url,
        "kind": target.kind,
        "emulator_pid": handle.pid if handle else None,
        "reachable": reachable,
        "resources": resources,
    }
    ok = reachable
    if reachable:
        try:
            rows = provision.status(target, LOCAL_SERVICE)
        except (BotoCoreError, ClientError) as error:
            _say(f"trailwarden stack status: {target.endpoint_url} answered with an error: {error}")
            return 1
        resources[:] = [
            {
                "logical_id": r.resource.logical_id,
                "type": r.resource.type,
                "name": r.resource.name,
                "state": r.state,
                "reason": r.reason,
            }
            for r in rows
        ]
        ok = all(r.state != provision.MISSING for r in rows)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0 if ok else 1
    owner = f"emulator pid {handle.pid}" if handle else ("endpoint" if target.kind != "emulator" else "emulator")
    print(f"{owner} at {target.endpoint_url}: {'up' if reachable else 'not running'}")
    for row in resources:
        reason = f"  ({row['reason']})" if row["reason"] else ""
        print(f"  {row['state']:8} {row['type']:38} {row['name']}{reason}")
    return 0 if ok else 1


def _up_localstack(args: argparse.Namespace) -> int:
    pair = localstack.recorded()
    if pair is not None:
        _say(
            f"LocalStack already running: pid {pair.localstack.pid} at {pair.localstack.endpoint}, "
            f"emulator pid {pair.emulator.pid} at {pair.emulator.endpoint}"
        )
    else:
        port = args.port or emulator.DEFAULT_PORT
        _say(
            f"starting LocalStack on {emulator.DEFAULT_HOST}:{port} and the emulator on :{port + 1} "
            "(the first Kinesis call installs kinesis-mock through npm) ..."
        )
        try:
            pair = localstack.start_pair(emulator.state_dir() / "localstack", port, port + 1)
        except RuntimeError as error:
            _say(f"trailwarden stack up --localstack: {error}")
            return 1
        localstack.record(pair)
        _say(
            f"LocalStack pid {pair.localstack.pid} (log {pair.localstack.log_file}), "
            f"emulator pid {pair.emulator.pid} (log {pair.emulator.log_file})"
        )
    if args.reset:
        emulator.reset(pair.emulator.endpoint)
        _say("emulator state reset (LocalStack's is not: `stack down --localstack` forgets it)")
    target = pair.target()
    status = _provision(target)
    if status == 0:
        _say("point other commands at it with:\n  " + "\n  ".join(localstack.exports(target)))
    return status


def _down_localstack(args: argparse.Namespace) -> int:
    pair = localstack.recorded()
    if pair is None:
        localstack.state_file().unlink(missing_ok=True)
        _say("no LocalStack started by `trailwarden stack up --localstack` is running")
        return 0
    try:
        pair.stop()
    except RuntimeError as error:
        _say(f"trailwarden stack down --localstack: {error}")
        return 1
    localstack.state_file().unlink(missing_ok=True)
    _say(f"stopped LocalStack pid {pair.localstack.pid} and emulator pid {pair.emulator.pid}")
    return 0


def _status_localstack(args: argparse.Namespace) -> int:
    pair = localstack.recorded()
    if pair is None:
        _say("no LocalStack started by `trailwarden stack up --localstack` is running")
        return 1
    return _status(args, pair.target())
