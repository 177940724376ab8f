"""Resource exposure: who opened a resource to everyone, or to an AWS account outside the organization's
own, through its resource policy, an S3 ACL, S3 Block Public Access or a CodeBuild project's visibility?"""

from __future__ import annotations

import json
from typing import Any

from pipeline.cases import ACCOUNT, call, service_linked
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import OTHER_ACCOUNT, foreign, strings
from pipeline.rules.change_common import by_person, change_hit, first_text
from pipeline.rules.forms import with_denied
from pipeline.rules.policy_exposure import ANYONE, described, policy_recipients

S3 = "s3.amazonaws.com"
SNS = "sns.amazonaws.com"
SQS = "sqs.amazonaws.com"
POLICY_EVENTS = {
    S3: ["PutBucketPolicy"],
    "ecr.amazonaws.com": ["SetRepositoryPolicy"],
    "kms.amazonaws.com": ["PutKeyPolicy", "CreateKey"],
    SNS: ["SetTopicAttributes", "CreateTopic", "AddPermission"],
    SQS: ["SetQueueAttributes", "CreateQueue", "AddPermission"],
    "secretsmanager.amazonaws.com": ["PutResourcePolicy"],
    "glacier.amazonaws.com": ["SetVaultAccessPolicy"],
    "elasticfilesystem.amazonaws.com": ["PutFileSystemPolicy"],
    "es.amazonaws.com": [
        "CreateElasticsearchDomain",
        "UpdateElasticsearchDomainConfig",
        "CreateDomain",
        "UpdateDomainConfig",
    ],
    "apigateway.amazonaws.com": ["CreateRestApi", "UpdateRestApi"],
}
RESOURCE_FIELDS = (
    "bucketName",
    "repositoryName",
    "keyId",
    "topicArn",
    "name",
    "queueUrl",
    "queueName",
    "secretId",
    "vaultName",
    "fileSystemId",
    "domainName",
    "restApiId",
)
EXPOSURE_RUNBOOK = (
    "Read the new policy in the event. If the outside principal is not a known partner (allowed_accounts) or the "
    "resource must not be public: restore the previous policy from infrastructure code, check the resource's "
    "access logs for reads by the outsider since the change, and investigate the principal that made it."
)


def _doc(principal: Any, condition: dict[str, Any] | None = None, action: str = "*") -> dict[str, Any]:
    stmt: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*"}
    if condition:
        stmt["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [stmt]}


def _bucket_policy(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    return call(
        S3,
        "PutBucketPolicy",
        {
            "bucketName": "customer-exports",
            "bucketPolicy": _doc(principal, condition, "s3:GetObject"),
            "policy": [""],
            "Host": ["customer-exports.s3.amazonaws.com"],
        },
    )


def _granted_accounts(e: Event, allowed: list[str]) -> list[str]:
    """Foreign accounts an SNS or SQS AddPermission names (its account list, whatever its key's case)."""
    found: list[str] = []
    for key, value in e.request.items():
        if type(key) is str and key.lower() in ("awsaccountid", "awsaccountids"):
            found.extend(a for a in strings(value, 50) if foreign(a, e, allowed))
    return found


@match(
    id="resource-policy-public-or-cross-account",
    title="Resource policy lets anyone, or an outside account, in",
    severity="critical",
    attack="T1537",
    events=POLICY_EVENTS,
    params={"allowed_accounts": [], "allowed_organizations": [], "include_failed": False},
    dedup="1h",
    runbook=EXPOSURE_RUNBOOK,
    cases=[
        *with_denied(
            "bucket policy readable by anyone",
            _bucket_policy("*"),
            failed_expect=0,
            failed_why="a rejected policy exposes nothing",
        ),
        Case(
            "ECR repository pullable by anyone",
            call(
                "ecr.amazonaws.com",
                "SetRepositoryPolicy",
                {
                    "repositoryName": "base-images",
                    "force": False,
                    "policyText": json.dumps(_doc("*", action="ecr:BatchGetImage")),
                },
            ),
            expect=1,
        ),
        Case(
            "KMS key usable by another account",
            call(
                "kms.amazonaws.com",
                "PutKeyPolicy",
                {
                    "keyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
                    "policyName": "default",
                    "policy": json.dumps(_doc({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}, action="kms:Decrypt")),
                },
            ),
            expect=1,
        ),
        Case(
            "SQS queue policy with one open statement among pinned ones",
            call(
                SQS,
                "SetQueueAttributes",
                {
                    "queueUrl": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/orders",
                    "attributes": {
                        "Policy": json.dumps(
                            {
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Principal": "*",
                                        "Action": "sqs:SendMessage",
                                        "Resource": "*",
                                        "Condition": {
                                            "ArnEquals": {"aws:SourceArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:orders"}
                                        },
                                    },
                                    {
                                        "Effect": "Allow",
                                        "Principal": "*",
                                        "Action": "sqs:ReceiveMessage",
                                        "Resource": "*",
                                    },
                                ]
                            }
                        )
                    },
                },
            ),
            expect=1,
        ),
        Case(
            "SNS topic shared with another account",
            call(
                SNS,
                "AddPermission",
                {
                    "topicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts",
                    "label": "x",
                    "aWSAccountId": [OTHER_ACCOUNT],
                    "actionName": ["Subscribe"],
                },
            ),
            expect=1,
        ),
        Case(
            "secret readable by anyone whose account is the attacker's",
            call(
                "secretsmanager.amazonaws.com",
                "PutResourcePolicy",
                {
                    "secretId": "prod/db",
                    "blockPublicPolicy": False,
                    "resourcePolicy": json.dumps(
                        _doc(
                            "*",
                            {"StringEquals": {"aws:PrincipalAccount": OTHER_ACCOUNT}},
                            "secretsmanager:GetSecretValue",
                        )
                    ),
                },
            ),
            expect=1,
        ),
        Case(
            "Glacier vault policy (nested JSON text)",
            call(
                "glacier.amazonaws.com",
                "SetVaultAccessPolicy",
                {"accountId": "-", "vaultName": "archive", "policy": {"policy": json.dumps(_doc({"AWS": "*"}))}},
            ),
            expect=1,
        ),
        Case(
            "EFS file system mountable by anyone",
            call(
                "elasticfilesystem.amazonaws.com",
                "PutFileSystemPolicy",
                {
                    "fileSystemId": "fs-0123456789abcdef0",
                    "policy": json.dumps(_doc({"AWS": "*"}, action=("elasticfilesystem:ClientMount"))),
                },
            ),
            expect=1,
        ),
        Case(
            "OpenSearch domain open to the internet",
            call(
                "es.amazonaws.com",
                "UpdateDomainConfig",
                {"domainName": "logs", "accessPolicies": json.dumps(_doc({"AWS": "*"}, action="es:*"))},
            ),
            expect=1,
        ),
        Case(
            "API Gateway policy patched open",
            call(
                "apigateway.amazonaws.com",
                "UpdateRestApi",
                {
                    "restApiId": "a1b2c3d4e5",
                    "patchOperations": [
                        {
                            "op": "replace",
                            "path": "/policy",
                            "value": json.dumps(_doc("*", action="execute-api:Invoke")),
                        }
                    ],
                },
            ),
            expect=1,
        ),
        Case(
            "default SNS policy pinned to the owner",
            call(
                SNS,
                "SetTopicAttributes",
                {
                    "topicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts",
                    "attributeName": "Policy",
                    "attributeValue": json.dumps(_doc({"AWS": "*"}, {"StringEquals": {"AWS:SourceOwner": ACCOUNT}})),
                },
            ),
            expect=0,
        ),
        Case(
            "anyone in the organization",
            _bucket_policy("*", {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}),
            expect=0,
        ),
        Case(
            "organization condition outside the configured organizations",
            _bucket_policy("*", {"StringEquals": {"aws:PrincipalOrgID": "o-other99"}}),
            expect=1,
            params={"allowed_organizations": ["o-abc123"]},
        ),
        Case(
            "a condition that holds when absent pins nothing",
            _bucket_policy("*", {"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}),
            expect=1,
        ),
        Case(
            "a wildcard account pins nothing",
            _bucket_policy("*", {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/reader"}}),
            expect=1,
        ),
        Case(
            "only from the company's VPC endpoint",
            _bucket_policy("*", {"StringEquals": {"aws:SourceVpce": "vpce-0a1b2c3d"}}),
            expect=0,
        ),
        Case(
            "CloudFront and CloudTrail service principals",
            _bucket_policy({"Service": "cloudtrail.amazonaws.com"}),
            expect=0,
        ),
        Case(
            "an allowed partner account",
            _bucket_policy({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
        Case(
            "topic display name change",
            call(
                SNS,
                "SetTopicAttributes",
                {
                    "topicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts",
                    "attributeName": "DisplayName",
                    "attributeValue": "Alerts",
                },
            ),
            expect=0,
        ),
        Case(
            "a Deny statement for everyone",
            _bucket_policy("*")
            | {
                "requestParameters": {
                    "bucketName": "b",
                    "bucketPolicy": {
                        "Statement": [
                            {
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ]
                    },
                }
            },
            expect=0,
        ),
        Case(
            "malformed policy text",
            call(SQS, "SetQueueAttributes", {"queueUrl": "q", "attributes": {"Policy": '{"Statement": [oops'}}),
            expect=0,
        ),
        Case(
            "AWS Config remediation by its service-linked role",
            {**_bucket_policy("*"), "userIdentity": service_linked("config", "AWSServiceRoleForConfig")},
            expect=0,
        ),
    ],
)
def resource_policy_public_or_cross_account(e: Event, p: Params) -> Hit | None:
    """A resource policy written so that anyone (a "*" principal with no condition pinning the caller's
    account, organization, network or ARN) or an AWS account other than the caller's (not in
    `allowed_accounts`) may use the resource: S3 bucket policies, ECR repository policies, KMS key
    policies, SNS topic and SQS queue policies and their AddPermission grants, Secrets Manager resource
    policies, Glacier vault, EFS file system, OpenSearch domain and API Gateway policies. An organization
    condition restricts unless `allowed_organizations` is set and does not list it. AWS log delivery
    that still names an AWS-owned account (Elastic Load Balancing or Redshift logs written to a bucket)
    belongs in `allowed_accounts`. Only successful calls
    count by default (a rejected policy exposes nothing); calls AWS makes itself are not findings, while
    console sessions and CloudFormation stacks are the person behind them."""
    if not by_person(e, p.include_failed):
        return None
    found = policy_recipients(e, p.allowed_accounts, p.allowed_organizations)
    if e.name == "AddPermission":
        found.extend(_granted_accounts(e, p.allowed_accounts))
    if not found:
        return None
    resource = first_text(e, *RESOURCE_FIELDS) or text(mapping(e.request.get("createRestApiInput")).get("name"))
    service = e.source.split(".")[0]
    return change_hit(
        e,
        f"Policy of {service} resource",
        resource,
        f"lets in {described(found)}",
        key=f"{service}|{resource}|{','.join(sorted(found))}",
        recipients=found,
        public=ANYONE in found,
        service=service,
    )


PUBLIC_GROUPS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)
PUBLIC_CANNED = {"public-read", "public-read-write", "authenticated-read"}


def _public_acl(value: Any, depth: int = 0) -> str:
    """The public grant (group URI or canned ACL) anywhere in an ACL request, else ""."""
    if depth > 8:
        return ""
    if type(value) is str:
        lowered = value.lower()
        if lowered in PUBLIC_CANNED:
            return lowered
        return next((g.rsplit("/", 1)[1] for g in PUBLIC_GROUPS if g.lower() in lowered), "")
    if type(value) is dict:
        return next((found for v in list(value.values())[:50] if (found := _public_acl(v, depth + 1))), "")
    return next((found for v in items(value)[:100] if (found := _public_acl(v, depth + 1))), "")


def _acl_call(acl: dict[str, Any], name: str = "PutBucketAcl") -> dict[str, Any]:
    return call(
        S3, name, {"bucketName": "customer-exports", "Host": ["customer-exports.s3.amazonaws.com"], "acl": [""], **acl}
    )


ALL_USERS_GRANT = {
    "AccessControlPolicy": {
        "AccessControlList": {
            "Grant": [
                {"Grantee": {"xsi:type": "CanonicalUser", "ID": "abc123"}, "Permission": "FULL_CONTROL"},
                {
                    "Grantee": {"xsi:type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                    "Permission": "READ",
                },
            ]
        },
        "Owner": {"ID": "abc123"},
    }
}


@match(
    id="s3-acl-grants-public-access",
    title="S3 bucket ACL grants access to everyone",
    severity="critical",
    attack=("T1537", "T1530"),
    events={S3: ["PutBucketAcl", "CreateBucket"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=EXPOSURE_RUNBOOK,
    cases=[
        *with_denied(
            "canned public-read ACL",
            _acl_call({"x-amz-acl": ["public-read"]}),
            failed_expect=0,
            failed_why="a rejected ACL (Block Public Access) exposes nothing",
        ),
        Case("AllUsers grant in the ACL document", _acl_call(ALL_USERS_GRANT), expect=1),
        Case(
            "grant header naming AuthenticatedUsers",
            _acl_call({"x-amz-grant-read": ["uri=http://acs.amazonaws.com/groups/global/AuthenticatedUsers"]}),
            expect=1,
        ),
        Case("new bucket created public", _acl_call({"x-amz-acl": "public-read-write"}, "CreateBucket"), expect=1),
        Case("private canned ACL", _acl_call({"x-amz-acl": ["private"]}), expect=0),
        Case(
            "log delivery group write",
            _acl_call(
                {
                    "AccessControlPolicy": {
                        "AccessControlList": {
                            "Grant": [
                                {
                                    "Grantee": {
                                        "xsi:type": "Group",
                                        "URI": "http://acs.amazonaws.com/groups/s3/LogDelivery",
                                    },
                                    "Permission": "WRITE",
                                }
                            ]
                        }
                    }
                }
            ),
            expect=0,
        ),
    ],
)
def s3_acl_grants_public_access(e: Event, p: Params) -> Hit | None:
    """PutBucketAcl or CreateBucket granting everyone (AllUsers) or any AWS user (AuthenticatedUsers), by
    canned ACL (public-read, public-read-write, authenticated-read), grant header or ACL document. Only
    successful calls count by default: with Block Public Access on, the call is rejected and nothing is
    exposed. Calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    grant = _public_acl(e.raw.get("requestParameters"))
    if not grant:
        return None
    bucket = e.text("requestParameters", "bucketName")
    return change_hit(e, f"S3 ACL grants {grant} on bucket", bucket, key=f"{bucket}|{grant}", grant=grant)


BPA_FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _bpa(name: str, on: bool = False, **extra: Any) -> dict[str, Any]:
    config = {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/", **dict.fromkeys(BPA_FIELDS, on), **extra}
    request: dict[str, Any] = {"PublicAccessBlockConfiguration": config}
    if "Bucket" in name:
        request |= {"bucketName": "customer-exports", "publicAccessBlock": ""}
    else:
        request |= {"Host": f"{ACCOUNT}.s3-control.us-east-1.amazonaws.com"}
    return call(S3, name, request)


@match(
    id="s3-block-public-access-removed",
    title="S3 Block Public Access removed or weakened (bucket or account)",
    severity="high",
    attack=("T1562", "T1530"),
    events={
        S3: [
            "DeleteBucketPublicAccessBlock",
            "PutBucketPublicAccessBlock",
            "DeleteAccountPublicAccessBlock",
            "PutAccountPublicAccessBlock",
        ]
    },
    params={"include_failed": True},
    dedup="1h",
    runbook=(
        "Block Public Access is the guard that stops any policy or ACL from exposing data. Ask the principal's "
        "owner; if unplanned, turn all four settings back on (account and bucket), look for PutBucketPolicy or "
        "PutBucketAcl calls that followed, and investigate the principal."
    ),
    cases=[
        *with_denied(
            "bucket setting deleted",
            call(S3, "DeleteBucketPublicAccessBlock", {"bucketName": "customer-exports", "publicAccessBlock": ""}),
            failed_expect=1,
            failed_why="trying to remove the guard is the behaviour",
        ),
        Case(
            "account setting deleted",
            call(S3, "DeleteAccountPublicAccessBlock", {"Host": f"{ACCOUNT}.s3-control.us-east-1.amazonaws.com"}),
            expect=1,
        ),
        Case("bucket settings turned off", _bpa("PutBucketPublicAccessBlock"), expect=1),
        Case(
            "account policy block turned off",
            _bpa("PutAccountPublicAccessBlock", True, BlockPublicPolicy=False),
            expect=1,
        ),
        Case("all four turned on", _bpa("PutBucketPublicAccessBlock", True), expect=0),
        Case(
            "failures ignored when configured",
            {**call(S3, "DeleteBucketPublicAccessBlock", {"bucketName": "b"}), "errorCode": "AccessDenied"},
            expect=0,
            params={"include_failed": False},
        ),
    ],
)
def s3_block_public_access_removed(e: Event, p: Params) -> Hit | None:
    """S3 Block Public Access deleted, or set with any of its four settings off, for a bucket or for the
    whole account: the step before a bucket is made public. Denied attempts count by default
    (`include_failed`); calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    off: list[str] = list(BPA_FIELDS)
    if e.name.startswith("Put"):
        config = mapping(e.request.get("PublicAccessBlockConfiguration"))
        off = [f for f in BPA_FIELDS if config.get(f) is False or text(config.get(f)).lower() == "false"]
        if not off:
            return None
    bucket = e.text("requestParameters", "bucketName")
    target = f"bucket {bucket}" if bucket else f"account {e.account}"
    return change_hit(e, "Block Public Access removed on", target, settings_off=off)


@match(
    id="codebuild-project-made-public",
    title="CodeBuild project made public",
    severity="high",
    attack=("T1567", "T1552"),
    events={"codebuild.amazonaws.com": ["UpdateProjectVisibility"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "A public project shows its build logs and artifacts to anyone: secrets printed in builds leak. Set the "
        "project back to PRIVATE, rotate any credential its builds use or print, and investigate the principal."
    ),
    cases=[
        *with_denied(
            "project visibility public",
            call(
                "codebuild.amazonaws.com",
                "UpdateProjectVisibility",
                {
                    "projectArn": f"arn:aws:codebuild:us-east-1:{ACCOUNT}:project/api-build",
                    "projectVisibility": "PUBLIC_READ",
                },
            ),
            failed_expect=0,
            failed_why="the project stays private",
        ),
        Case(
            "visibility private",
            call(
                "codebuild.amazonaws.com",
                "UpdateProjectVisibility",
                {"projectArn": "p", "projectVisibility": "PRIVATE"},
            ),
            expect=0,
        ),
    ],
)
def codebuild_project_made_public(e: Event, p: Params) -> Hit | None:
    """UpdateProjectVisibility to PUBLIC_READ: the project's build results, logs and artifacts become readable
    by anyone. Only successful calls count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed) or e.text("requestParameters", "projectVisibility") != "PUBLIC_READ":
        return None
    return change_hit(e, "CodeBuild project made public:", e.text("requestParameters", "projectArn"))
