"""A resource of any taggable type still missing its required tags a grace period after it was created,
or after a required tag was removed from it (an absence rule).

Which calls create, tag, untag and delete each type, and where their records hold the ids and tags,
is the resource table (pipeline/tagging/resources.toml); EC2 instances are the rule of their own,
ec2-instance-missing-required-tags. The schema is [tags]: organisation-wide, or per type.
"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, later
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, format_duration
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import absence
from pipeline.tagging.cases import GOOD, Resource, type_cases
from pipeline.tagging.rules import absence_options, builtin_table, builtin_watch
from pipeline.tagging.samples import SAMPLES, Key
from pipeline.tagging.tagset import TagSet

RULE_ID = "resource-missing-required-tags"
WATCH = builtin_watch(RULE_ID, [name for name in builtin_table() if name != "ec2-instance"])


def finding_hit(key: str, ctx: dict[str, Any], p: Params) -> Hit:
    """What a finding says: the resource (type, id, ARN), the missing and the invalid tags, who created it."""
    rtype, account, region, rid = WATCH.parts(key)
    state = ctx.get("state")
    if rtype is None or type(state) is not TagSet:
        return Hit()
    missing, invalid, problems = state.schema.problems(state.tag_values)
    grace = format_duration(float(ctx.get("window_seconds", 0)))
    where = f"{account}, {region}" if region else account
    summary = (
        f"{rtype.title} {rid} ({where}) still lacks required tags {grace} after its creation or after "
        f"losing one: {'; '.join(problems)}" + (f" (created by {state.creator})" if state.creator else "")
    )
    return Hit(
        resources=(rtype.arn_of(rid, account, region),),
        summary=summary,
        context={
            "resource_type": rtype.name,
            "resource_id": rid,
            "missing": missing,
            "invalid": invalid,
            "problems": problems,
            "created_by": state.creator,
        },
    )


# --- cases ----------------------------------------------------------------------------------------


def _cases() -> list[Case]:
    table = builtin_table()
    out = [case for name, sample in SAMPLES.items() for case in type_cases(sample, table[name].title)]
    volume, snapshot = Resource(SAMPLES["ebs-volume"]), Resource(SAMPLES["ebs-snapshot"])
    both = {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "CreateTags",
        "requestParameters": {
            "resourcesSet": {
                "items": [{"resourceId": "i-0a1b2c3d4e5f60001"}, {"resourceId": volume.id}, {"resourceId": snapshot.id}]
            },
            "tagSet": {"items": [{"key": k, "value": v} for k, v in GOOD.items()]},
        },
    }
    bucket, queue = Resource(SAMPLES["s3-bucket"]), Resource(SAMPLES["sqs-queue"])
    db = Resource(SAMPLES["rds-instance"])
    upper = {
        **db.create(0),
        "requestParameters": {**db.create(0)["requestParameters"], "dBInstanceIdentifier": db.id.upper()},
    }
    cluster = Resource(SAMPLES["ecs-cluster"])
    service = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/{cluster.id}/api"
    on_service = {
        **cluster.tag(1, GOOD),
        "requestParameters": {"resourceArn": service, "tags": [{"key": k, "value": v} for k, v in GOOD.items()]},
    }
    key = Resource(Key())
    managed = key.create(0)
    managed["responseElements"] = {"keyMetadata": {**managed["responseElements"]["keyMetadata"], "keyManager": "AWS"}}
    by_aws = {
        **key.create(0),
        "userIdentity": {"type": "AWSService", "invokedBy": "rds.amazonaws.com"},
        "sourceIPAddress": "rds.amazonaws.com",
        "userAgent": "rds.amazonaws.com",
    }
    eid = "5e0c1b7a-2f44-4d0e-9a51-3c6a0b1d0001"
    out += [
        Case(
            "EC2 CreateTags naming an instance, a volume and a snapshot tags each",
            [volume.create(0), snapshot.create(0), both, later(20)],
            expect=0,
        ),
        Case(
            "EC2 CreateTags for the volume alone leaves the snapshot untagged",
            [volume.create(0), snapshot.create(0), volume.tag(1, GOOD), later(20)],
            expect=1,
        ),
        Case(
            "S3 PutBucketTagging with one tag (an object, not a list)",
            [bucket.create(0), bucket.tag(1, {"Owner": "alice"}), later(20)],
            expect=0,
            params={"required": {"Owner": ""}},
        ),
        Case(
            "a type's own schema: S3 buckets also need DataClassification",
            [bucket.create(0, GOOD), later(20)],
            expect=1,
            params={"types": {"s3-bucket": {"required": {**dict.fromkeys(GOOD, ""), "DataClassification": ""}}}},
        ),
        Case(
            "a type's own grace: SQS queues tagged after two minutes",
            [queue.create(0), queue.tag(3, GOOD), later(10)],
            expect=1,
            params={"types": {"sqs-queue": {"grace": "2m"}}},
        ),
        Case(
            "a type turned off is not watched",
            [queue.create(0), later(20)],
            expect=0,
            params={"types": {"sqs-queue": {"enabled": False}}},
        ),
        Case(
            "a bucket deleted and created again is watched anew",
            [bucket.create(0, GOOD), bucket.delete(5), bucket.create(6), later(30)],
            expect=1,
        ),
        Case(
            "an RDS identifier in upper case is the instance its lower-case ARN tags",
            [upper, db.tag(1, GOOD), later(20)],
            expect=0,
        ),
        Case("tagging an ECS service does not tag its cluster", [cluster.create(0), on_service, later(20)], expect=1),
        Case("an AWS managed KMS key is not watched (it cannot be tagged)", [managed, later(20)], expect=0),
        Case("a key AWS created for itself (a service principal) is not watched", [by_aws, later(20)], expect=0),
        Case(
            "the same creation delivered twice raises one finding",
            [{**queue.create(0), "eventID": eid}, {**queue.create(0), "eventID": eid}, later(20)],
            expect=1,
        ),
        Case(
            "tags within the grace, then removal of every tag (S3 DeleteBucketTagging)",
            [bucket.create(0, GOOD), bucket.untag(2, []), later(30)],
            expect=1,
            resolved=0,
        ),
        Case(
            "a bucket tagged after its finding resolves it",
            [bucket.create(0), later(20), bucket.tag(21, GOOD), later(30)],
            expect=1,
            resolved=1,
        ),
        Case(
            "a queue deleted after its finding resolves it",
            [queue.create(0), later(20), queue.delete(21), later(30)],
            expect=1,
            resolved=1,
        ),
    ]
    return out


@absence(
    id=RULE_ID,
    title="Resource missing required tags after creation",
    severity="low",
    attack=(),
    hit=finding_hit,
    **absence_options(WATCH),
    runbook="Tag the resource with the required keys (see [tags] in `trailwarden config`), or ask its creator "
    "(the finding's created_by) why it has none; untagged resources escape cost, ownership and "
    "data-classification controls. To exempt a type, set [tags.types.<type>] enabled = false.",
    cases=_cases(),
)
def resource_missing_required_tags(e: Event, p: Params) -> list[Step] | None:
    """A resource of a type of the resource table (EBS volumes and snapshots, AMIs, security groups, S3
    buckets, RDS instances and clusters, Lambda functions, DynamoDB tables, SQS queues, SNS topics, ECS
    and EKS clusters, ELBv2 load balancers, Auto Scaling groups, KMS keys, Secrets Manager secrets) still
    lacks a required tag, or has one whose value does not match its pattern, a grace period after its
    creation or after a required tag was removed from it. Tags given at creation count; the table's tag
    and untag calls change them (S3's PutBucketTagging replaces the whole set); deletion ends the watch.
    The schema is [tags]: `required` and `grace` for every type, `types.<type>` for one. The finding
    names the type, the missing and the invalid tags and the creator. One finding per resource and lapse;
    it resolves ("tags added", "resource deleted") when the tags are complete or the resource is deleted
    later."""
    return WATCH.steps(e, p)
