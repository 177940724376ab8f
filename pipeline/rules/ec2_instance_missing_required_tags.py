"""EC2 instance still missing its required tags N minutes after launch (an absence rule).

Tags often arrive 30 to 90 seconds after RunInstances (Auto Scaling, EMR, Terraform), so the check
waits out a grace period. The calls and fields read are the `ec2-instance` entry of the resource table
(pipeline/tagging/resources.toml); the schema is the configuration's [tags] (or this rule's section).
Only the tags of the schema travel to stage 2. Every other resource type is
resource-missing-required-tags; this rule keeps the id, keys and findings it had before the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.cases import ACCOUNT, at, later
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import absence
from pipeline.tagging.rules import absence_options, builtin_watch

RULE_ID = "ec2-instance-missing-required-tags"
REGION = "us-east-1"
WATCH = builtin_watch(RULE_ID, ["ec2-instance"])


def finding_hit(key: str, ctx: dict[str, Any], p: Params) -> Hit:
    """What a finding says: the instance ARN and which tags are missing or wrong."""
    _, account, region, iid = WATCH.parts(key)
    state = ctx.get("state")
    schema = state.schema if state is not None else WATCH.schema(key, p)
    values = state.tag_values if state is not None else (None,) * len(schema.keys if schema else ())
    issues = schema.problems(values)[2] if schema is not None else []
    minutes = int(ctx.get("window_seconds", 0) // 60)
    return Hit(
        resources=(f"arn:aws:ec2:{region}:{account}:instance/{iid}",),
        summary=f"EC2 instance {iid} ({account}, {region}) still lacks required tags {minutes} min after "
        f"launch or losing them: {'; '.join(issues)}",
        context={"instance_id": iid, "problems": issues},
    )


# --- cases ----------------------------------------------------------------------------------------

EC2 = "ec2.amazonaws.com"
GOOD = {"Owner": "alice", "CostCenter": "cc-4410", "Environment": "prod"}


def _run(t: float, ids: list[str], tags: dict[str, str] | None = None, error: str = "", eid: str = "") -> dict:
    record: dict[str, Any] = {
        "eventSource": EC2,
        "eventName": "RunInstances",
        "eventTime": at(t),
        "awsRegion": REGION,
        "requestParameters": {
            "instancesSet": {
                "items": [{"imageId": "ami-0abcdef1234567890", "minCount": len(ids), "maxCount": len(ids)}]
            },
            "instanceType": "t3.micro",
            **(
                {
                    "tagSpecificationSet": {
                        "items": [
                            {"resourceType": "instance", "tags": [{"key": k, "value": v} for k, v in tags.items()]}
                        ]
                    }
                }
                if tags
                else {}
            ),
        },
        "responseElements": None
        if error
        else {
            "reservationId": "r-0123456789abcdef0",
            "ownerId": ACCOUNT,
            "instancesSet": {
                "items": [
                    {"instanceId": i, "instanceState": {"code": 0, "name": "pending"}, "instanceType": "t3.micro"}
                    for i in ids
                ]
            },
        },
    }
    if error:
        record["errorCode"] = error
        record["errorMessage"] = "You are not authorized to perform this operation."
    if eid:
        record["eventID"] = eid
    return record


def _tags(t: float, ids: list[str], tags: Mapping[str, str | None], name: str = "CreateTags") -> dict:
    return {
        "eventSource": EC2,
        "eventName": name,
        "eventTime": at(t),
        "awsRegion": REGION,
        "requestParameters": {
            "resourcesSet": {"items": [{"resourceId": i} for i in ids]},
            "tagSet": {"items": [{"key": k} if v is None else {"key": k, "value": v} for k, v in tags.items()]},
        },
        "responseElements": {"requestId": "6c1e2a4b-0000-4000-8000-000000000001", "_return": True},
    }


def _terminate(t: float, ids: list[str]) -> dict:
    return {
        "eventSource": EC2,
        "eventName": "TerminateInstances",
        "eventTime": at(t),
        "awsRegion": REGION,
        "requestParameters": {"instancesSet": {"items": [{"instanceId": i} for i in ids]}},
        "responseElements": {
            "instancesSet": {
                "items": [
                    {
                        "instanceId": i,
                        "currentState": {"code": 32, "name": "shutting-down"},
                        "previousState": {"code": 16, "name": "running"},
                    }
                    for i in ids
                ]
            }
        },
    }


I1, I2, I3 = "i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002", "i-0a1b2c3d4e5f60003"

CASES = [
    Case("untagged instance reported after the grace period", [_run(0, [I1]), later(20)], expect=1, resolved=0),
    Case("tagged at launch", [_run(0, [I1], GOOD), later(20)], expect=0),
    Case("tags arrive a minute after launch", [_run(0, [I1]), _tags(1, [I1], GOOD), later(30)], expect=0),
    Case(
        "tags arrive after the grace period: the finding resolves",
        [_run(0, [I1]), _tags(16, [I1], GOOD), later(30)],
        expect=1,
        resolved=1,
    ),
    Case(
        "terminated after the grace period: the finding resolves",
        [_run(0, [I1]), later(20), _terminate(25, [I1]), later(30)],
        expect=1,
        resolved=1,
    ),
    Case(
        "tags added after the grace period still missing a required key: still open",
        [_run(0, [I1]), _tags(16, [I1], {"Owner": "alice", "CostCenter": "cc-4410"}), later(30)],
        expect=1,
        resolved=0,
    ),
    Case("one launch of three untagged instances", [_run(0, [I1, I2, I3]), later(20)], expect=3),
    Case(
        "failed RunInstances starts nothing", [_run(0, [I1], error="Client.UnauthorizedOperation"), later(20)], expect=0
    ),
    Case("terminated within the grace period", [_run(0, [I1]), _terminate(5, [I1]), later(20)], expect=0),
    Case("grace period not yet over at the end of input", [_run(0, [I1]), later(10)], expect=0),
    Case(
        "one finding per lapse, not per event",
        [_run(0, [I1], {"Owner": "alice"}), _tags(17, [I1], {"Team": "x"}), later(18), later(40)],
        expect=1,
    ),
    Case(
        "required tag deleted from a running instance starts the clock again",
        [_run(0, [I1], GOOD), _tags(30, [I1], {"Owner": None}, "DeleteTags"), later(50)],
        expect=1,
    ),
    Case(
        "two lapses, two findings",
        [_run(0, [I1]), _tags(20, [I1], GOOD), _tags(30, [I1], {"Environment": None}, "DeleteTags"), later(50)],
        expect=2,
    ),
    Case(
        "DeleteTags with another value leaves the tag",
        [_run(0, [I1], GOOD), _tags(30, [I1], {"Owner": "bob"}, "DeleteTags"), later(50)],
        expect=0,
    ),
    Case(
        "CreateTags naming the instance with its volume and an AMI tags the instance",
        [_run(0, [I1]), _tags(1, ["vol-0a1b2c3d4e5f60001", I1, "ami-0a1b2c3d4e5f60001"], GOOD), later(20)],
        expect=0,
    ),
    Case(
        "CreateTags naming only other resources leaves the instance untagged",
        [_run(0, [I1]), _tags(1, ["vol-0a1b2c3d4e5f60001", I2], GOOD), later(20)],
        expect=1,
    ),
    Case(
        "DeleteTags naming no tag removes them all",
        [_run(0, [I1], GOOD), _tags(30, [I1], {}, "DeleteTags"), later(50)],
        expect=1,
    ),
    Case(
        "value not matching the configured pattern",
        [_run(0, [I1], {"Owner": "bob"}), later(20)],
        expect=1,
        params={"required": {"Owner": r"[a-z.]+@example\.com"}},
    ),
    Case(
        "value matching the configured pattern",
        [_run(0, [I1], {"Owner": "bob@example.com"}), later(20)],
        expect=0,
        params={"required": {"Owner": r"[a-z.]+@example\.com"}},
    ),
    Case(
        "grace period from configuration",
        [_run(0, [I1]), _tags(3, [I1], GOOD), later(10)],
        expect=1,
        params={"grace": "2m"},
    ),
    Case(
        "the same launch delivered twice raises one finding",
        [
            _run(0, [I1], eid="0b8a4b3e-1111-4d6e-9c35-3f1e0c9a0001"),
            _run(0, [I1], eid="0b8a4b3e-1111-4d6e-9c35-3f1e0c9a0001"),
            later(20),
        ],
        expect=1,
    ),
]


@absence(
    id=RULE_ID,
    title="EC2 instance missing required tags after launch",
    severity="low",
    attack=(),
    hit=finding_hit,
    **absence_options(WATCH),
    runbook="Tag the instance with the required keys (see [tags] and rules.ec2-instance-missing-required-tags in "
    "`trailwarden config`), or find out who launched it without them and why; untagged instances escape "
    "cost and ownership controls.",
    cases=CASES,
)
def ec2_instance_missing_required_tags(e: Event, p: Params) -> list[Step] | None:
    """An EC2 instance still lacks a required tag (or a tag value does not match its pattern) a grace
    period after launch, or after a required tag was removed from it. The schema is [tags] (`required`
    maps each required tag key to a regular expression its value must fully match, "" accepting any
    value; `grace` is the period; `types.ec2-instance` may give instances their own), or this rule's
    own `required` and `grace`. Tags in RunInstances' tag specifications for the instance (or on the
    launched instance) count; CreateTags and DeleteTags change them (DeleteTags with no tag removes
    them all); TerminateInstances ends the watch. One finding per instance and lapse; it resolves
    ("tags added", "resource deleted") when the tags are complete or the instance is terminated later."""
    return WATCH.steps(e, p)
