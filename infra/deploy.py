"""Create or update the stack through a CloudFormation change set: check the parameters against the template,
make the change set, wait for it, read its changes, then execute it (or delete it) and follow the stack's events.

    request = DeployRequest(stack="trailwarden", parameters={"Image": "...:1.2.0"})
    deployer = Deployer(target)
    change_set = deployer.prepare(request)       # ParameterError on a bad parameter, before any change
    for change in change_set.changes: ...
    deployer.execute(change_set, on_event=print)  # or deployer.discard(change_set)
    deployer.outputs(request.stack)

A template body above CloudFormation's inline limit (51,200 bytes) is sent as compact JSON, and if that is still
too large, uploaded to an S3 bucket (given, or `<stack>-templates-<account>-<region>`, created private if missing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from infra import aws, cfn

INLINE_LIMIT = 51_200  # bytes of TemplateBody CloudFormation accepts; more goes through S3 (TemplateURL)
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
DONE = ("_COMPLETE", "_FAILED")
SUCCESS = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


class DeployError(RuntimeError):
    """A deploy that cannot go on; the message says what was wrong and what to do."""


class ParameterError(DeployError):
    """A parameter the template does not declare, or a value it refuses: found before anything changes."""


@dataclass
class DeployRequest:
    stack: str
    parameters: dict[str, str] = field(default_factory=dict)
    template: Path = cfn.TEMPLATE
    template_bucket: str | None = None


@dataclass
class Change:
    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    type: str
    replacement: str  # True | False | Conditional | "" (not a Modify)


@dataclass
class ChangeSet:
    stack: str
    name: str
    kind: str  # CREATE | UPDATE
    changes: list[Change]
    id: str = ""
    stack_id: str = ""  # the stack this change set belongs to (a name can also match a deleted stack)

    @property
    def empty(self) -> bool:
        return not self.changes


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    """`K=V` strings as a dict; raises DeployError on one without `=`."""
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"parameter {pair!r} is not NAME=VALUE")
        parameters[name.strip()] = value
    return parameters


def check_parameters(template: Mapping[str, Any], given: Mapping[str, str]) -> None:
    """Raise DeployError naming the first parameter the template does not declare or whose value it refuses."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(f"unknown parameter {', '.join(unknown)}; the template's are: {', '.join(declared)}")
    for name, value in given.items():
        spec = declared[name]
        typed: Any = value
        if spec.get("Type") == "CommaDelimitedList":
            typed = [v.strip() for v in value.split(",") if v.strip()]
        try:
            cfn.check_parameter(name, spec, typed)
        except cfn.TemplateError as error:
            raise ParameterError(str(error)) from None


class Deployer:
    """The change-set calls of one deploy, against one CloudFormation endpoint."""

    def __init__(self, target: aws.Target, poll_seconds: float = 2.0, timeout_seconds: float = 3600.0) -> None:
        self.target = target
        self.cf = target.client("cloudformation")
        self.s3 = target.client("s3")
        self.poll = poll_seconds
        self.timeout = timeout_seconds

    # --- the stack as it is ----------------------------------------------------------------------

    def stack(self, name: str) -> dict[str, Any] | None:
        """The stack's description, or None if there is none (or only a change set never executed)."""
        try:
            stacks = self.cf.describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            if "does not exist" in str(error):
                return None
            raise
        return stacks[0] if stacks else None

    def outputs(self, name: str) -> dict[str, str]:
        stack = self.stack(name) or {}
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    # --- the change set ----------------------------------------------------------------------------

    def prepare(self, request: DeployRequest) -> ChangeSet:
        """Check the parameters, create the change set and wait until it is ready; nothing is changed yet."""
        template = cfn.load(request.template)
        check_parameters(template, request.parameters)
        current = self.stack(request.stack)
        if (
            current is not None
            and current["StackStatus"].endswith("_IN_PROGRESS")
            and current["StackStatus"] != "REVIEW_IN_PROGRESS"
        ):
            raise DeployError(f"stack {request.stack} is {current['StackStatus']}; wait until it ends and deploy again")
        if current is not None and current["StackStatus"] == "ROLLBACK_COMPLETE":
            raise DeployError(
                f"stack {request.stack} is ROLLBACK_COMPLETE (its creation failed): delete it "
                f"(aws cloudformation delete-stack --stack-name {request.stack}) and deploy again"
            )
        kind = "UPDATE" if current is not None and current["StackStatus"] != "REVIEW_IN_PROGRESS" else "CREATE"
        previous = {p["ParameterKey"] for p in (current or {}).get("Parameters", [])} if kind == "UPDATE" else set()
        parameters: list[dict[str, str | bool]] = [
            {"ParameterKey": k, "ParameterValue": v} for k, v in request.parameters.items()
        ]
        declared = template.get("Parameters") or {}
        parameters += [
            {"ParameterKey": k, "UsePreviousValue": True}
            for k in declared
            if k in previous and k not in request.parameters
        ]
        name = f"trailwarden-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        try:
            created = self.cf.create_change_set(
                StackName=request.stack,
                ChangeSetName=name,
                ChangeSetType=kind,
                Parameters=parameters,
                Capabilities=CAPABILITIES,
                Description="trailwarden deploy",
                **self._template(request, template),
            )
        except ClientError as error:
            if any(text in str(error) for text in NO_CHANGES):  # some endpoints refuse it at once
                return ChangeSet(request.stack, name, kind, [])
            raise
        change_set = self._wait_for_change_set(request.stack, name, kind)
        change_set.stack_id = created.get("StackId", "")
        return change_set

    def _template(self, request: DeployRequest, template: Mapping[str, Any]) -> dict[str, str]:
        text = request.template.read_text(encoding="utf-8")
        if len(text.encode()) <= INLINE_LIMIT:
            return {"TemplateBody": text}
        compact = json.dumps(template, separators=(",", ":"))
        if len(compact.encode()) <= INLINE_LIMIT:
            return {"TemplateBody": compact}
        bucket = request.template_bucket or self._template_bucket(request.stack)
        key = f"{request.stack}/{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
        self.s3.put_object(Bucket=bucket, Key=key, Body=compact.encode(), ContentType="application/json")
        region = self.s3.meta.region_name or "us-east-1"
        return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}

    def _template_bucket(self, stack: str) -> str:
        """`<stack>-templates-<account>-<region>`: created private when missing."""
        account = self.target.client("sts").get_caller_identity()["Account"]
        region = self.s3.meta.region_name or "us-east-1"
        bucket = f"{stack.lower()}-templates-{account}-{region}"
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError:
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self.s3.create_bucket(**kwargs)
            self.s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
        return bucket

    def _wait_for_change_set(self, stack: str, name: str, kind: str) -> ChangeSet:
        deadline = time.monotonic() + self.timeout
        while True:
            described = self.cf.describe_change_set(StackName=stack, ChangeSetName=name)
            status, reason = described["Status"], described.get("StatusReason", "")
            if status == "FAILED":
                if any(text in reason for text in NO_CHANGES):
                    self.cf.delete_change_set(StackName=stack, ChangeSetName=name)
                    return ChangeSet(stack, name, kind, [], described.get("ChangeSetId", ""))
                raise DeployError(f"change set {name} failed: {reason}")
            if status == "CREATE_COMPLETE":
                break
            if time.monotonic() > deadline:
                raise DeployError(f"change set {name} still {status} after {self.timeout:.0f} s")
            time.sleep(self.poll)
        changes = []
        for change in self._all_changes(stack, name, described):
            rc = change.get("ResourceChange", {})
            changes.append(
                Change(
                    rc.get("Action", ""),
                    rc.get("LogicalResourceId", ""),
                    rc.get("ResourceType", ""),
                    str(rc.get("Replacement", "")) if rc.get("Action") == "Modify" else "",
                )
            )
        return ChangeSet(stack, name, kind, changes, described.get("ChangeSetId", ""))

    def _all_changes(self, stack: str, name: str, first: dict[str, Any]) -> list[dict[str, Any]]:
        changes = list(first.get("Changes", []))
        token = first.get("NextToken")
        while token:
            page = self.cf.describe_change_set(StackName=stack, ChangeSetName=name, NextToken=token)
            changes += page.get("Changes", [])
            token = page.get("NextToken")
        return changes

    def discard(self, change_set: ChangeSet) -> None:
        """Delete the change set; a stack that only existed for it (REVIEW_IN_PROGRESS) is deleted too."""
        try:
            self.cf.delete_change_set(StackName=change_set.stack, ChangeSetName=change_set.name)
        except ClientError as error:
            if "does not exist" not in str(error) and "ChangeSetNotFound" not in str(error):
                raise
        current = self.stack(change_set.stack_id or change_set.stack)
        if current is not None and current["StackStatus"] == "REVIEW_IN_PROGRESS":
            self.cf.delete_stack(StackName=change_set.stack_id or change_set.stack)

    def execute(self, change_set: ChangeSet, on_event: Callable[[dict[str, Any]], None] | None = None) -> str:
        """Execute the change set and wait for the stack to settle, calling `on_event` for each new stack event.
        Returns the final status; raises DeployError if it is not a success, with the failed resources' reasons."""
        started = time.time()
        seen: set[str] = set()
        self.cf.execute_change_set(StackName=change_set.stack, ChangeSetName=change_set.name)
        deadline = time.monotonic() + self.timeout
        while True:
            stack = self.stack(change_set.stack_id or change_set.stack)
            events = self._new_events(change_set.stack_id or change_set.stack, seen, started)
            if on_event:
                for event in events:
                    on_event(event)
            status = (stack or {}).get("StackStatus", "")
            if status.endswith(DONE) and not status.endswith("_IN_PROGRESS"):
                break
            if time.monotonic() > deadline:
                raise DeployError(f"stack {change_set.stack} still {status} after {self.timeout:.0f} s")
            time.sleep(self.poll)
        if status not in SUCCESS:
            failed = [
                e
                for e in self._new_events(change_set.stack_id or change_set.stack, set(), started)
                if e.get("ResourceStatus", "").endswith("_FAILED")
            ]
            reasons = "; ".join(f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in failed)
            raise DeployError(f"stack {change_set.stack} ended {status}" + (f": {reasons}" if reasons else ""))
        return status

    def _new_events(self, stack: str, seen: set[str], since: float) -> list[dict[str, Any]]:
        try:
            events = self.cf.describe_stack_events(StackName=stack)["StackEvents"]
        except ClientError:
            return []
        fresh = [e for e in events if e["EventId"] not in seen and e["Timestamp"].timestamp() >= since - 1]
        seen.update(e["EventId"] for e in fresh)
        return sorted(fresh, key=lambda e: e["Timestamp"])
