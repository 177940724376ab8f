"""Resources of types other than EC2 instances, created and tagged as an organization's automation does:
the benign tag-compliance activity of the background, and the records the tag attacks write.

The records come from the resource table's samples (`pipeline.tagging.samples`) in the envelope of
`Shapes.call`. The background draws from a random stream of its own, so adding it moves nothing else
of a scenario.
"""

from __future__ import annotations

import random
from typing import Any

from pipeline.scenario.ids import Ids
from pipeline.scenario.org import Actor, Organization
from pipeline.scenario.shapes import Shapes
from pipeline.tagging.samples import SAMPLES, Call, Tags, name_of

Record = dict[str, Any]
TEAMS = ("platform-team", "payments", "data-eng", "web")
# What the background's automation creates, with how often.
BACKGROUND_TYPES = {
    "sqs-queue": 3,
    "sns-topic": 2,
    "dynamodb-table": 2,
    "lambda-function": 3,
    "s3-bucket": 2,
    "secretsmanager-secret": 1,
    "kms-key": 1,
}
MAX_ACTIVITIES = 6


def record(shapes: Shapes, actor: Actor, t: float, region: str, made: Call, **kw: Any) -> Record:
    """A CloudTrail record of `made` by `actor`, with the fields its service adds (S3's host and
    signature details, EC2's request id in the response)."""
    if made.source == "s3.amazonaws.com":
        host = str((made.request or {}).get("Host", ""))
        kw.setdefault("host", host)
        kw.setdefault(
            "additional",
            {
                "SignatureVersion": "SigV4",
                "CipherSuite": "TLS_AES_128_GCM_SHA256",
                "bytesTransferredIn": 0,
                "AuthenticationMethod": "AuthHeader",
                "x-amz-id-2": shapes.ids.alnum(76),
                "bytesTransferredOut": 0,
            },
        )
        bucket = str((made.request or {}).get("bucketName", ""))
        kw.setdefault(
            "resources", [{"accountId": actor.account.id, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
        )
    ev = shapes.call(actor, t, region, made.source, made.name, request=made.request, response=made.response, **kw)
    response = ev.get("responseElements")
    if made.source == "ec2.amazonaws.com" and isinstance(response, dict) and "requestId" in response:
        response["requestId"] = ev["requestID"]
    return ev


def resource_name(type_name: str, ids: Ids, account: str) -> str:
    """A new resource's id (bucket names are global: they carry the account's id)."""
    name = name_of(type_name, ids.hex(12))
    return f"{name}-{account}" if type_name == "s3-bucket" else name


def team_tags(rng: random.Random, account_name: str) -> Tags:
    return {"Owner": rng.choice(TEAMS), "CostCenter": f"cc-{rng.randrange(1000, 9999)}", "Environment": account_name}


def background(org: Organization, rng: random.Random, start: float, duration: float, count: int) -> list[Record]:
    """A few resources of other types created by Terraform or CI, tagged at creation or 30 to 90
    seconds later (S3 with PutBucketTagging), never left untagged: about one per 500 records of the
    background, at most MAX_ACTIVITIES, in the middle of the scenario."""
    if count <= 0:
        return []
    ids, shapes = Ids(rng), Shapes(rng, Ids(rng))
    automation = org.by_kind["terraform"] + org.by_kind["ci"]
    names, weights = list(BACKGROUND_TYPES), list(BACKGROUND_TYPES.values())
    out: list[Record] = []
    for _ in range(min(MAX_ACTIVITIES, max(1, count // 500))):
        actor = rng.choice(automation)
        region = actor.account.regions[0]
        type_name = rng.choices(names, weights)[0]
        sample = SAMPLES[type_name]
        rid = resource_name(type_name, ids, actor.account.id)
        tags = team_tags(rng, actor.account.name)
        t = start + duration * rng.uniform(0.1, 0.8)
        account = actor.account.id
        if rng.random() < 0.6:
            out.append(record(shapes, actor, t, region, sample.create(rid, tags, account, region)))
        else:
            out.append(record(shapes, actor, t, region, sample.create(rid, None, account, region)))
            out.append(record(shapes, actor, t + rng.uniform(30, 90), region, sample.tag(rid, tags, account, region)))
    return out
