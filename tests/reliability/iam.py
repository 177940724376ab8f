"""Least privilege: the AWS API calls the code makes, found statically, against the template's grants.

`calls()` scans the project's Python (pipeline/, consumers/, infra/) with `ast` for `<client>.<method>(...)`
where the receiver is a boto3 client: `x.client("svc").m(...)`, a name assigned from `.client("svc")`, an
attribute named after a service (`self.kinesis`, `c.s3`), or `self.client` in a class constructed with
`.client("svc")` as its client argument anywhere in the project; `get_paginator("op")` and `get_waiter("w")`
count as the operation they run. botocore's service model maps a method to its API operation; the IAM action
is `<signing name>:<Operation>`, except where IAM names the permission differently (IAM_NAMES).

`consumer_calls()` keeps the calls the consumer processes make: the modules imported (at module level) from
consumers.router and consumers.stateful, transitively, and, for an import inside a function (`from
infra.outputs import outputs`), only that function and the functions of its module it calls.
`operator_calls()` does the same from the entries of `trailwarden replay` (the command, the job and its two
daemons, which run under the operator's credentials) and `trailwarden backfill`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "consumers", "infra")
CONSUMER_ENTRIES = ("consumers.router", "consumers.stateful")
OPERATOR_ENTRIES = (
    "consumers.replay",
    "consumers.router",
    "consumers.stateful",
    "pipeline.commands.replay",
    "pipeline.commands.backfill",
    "consumers.archive",
)
# `trailwarden deliver` (the deliverer's ECS service): the command, and the deliverer and destinations it imports
# inside its function.
DELIVERER_ENTRIES = ("pipeline.commands.deliver", "consumers.deliverer", "consumers.destinations.build")
ALIASES = {"ddb": "dynamodb", "cfn": "cloudformation", "firehose": "firehose", "cwlogs": "logs"}

# API operations whose IAM permission has another name (Service Authorization Reference).
IAM_NAMES = {
    "sns:PublishBatch": "sns:Publish",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "s3:PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "s3:DeleteObjects": "s3:DeleteObject",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

# What the KCL 3.1 MultiLangDaemon (Java) calls itself, for its lease, worker-metrics and coordinator-state
# tables and the stream: the AWS list "IAM permissions required for KCL consumer applications"
# (docs.aws.amazon.com/streams/latest/dev/kcl-iam-permissions.html), checked against the request classes the
# kclpy-ext 3.1.3 jars reference. UpdateContinuousBackups is only called with leaseTablePitrEnabled (not set).
KCL_ACTIONS: dict[str, str] = {
    "kinesis:DescribeStream": "stream exists and is active (AWS minimum list)",
    "kinesis:DescribeStreamSummary": "stream checks, consumer registration",
    "kinesis:ListShards": "shard sync, lease creation, child shards",
    "kinesis:GetShardIterator": "polling retrieval",
    "kinesis:GetRecords": "polling retrieval",
    "dynamodb:CreateTable": "lease, worker metrics and coordinator state tables",
    "dynamodb:DescribeTable": "same tables",
    "dynamodb:UpdateTable": "lease table: the leaseOwner index on an existing table, deletion protection",
    "dynamodb:Scan": "lease and worker metrics tables, leader lock",
    "dynamodb:Query": "lease table index LeaseOwnerToLeaseKeyIndex, leader lock",
    "dynamodb:GetItem": "leases, coordinator state, leader lock",
    "dynamodb:PutItem": "leases, worker metrics, coordinator state",
    "dynamodb:UpdateItem": "lease renewal, taking, checkpoints",
    "dynamodb:DeleteItem": "leases of finished shards, worker metrics",
    "cloudwatch:PutMetricData": "KCL metrics (and the consumers' own namespace)",
}
KCL_FANOUT_ACTIONS: dict[str, str] = {
    "kinesis:RegisterStreamConsumer": "enhanced fan-out (RetrievalMode FANOUT)",
    "kinesis:DescribeStreamConsumer": "enhanced fan-out",
    "kinesis:SubscribeToShard": "enhanced fan-out",
}
# Needed by the services on the caller's behalf when a customer managed key encrypts what it touches.
KMS_ACTIONS: dict[str, str] = {
    "kms:Decrypt": "reading KMS-encrypted streams, objects, items (KmsKeyArn set)",
    "kms:GenerateDataKey": "writing to KMS-encrypted streams, topic, objects (KmsKeyArn set)",
}

# What each service principal's role must allow (AWS documentation of each integration); a role with more
# or less fails the check.
SERVICE_ROLES: dict[str, dict[str, str]] = {
    "TrailLogsRole": {
        "logs:CreateLogStream": "CloudTrail -> CloudWatch Logs",
        "logs:PutLogEvents": "CloudTrail -> CloudWatch Logs",
        "sts:AssumeRole": "trust policy",
    },
    "SubscriptionRole": {
        "kinesis:PutRecord": "CloudWatch Logs subscription filter -> Kinesis",
        "kms:GenerateDataKey": "KmsKeyArn set",
        "sts:AssumeRole": "trust policy",
    },
    "FirehoseRole": {
        "s3:AbortMultipartUpload": "Firehose -> S3",
        "s3:GetBucketLocation": "Firehose -> S3",
        "s3:GetObject": "Firehose -> S3",
        "s3:ListBucket": "Firehose -> S3",
        "s3:ListBucketMultipartUploads": "Firehose -> S3",
        "s3:PutObject": "Firehose -> S3",
        "logs:PutLogEvents": "Firehose error logging",
        "kms:Decrypt": "KmsKeyArn set",
        "kms:GenerateDataKey": "KmsKeyArn set",
        "sts:AssumeRole": "trust policy",
    },
    "TaskExecutionRole": {
        "ecr:GetAuthorizationToken": "ECS pulls the image",
        "ecr:BatchGetImage": "ECS pulls the image",
        "ecr:BatchCheckLayerAvailability": "ECS pulls the image",
        "ecr:GetDownloadUrlForLayer": "ECS pulls the image",
        "logs:CreateLogStream": "awslogs driver",
        "logs:PutLogEvents": "awslogs driver",
        "sts:AssumeRole": "trust policy",
    },
}
BUCKET_POLICIES: dict[str, dict[str, str]] = {
    "TrailBucketPolicy": {"s3:GetBucketAcl": "CloudTrail ACL check", "s3:PutObject": "CloudTrail log delivery"},
}


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    action: str
    module: str
    function: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.module.replace('.', '/')}.py:{self.line} ({self.function or '<module>'})"


@cache
def _session() -> Any:
    return botocore.session.get_session()


@cache
def _operations(service: str) -> dict[str, str]:
    """snake_case method -> API operation name, for one service."""
    try:
        model = _session().get_service_model(service)
    except Exception:
        return {}
    return {xform_name(op): op for op in model.operation_names}


@cache
def _prefix(service: str) -> str:
    model = _session().get_service_model(service)
    return model.signing_name or model.endpoint_prefix


def action(service: str, operation: str) -> str:
    name = f"{_prefix(service)}:{operation}"
    return IAM_NAMES.get(name, name)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


def _client_service(node: ast.AST) -> str | None:
    """`x.client("svc")` / `client("svc")` -> "svc"."""
    if (
        isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("client", "_client"):  # `_client`: a callable that makes clients (Secrets)
            return node.args[0].value
    return None


def _last_name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


class _Scan(ast.NodeVisitor):
    """Per module: client calls with their enclosing function, names bound to clients, calls between functions."""

    def __init__(self, module: str, class_clients: dict[str, set[str]], services: set[str]) -> None:
        self.module = module
        self.class_clients = class_clients
        self.services = services
        self.bound: dict[str, str] = {}
        self.stack: list[str] = []
        self.classes: list[str] = []
        self.calls: list[Call] = []
        self.unresolved: list[tuple[str, int]] = []
        self.edges: dict[str, set[str]] = defaultdict(set)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()
        self.classes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        pairs: list[tuple[ast.AST, ast.AST]] = []
        for target in node.targets:
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs.extend(zip(target.elts, node.value.elts, strict=False))
            else:
                pairs.append((target, node.value))
        for target, value in pairs:
            service = _client_service(value)
            if service:
                self.bound[_last_name(target)] = service
        self.generic_visit(node)

    def _service_of(self, receiver: ast.AST, method: str) -> str | None:
        service = _client_service(receiver)
        if service:
            return service
        name = _last_name(receiver)
        if name in self.bound:
            return self.bound[name]
        if name in self.services or name in ALIASES:
            return ALIASES.get(name, name)
        if name in ("client", "_client") and self.classes:
            found = [
                s
                for s in self.class_clients.get(self.classes[-1], ())
                if method in _operations(s) or method in ("get_paginator", "get_waiter")
            ]
            if len(found) == 1:
                return found[0]
        return None

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        function = ".".join(self.stack)
        if isinstance(func, ast.Name):
            self.edges[function].add(func.id)
        if isinstance(func, ast.Attribute):
            method = func.attr
            service = self._service_of(func.value, method)
            operation = None
            if (
                service
                and method in ("get_paginator", "get_waiter")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                operation = _paged(service, method, str(node.args[0].value))
            elif service:
                operation = _operations(service).get(method)
            if service and operation:
                self.calls.append(Call(service, method, action(service, operation), self.module, function, node.lineno))
            elif (
                service is None
                and _last_name(func.value) in ("client", "_client")
                and any(method in _operations(s) for s in self.services)
            ):
                self.unresolved.append((method, node.lineno))
        self.generic_visit(node)


def _paged(service: str, kind: str, name: str) -> str | None:
    if kind == "get_paginator":
        return _operations(service).get(name)
    try:
        waiter = _session().get_waiter_model(service).get_waiter(xform_name(name, "_").title().replace("_", ""))
    except Exception:
        return None
    return waiter.operation


def _class_clients(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Class name -> services of the clients it is constructed with (first argument or client=)."""
    out: dict[str, set[str]] = defaultdict(set)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                args = list(node.args[:1]) + [k.value for k in node.keywords if k.arg == "client"]
                for arg in args:
                    service = _client_service(arg)
                    if service:
                        out[_last_name(node.func)].add(service)
    return out


@cache
def _scans() -> dict[str, _Scan]:
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in _modules().items()}
    services = {s for tree in trees.values() for node in ast.walk(tree) if (s := _client_service(node))}
    class_clients = _class_clients(trees)
    scans = {}
    for name, tree in trees.items():
        scan = _Scan(name, class_clients, services)
        scan.visit(tree)
        scans[name] = scan
    return scans


def calls() -> list[Call]:
    return sorted((c for scan in _scans().values() for c in scan.calls), key=lambda c: (c.action, c.where))


def unresolved() -> list[str]:
    """Calls on a `client` attribute whose service could not be told (they would escape the check)."""
    return [f"{name}:{line} {method}" for name, scan in _scans().items() for method, line in scan.unresolved]


def _imports(tree: ast.Module, module: str) -> tuple[set[str], set[tuple[str, str]]]:
    """(modules imported at module level, (module, function) imported inside functions)."""
    top: set[str] = set()
    lazy: set[tuple[str, str]] = set()
    known = _modules()

    def resolve(node: ast.ImportFrom) -> str:
        if node.level:
            base = (
                module.split(".")[: -node.level]
                if not (REPO / module.replace(".", "/")).is_dir()
                else module.split(".")[: len(module.split(".")) - node.level + 1]
            )
            return ".".join([*base, node.module] if node.module else base)
        return node.module or ""

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name in known:
                        top.add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                source = resolve(child)
                for alias in child.names:
                    sub = f"{source}.{alias.name}"
                    if sub in known:
                        top.add(sub)  # `from package import module`
                    elif source in known:
                        (lazy.add((source, alias.name)) if in_function else top.add(source))
            visit(child, inside)

    visit(tree, False)
    return top, lazy


def consumer_modules(entries: Iterable[str] = CONSUMER_ENTRIES) -> tuple[set[str], set[tuple[str, str]]]:
    """Modules the entries import (transitively), and functions imported lazily from others."""
    trees = {name: ast.parse(path.read_text()) for name, path in _modules().items()}
    seen: set[str] = set()
    lazy: set[tuple[str, str]] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name not in trees:
            continue
        seen.add(name)
        top, functions = _imports(trees[name], name)
        todo.extend(top)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run their __init__
        lazy |= functions
    return seen, {(m, f) for m, f in lazy if m not in seen}


def consumer_calls(entries: Iterable[str] = CONSUMER_ENTRIES) -> list[Call]:
    """The calls of the code the entries run (the consumer processes by default)."""
    modules, lazy = consumer_modules(entries)
    scans = _scans()
    wanted: set[tuple[str, str]] = set()
    for module, function in lazy:  # the function and what it calls in its own module, transitively
        todo = [function]
        while todo:
            f = todo.pop()
            if (module, f) in wanted:
                continue
            wanted.add((module, f))
            todo.extend(scans[module].edges.get(f, ()))
    return [c for c in calls() if c.module in modules or (c.module, c.function.split(".")[0]) in wanted]


def operator_calls() -> list[Call]:
    """The calls `trailwarden replay` (with its daemons) and `trailwarden backfill` make."""
    return consumer_calls(OPERATOR_ENTRIES)


def deliverer_calls() -> list[Call]:
    """The calls `trailwarden deliver` makes: its queues, the dedupe table, the destinations, their secrets."""
    return consumer_calls(DELIVERER_ENTRIES)


def statements(node: Any) -> Iterable[dict[str, Any]]:
    """Every IAM statement in a template node, both branches of every Fn::If."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield node
        for value in node.values():
            yield from statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from statements(value)


def actions(node: Any) -> set[str]:
    out: set[str] = set()
    for statement in statements(node):
        value = statement.get("Action", statement.get("NotAction"))
        out.update([value] if isinstance(value, str) else value if isinstance(value, list) else [repr(value)])
    return out


def table(rows: Iterable[Call]) -> str:
    by_action: dict[str, list[str]] = defaultdict(list)
    for c in rows:
        by_action[c.action].append(c.where)
    width = max((len(a) for a in by_action), default=10)
    lines = [f"{'action'.ljust(width)}  called at", f"{'-' * width}  ---------"]
    for name in sorted(by_action):
        places = sorted(set(by_action[name]))
        lines.append(f"{name.ljust(width)}  {places[0]}")
        lines.extend(f"{''.ljust(width)}  {p}" for p in places[1:])
    return "\n".join(lines)


if __name__ == "__main__":
    print("every AWS API call in pipeline/, consumers/, infra/:")
    print(table(calls()))
    print("\ncalls the consumer processes make (the ConsumerRole's code):")
    print(table(consumer_calls()))
    print("\ncalls replay (with its daemons) and backfill make (the OperatorReplayPolicy's code):")
    print(table(operator_calls()))
    print("\ncalls the deliverer makes (the DelivererRole's code):")
    print(table(deliverer_calls()))
