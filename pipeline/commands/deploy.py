"""`trailwarden deploy`: create or update the stack on AWS through a CloudFormation change set.

The parameters are checked against the template first (a name it does not declare, or a value outside its
allowed values, pattern or range, stops the deploy before anything changes). Then a change set is created and
its changes shown as a table; after a yes (or --yes) it is executed and the stack's events are followed until it
settles, and the stack's outputs are printed (also when an existing stack has nothing to change). --dry-run
shows the change set, deletes it and changes nothing. A stack that exists keeps the values of the parameters
not given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from infra import aws, cfn
from infra.deploy import ChangeSet, Deployer, DeployError, DeployRequest, ParameterError, parse_parameters
from infra.outputs import STACK_NAME

EXAMPLES = """\
examples:
  trailwarden deploy --image 111122223333.dkr.ecr.eu-west-1.amazonaws.com/trailwarden:1.2.0 \\
      --parameters Subnets=subnet-0a1b2c3d,subnet-4e5f6a7b SecurityGroups=sg-0123abcd OperationsEmail=ops@example.com
  trailwarden deploy --dry-run --parameters RouterMaxTasks=8        # what would change, nothing changed
  trailwarden deploy --endpoint-url http://127.0.0.1:4566 --yes     # an emulator's CloudFormation
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="create or update the stack on AWS through a CloudFormation change set",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack-name", default=STACK_NAME, help=f"the stack (default {STACK_NAME})")
    parser.add_argument("--image", metavar="URI", help="the consumers' container image (the template's Image)")
    parser.add_argument(
        "--parameters",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=VALUE",
        help="template parameters (lists comma-separated: Subnets=subnet-1,subnet-2)",
    )
    parser.add_argument("--template", type=Path, default=cfn.TEMPLATE, help="the template (default: the packaged one)")
    parser.add_argument(
        "--template-bucket",
        metavar="BUCKET",
        help="S3 bucket for a template above CloudFormation's inline 51,200 bytes "
        "(default <stack>-templates-<account>-<region>, created private if missing)",
    )
    parser.add_argument("--yes", action="store_true", help="execute without asking")
    parser.add_argument("--dry-run", action="store_true", help="show the change set, delete it, change nothing")
    parser.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _request(args: argparse.Namespace) -> DeployRequest:
    parameters = parse_parameters(args.parameters)
    if args.image:
        if "Image" in parameters and parameters["Image"] != args.image:
            raise ParameterError("--image and --parameters Image=... disagree; give one")
        parameters["Image"] = args.image
    return DeployRequest(args.stack_name, parameters, args.template, args.template_bucket)


def change_table(change_set: ChangeSet) -> str:
    """The change set's changes as an aligned table (action, logical id, type, replacement)."""
    rows = [("ACTION", "RESOURCE", "TYPE", "REPLACEMENT")]
    rows += [(c.action, c.logical_id, c.type, c.replacement) for c in change_set.changes]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _event_line(event: dict[str, Any]) -> str:
    reason = event.get("ResourceStatusReason") or ""
    return (
        f"  {event['Timestamp']:%H:%M:%S}  {event['ResourceStatus']:<28} {event['LogicalResourceId']:<28} "
        f"{event.get('ResourceType', '')}" + (f"  {reason}" if reason else "")
    )


def _confirm(change_set: ChangeSet) -> bool:
    verb = "create" if change_set.kind == "CREATE" else "update"
    answer = input(f"{verb} stack {change_set.stack} with these {len(change_set.changes)} changes? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
        target = aws.from_args(args, local=False)
    except (DeployError, ValueError) as error:
        _say(f"trailwarden deploy: {error}; nothing changed")
        return 2
    if not (args.yes or args.dry_run or sys.stdin.isatty()):
        _say("trailwarden deploy: no terminal to ask for confirmation: add --yes to execute, or --dry-run to look")
        return 2
    deployer = Deployer(target, poll_seconds=args.poll)
    try:
        _say(f"creating a change set for stack {request.stack} on {target.label()} ...")
        change_set = deployer.prepare(request)
        if change_set.empty:
            _say(f"stack {request.stack}: no changes")
            if change_set.kind == "CREATE":
                deployer.discard(change_set)
                return 0
            return print_outputs(deployer, request.stack)
        print(f"change set {change_set.name} ({change_set.kind}) of stack {change_set.stack}:")
        print(change_table(change_set), flush=True)
        if args.dry_run:
            deployer.discard(change_set)
            _say("dry run: change set deleted, nothing changed")
            return 0
        if not args.yes and not _confirm(change_set):
            deployer.discard(change_set)
            _say("not executed: change set deleted, nothing changed")
            return 1
        _say(f"executing {change_set.name} ...")
        status = deployer.execute(change_set, on_event=lambda e: _say(_event_line(e)))
        _say(f"stack {request.stack}: {status}")
    except ParameterError as error:
        _say(f"trailwarden deploy: {error}; nothing changed")
        return 2
    except DeployError as error:
        _say(f"trailwarden deploy: {error}")
        return 1
    except (BotoCoreError, ClientError, cfn.TemplateError) as error:
        _say(f"trailwarden deploy: {error}")
        return 1
    return print_outputs(deployer, request.stack)


def print_outputs(deployer: Deployer, stack: str) -> int:
    """The stack's outputs on stdout, one `KEY  VALUE` line each (keys aligned); 1 if they cannot be read."""
    try:
        outputs = deployer.outputs(stack)
    except (BotoCoreError, ClientError) as error:
        _say(f"trailwarden deploy: the stack's outputs cannot be read: {error}")
        return 1
    width = max(map(len, outputs), default=0)
    for key, value in outputs.items():
        print(f"{key:{width}}  {value}")
    return 0
