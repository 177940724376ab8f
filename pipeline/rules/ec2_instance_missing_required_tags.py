"""EC2 instance still missing its required tags N minutes after launch (an absence rule).

Tags often arrive 30 to 90 seconds after RunInstances (Auto Scaling, EMR, Terraform), so the check
waits out a grace period. Only the tags of the configured schema travel to stage 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.cases import ACCOUNT, at
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import END, START, absence

TAGS = "tags"
REGION = "us-east-1"


def _required(p: Params) -> dict[str, str]:
    req = p.required
    return {k: v if isinstance(v, str) else "" for k, v in req.items()} if isinstance(req, dict) else {}


def _instance_ids(container: Any) -> list[str]:
    ids = []
    for item in items(mapping(container).get("items")):
        iid = text(mapping(item).get("instanceId")) or text(mapping(item).get("resourceId"))
        if iid.startswith("i-"):
            ids.append(iid)
    return ids


def _tag_pairs(tag_items: Any, keys: Mapping[str, str], with_missing_value: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in items(tag_items):
        tag = mapping(tag)
        key = text(tag.get("key"))
        if key in keys:
            value = tag.get("value")
            out[key] = None if with_missing_value and value is None else text(value)
    return out


def extract(e: Event, p: Params) -> list[Step] | None:
    """Stage 1: launches start a watch per instance, tag changes to schema keys update it, termination ends it."""
    if e.error_code:
        return None
    required = _required(p)
    prefix = f"{e.account}:{e.region}:"
    if e.name == "RunInstances":
        tags: dict[str, Any] = {}
        for spec in items(mapping(e.request.get("tagSpecificationSet")).get("items")):
            spec = mapping(spec)
            if text(spec.get("resourceType")) == "instance":
                tags.update(_tag_pairs(spec.get("tags"), required))
        steps = []
        for item in items(mapping(e.response.get("instancesSet")).get("items")):
            item = mapping(item)
            iid = text(item.get("instanceId"))
            if iid.startswith("i-"):
                own = {**tags, **_tag_pairs(mapping(item.get("tagSet")).get("items"), required)}
                steps.append(Step(prefix + iid, START, fields={TAGS: own} if own else None))
        return steps
    if e.name in ("CreateTags", "DeleteTags"):
        ids = _instance_ids(e.request.get("resourcesSet"))
        delete = e.name == "DeleteTags"
        changes = _tag_pairs(mapping(e.request.get("tagSet")).get("items"), required, with_missing_value=delete)
        if not ids or not changes:
            return None
        return [Step(prefix + iid, TAGS, fields={"del" if delete else "set": changes}) for iid in ids]
    if e.name == "TerminateInstances":
        ids = _instance_ids(e.request.get("instancesSet")) or _instance_ids(e.response.get("instancesSet"))
        return [Step(prefix + iid, END) for iid in ids]
    return None


def fold(value: dict[str, str] | None, step: str, fields: Mapping[str, Any] | None, p: Params) -> dict[str, str] | None:
    """The instance's current values of the schema's tags (None when it has none)."""
    if not fields:
        return value
    tags = dict(value) if value else {}
    if step == START:
        tags.update(mapping(fields.get(TAGS)))
    for key, v in mapping(fields.get("set")).items():
        tags[key] = text(v)
    for key, v in mapping(fields.get("del")).items():
        if key in tags and (v is None or tags[key] == v):
            del tags[key]
    return tags or None


def problems(value: dict[str, str] | None, p: Params) -> list[str]:
    tags = value or {}
    out = []
    for key, pattern in _required(p).items():
        if key not in tags:
            out.append(f"{key} missing")
        elif pattern and not re.fullmatch(pattern, tags[key]):
            out.append(f"{key}={tags[key][:64]!r} does not match {pattern!r}")
    return out


def satisfied(value: dict[str, str] | None, p: Params) -> bool:
    """Every required tag present with a matching value (the hot path of stage 2: no allocation)."""
    required = p.required
    if type(required) is not dict:
        return True
    if not value:
        return not required
    for key, pattern in required.items():
        v = value.get(key)
        if v is None or (pattern and type(pattern) is str and not re.fullmatch(pattern, v)):
            return False
    return True


def finding_hit(key: str, ctx: dict[str, Any], p: Params) -> Hit:
    """What a finding says: the instance ARN and which tags are missing or wrong."""
    account, region, iid = [*key.split(":", 2), "", ""][:3]
    issues = problems(ctx.get("state"), p)
    minutes = int(ctx.get("window_seconds", 0) // 60)
    return Hit(resources=(f"arn:aws:ec2:{region}:{account}:instance/{iid}",),
               summary=f"EC2 instance {iid} ({account}, {region}) still lacks required tags {minutes} min after "
                       f"launch or losing them: {'; '.join(issues)}",
               context={"instance_id": iid, "problems": issues})


# --- cases ----------------------------------------------------------------------------------------

EC2 = "ec2.amazonaws.com"
GOOD = {"Owner": "alice", "CostCenter": "cc-4410", "Environment": "prod"}


def _run(t: float, ids: list[str], tags: dict[str, str] | None = None, error: str = "", eid: str = "") -> dict:
    record: dict[str, Any] = {
        "eventSource": EC2, "eventName": "RunInstances", "eventTime": at(t), "awsRegion": REGION,
        "requestParameters": {
            "instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": len(ids),
                                        "maxCount": len(ids)}]},
            "instanceType": "t3.micro",
            **({"tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": [
                {"key": k, "value": v} for k, v in tags.items()]}]}} if tags else {}),
        },
        "responseElements": None if error else {
            "reservationId": "r-0123456789abcdef0", "ownerId": ACCOUNT,
            "instancesSet": {"items": [{"instanceId": i, "instanceState": {"code": 0, "name": "pending"},
                                        "instanceType": "t3.micro"} for i in ids]}},
    }
    if error:
        record["errorCode"] = error
        record["errorMessage"] = "You are not authorized to perform this operation."
    if eid:
        record["eventID"] = eid
    return record


def _tags(t: float, ids: list[str], tags: dict[str, str | None], name: str = "CreateTags") -> dict:
    return {"eventSource": EC2, "eventName": name, "eventTime": at(t), "awsRegion": REGION,
            "requestParameters": {"resourcesSet": {"items": [{"resourceId": i} for i in ids]},
                                  "tagSet": {"items": [{"key": k} if v is None else {"key": k, "value": v}
                                                       for k, v in tags.items()]}},
            "responseElements": {"requestId": "6c1e2a4b-0000-4000-8000-000000000001", "_return": True}}


def _terminate(t: float, ids: list[str]) -> dict:
    return {"eventSource": EC2, "eventName": "TerminateInstances", "eventTime": at(t), "awsRegion": REGION,
            "requestParameters": {"instancesSet": {"items": [{"instanceId": i} for i in ids]}},
            "responseElements": {"instancesSet": {"items": [
                {"instanceId": i, "currentState": {"code": 32, "name": "shutting-down"},
                 "previousState": {"code": 16, "name": "running"}} for i in ids]}}}


def _later(t: float) -> dict:
    """Any event: moves event time forward (finite input only advances time with its events)."""
    return {"eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "eventTime": at(t)}


I1, I2, I3 = "i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002", "i-0a1b2c3d4e5f60003"

CASES = [
    Case("untagged instance reported after the grace period", [_run(0, [I1]), _later(20)], expect=1, resolved=0),
    Case("tagged at launch", [_run(0, [I1], GOOD), _later(20)], expect=0),
    Case("tags arrive a minute after launch", [_run(0, [I1]), _tags(1, [I1], GOOD), _later(30)], expect=0),
    Case("tags arrive after the grace period: the finding resolves",
         [_run(0, [I1]), _tags(16, [I1], GOOD), _later(30)], expect=1, resolved=1),
    Case("terminated after the grace period: the finding resolves",
         [_run(0, [I1]), _later(20), _terminate(25, [I1]), _later(30)], expect=1, resolved=1),
    Case("tags added after the grace period still missing a required key: still open",
         [_run(0, [I1]), _tags(16, [I1], {"Owner": "alice", "CostCenter": "cc-4410"}), _later(30)], expect=1,
         resolved=0),
    Case("one launch of three untagged instances", [_run(0, [I1, I2, I3]), _later(20)], expect=3),
    Case("failed RunInstances starts nothing",
         [_run(0, [I1], error="Client.UnauthorizedOperation"), _later(20)], expect=0),
    Case("terminated within the grace period", [_run(0, [I1]), _terminate(5, [I1]), _later(20)], expect=0),
    Case("grace period not yet over at the end of input", [_run(0, [I1]), _later(10)], expect=0),
    Case("one finding per lapse, not per event",
         [_run(0, [I1], {"Owner": "alice"}), _tags(17, [I1], {"Team": "x"}), _later(18), _later(40)], expect=1),
    Case("required tag deleted from a running instance starts the clock again",
         [_run(0, [I1], GOOD), _tags(30, [I1], {"Owner": None}, "DeleteTags"), _later(50)], expect=1),
    Case("two lapses, two findings",
         [_run(0, [I1]), _tags(20, [I1], GOOD), _tags(30, [I1], {"Environment": None}, "DeleteTags"),
          _later(50)], expect=2),
    Case("DeleteTags with another value leaves the tag",
         [_run(0, [I1], GOOD), _tags(30, [I1], {"Owner": "bob"}, "DeleteTags"), _later(50)], expect=0),
    Case("value not matching the configured pattern",
         [_run(0, [I1], {"Owner": "bob"}), _later(20)], expect=1,
         params={"required": {"Owner": r"[a-z.]+@example\.com"}}),
    Case("value matching the configured pattern",
         [_run(0, [I1], {"Owner": "bob@example.com"}), _later(20)], expect=0,
         params={"required": {"Owner": r"[a-z.]+@example\.com"}}),
    Case("grace period from configuration", [_run(0, [I1]), _tags(3, [I1], GOOD), _later(10)], expect=1,
         params={"grace": "2m"}),
    Case("the same launch delivered twice raises one finding",
         [_run(0, [I1], eid="0b8a4b3e-1111-4d6e-9c35-3f1e0c9a0001"),
          _run(0, [I1], eid="0b8a4b3e-1111-4d6e-9c35-3f1e0c9a0001"), _later(20)], expect=1),
]


@absence(
    id="ec2-instance-missing-required-tags",
    title="EC2 instance missing required tags after launch",
    severity="low",
    attack=(),
    events={EC2: ["RunInstances", "CreateTags", "DeleteTags", "TerminateInstances"]},
    params={"required": {"Owner": "", "CostCenter": "", "Environment": ""}, "grace": "15m"},
    window="grace",
    ttl="30d",
    dedup=0,
    fields=(TAGS, "set", "del"),
    fold=fold,
    satisfied=satisfied,
    track_before_start=False,
    resolved="tags added",
    ended="resource deleted",
    hit=finding_hit,
    runbook="Tag the instance with the required keys (see rules.ec2-instance-missing-required-tags.required), "
            "or find out who launched it without them and why; untagged instances escape cost and ownership "
            "controls.",
    cases=CASES,
)
def ec2_instance_missing_required_tags(e: Event, p: Params) -> list[Step] | None:
    """An EC2 instance still lacks a required tag (or a tag value does not match its pattern) a grace
    period after launch, or after a required tag was removed from it. `required` maps each required
    tag key to a regular expression its value must fully match ("" accepts any value); `grace` is
    the period. Tags in RunInstances' tag specifications for the instance count; CreateTags and
    DeleteTags change them; TerminateInstances ends the watch. One finding per instance and lapse; it
    resolves ("tags added", "resource deleted") when the tags are complete or the instance terminated later."""
    return extract(e, p)
