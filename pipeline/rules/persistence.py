"""Persistence: new ways back in that survive the loss of the first foothold (keys and passwords for
other users, roles trusting outside accounts, admin grants, backdoored Lambda functions, Roles Anywhere
trust anchors, federation tokens)."""

from __future__ import annotations

import json
from typing import Any

from pipeline.cases import SIGN_IN, call, failed, role_session, root_identity, via_service
from pipeline.event import Event, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import (
    OTHER_ACCOUNT,
    account_of,
    actor,
    allows,
    aws_principals,
    by_aws_service,
    caller_user_name,
    foreign,
    load_policy,
    statements,
    strings,
    targets_other_user,
)

IAM = "iam.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
ANYONE = "*"


def _trust_doc(account: str, principal: Any = None, condition: dict[str, Any] | None = None) -> str:
    stmt: dict[str, Any] = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": principal or {"AWS": f"arn:aws:iam::{account}:root"},
    }
    if condition:
        stmt["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


# Condition keys that pin who the caller is, and the operators that pin them when their values are
# concrete. Anything else (sts:ExternalId, aws:SourceIp, negations, ...IfExists, ForAllValues:, a value
# with a wildcard) leaves "*" open to every AWS account.
_PINNING_KEYS = frozenset({"aws:principalaccount", "aws:principalorgid", "aws:sourceaccount", "aws:principalarn"})
_PINNING_OPERATORS = frozenset({"stringequals", "stringequalsignorecase", "arnequals", "stringlike", "arnlike"})


def pinned_callers(condition: Any) -> list[str]:
    """The concrete values (accounts, organization ids, principal ARNs) a statement's Condition pins the
    caller to; empty when it pins nothing."""
    pinned: list[str] = []
    for operator, block in mapping(condition).items():
        if text(operator).lower() not in _PINNING_OPERATORS:
            continue
        for key, value in mapping(block).items():
            values = strings(value, limit=100)
            if (
                text(key).lower() in _PINNING_KEYS
                and values
                and all(v and "*" not in v and "?" not in v for v in values)
            ):
                pinned.extend(values)
    return pinned


def _trusted_outsiders(e: Event, document: Any, allowed: list[str]) -> list[str]:
    """AWS principals outside the account that a trust policy lets in: a foreign principal, "*" not
    pinned by its condition to concrete callers, or "*" pinned to a foreign account or principal."""
    found: list[str] = []
    for stmt in statements(load_policy(document)):
        if not allows(stmt):
            continue
        for principal in aws_principals(stmt):
            if principal == ANYONE:
                pinned = pinned_callers(stmt.get("Condition"))
                if not pinned:
                    found.append(ANYONE)
                found.extend(v for v in pinned if foreign(account_of(v), e, allowed))
            elif foreign(account_of(principal), e, allowed):
                found.append(principal)
    return found[:20]


@match(
    id="iam-role-trust-policy-opened-to-external-account",
    title="IAM role trust policy lets an external account (or anyone) assume the role",
    severity="high",
    attack="T1098.003",
    events={IAM: ["UpdateAssumeRolePolicy", "CreateRole"]},
    params={"allowed_accounts": []},
    dedup="1h",
    runbook=(
        "Identify the external account and whether it belongs to a known partner or to the organization (add "
        "it to allowed_accounts). If not: restore the trust policy from infrastructure code (or delete the "
        "new role), look for AssumeRole calls from that account in this account's trail, and investigate the "
        "principal that changed it."
    ),
    cases=[
        Case(
            "backdoored trust policy",
            call(IAM, "UpdateAssumeRolePolicy", {"roleName": "app", "policyDocument": _trust_doc(OTHER_ACCOUNT)}),
            expect=1,
        ),
        Case(
            "new role trusting an outside account",
            call(IAM, "CreateRole", {"roleName": "helper", "assumeRolePolicyDocument": _trust_doc(OTHER_ACCOUNT)}),
            expect=1,
        ),
        Case(
            "trust anyone without condition",
            call(
                IAM,
                "UpdateAssumeRolePolicy",
                {"roleName": "app", "policyDocument": _trust_doc("", principal={"AWS": "*"})},
            ),
            expect=1,
        ),
        Case(
            "anyone who knows an external id",
            call(
                IAM,
                "UpdateAssumeRolePolicy",
                {
                    "roleName": "app",
                    "policyDocument": _trust_doc(
                        "", principal={"AWS": "*"}, condition={"StringEquals": {"sts:ExternalId": "7b4c2f"}}
                    ),
                },
            ),
            expect=1,
        ),
        Case(
            "anyone whose ARN is like *",
            call(
                IAM,
                "CreateRole",
                {
                    "roleName": "app",
                    "assumeRolePolicyDocument": _trust_doc(
                        "", principal={"AWS": "*"}, condition={"StringLike": {"aws:PrincipalArn": "*"}}
                    ),
                },
            ),
            expect=1,
        ),
        Case(
            "anyone, if the account key exists",
            call(
                IAM,
                "UpdateAssumeRolePolicy",
                {
                    "roleName": "app",
                    "policyDocument": _trust_doc(
                        "", principal="*", condition={"StringEqualsIfExists": {"aws:PrincipalAccount": "111122223333"}}
                    ),
                },
            ),
            expect=1,
        ),
        Case(
            "anyone of a foreign account",
            call(
                IAM,
                "UpdateAssumeRolePolicy",
                {
                    "roleName": "app",
                    "policyDocument": _trust_doc(
                        "", principal={"AWS": "*"}, condition={"StringEquals": {"aws:PrincipalAccount": OTHER_ACCOUNT}}
                    ),
                },
            ),
            expect=1,
        ),
        Case(
            "anyone in the organization",
            call(
                IAM,
                "UpdateAssumeRolePolicy",
                {
                    "roleName": "app",
                    "policyDocument": _trust_doc(
                        "", principal={"AWS": "*"}, condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}
                    ),
                },
            ),
            expect=0,
        ),
        Case(
            "anyone, pinned to the account's own roles",
            call(
                IAM,
                "UpdateAssumeRolePolicy",
                {
                    "roleName": "app",
                    "policyDocument": _trust_doc(
                        "",
                        principal={"AWS": "*"},
                        condition={
                            "ArnLike": {
                                "aws:PrincipalArn": [
                                    "arn:aws:iam::111122223333:role/ci",
                                    "arn:aws:iam::111122223333:role/ops",
                                ]
                            },
                            "StringEquals": {"sts:ExternalId": "7b4c2f"},
                        },
                    ),
                },
            ),
            expect=0,
        ),
        Case(
            "allowed vendor account",
            call(IAM, "CreateRole", {"roleName": "vendor", "assumeRolePolicyDocument": _trust_doc(OTHER_ACCOUNT)}),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
        Case(
            "service and same-account principals",
            call(IAM, "CreateRole", {"roleName": "ec2", "assumeRolePolicyDocument": _trust_doc("111122223333")}),
            expect=0,
        ),
        Case(
            "a stack creating the role",
            call(
                IAM,
                "CreateRole",
                {"roleName": "x", "assumeRolePolicyDocument": _trust_doc(OTHER_ACCOUNT)},
                **via_service("cloudformation"),
            ),
            expect=1,
        ),
        Case(
            "malformed policy text",
            call(IAM, "UpdateAssumeRolePolicy", {"roleName": "app", "policyDocument": "{not json"}),
            expect=0,
        ),
    ],
)
def iam_role_trust_policy_opened_to_external_account(e: Event, p: Params) -> Hit | None:
    """CreateRole or UpdateAssumeRolePolicy whose trust policy allows an AWS principal of another account
    (not the caller's, not in `allowed_accounts`), or "*" that no condition pins to concrete callers
    (`aws:PrincipalAccount`, `aws:PrincipalOrgID`, `aws:SourceAccount` or `aws:PrincipalArn` with values
    and no wildcard; an external id alone pins nothing), or pins to a foreign account: a backdoor role
    the outsider can assume at will. Service and federated principals are not findings. Only successful calls
    count (a rejected policy grants nothing); calls AWS makes itself are not findings (a stack
    creating the role is its creator's act). Policies are read whether CloudTrail logs them as JSON or
    URL-encoded text."""
    if by_aws_service(e) or not e.succeeded:
        return None
    document = (
        e.request.get("policyDocument")
        if e.name == "UpdateAssumeRolePolicy"
        else e.request.get("assumeRolePolicyDocument")
    )
    outsiders = _trusted_outsiders(e, document, p.allowed_accounts)
    if not outsiders:
        return None
    role = e.text("requestParameters", "roleName")
    return Hit(
        key=f"{role}|{','.join(sorted(outsiders))}",
        resources=(role,) if role else (),
        summary=f"Role {role} now trusts {', '.join(outsiders)} ({e.name} by {e.principal})",
        context={"trusted": outsiders, "role": role, "actor": actor(e)},
    )


ADMIN_POLICIES = ["arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/IAMFullAccess"]


def _grants_everything(document: Any) -> bool:
    for stmt in statements(load_policy(document)):
        if not allows(stmt):
            continue
        actions = strings(stmt.get("Action"))
        resources = strings(stmt.get("Resource"))
        if any(a in ("*", "*:*") for a in actions) and ANYONE in resources:
            return True
    return False


@match(
    id="iam-admin-policy-attached",
    title="Administrator permissions granted to an IAM user, role or group",
    severity="high",
    attack=("T1098", "T1098.003"),
    events={
        IAM: [
            "AttachUserPolicy",
            "AttachRolePolicy",
            "AttachGroupPolicy",
            "PutUserPolicy",
            "PutRolePolicy",
            "PutGroupPolicy",
            "CreatePolicyVersion",
        ]
    },
    params={"admin_policies": ADMIN_POLICIES},
    dedup="1h",
    runbook=(
        "Confirm the grant with the owner of the identity and of the principal that made it. If unexpected: "
        "detach or delete the policy, disable the identity's keys and passwords, and review what the identity "
        "did since (a new admin user with a fresh access key is a classic backdoor)."
    ),
    cases=[
        Case(
            "AdministratorAccess on a user",
            call(
                IAM, "AttachUserPolicy", {"userName": "svc", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}
            ),
            expect=1,
        ),
        Case(
            "inline allow-all on a role",
            call(
                IAM,
                "PutRolePolicy",
                {
                    "roleName": "app",
                    "policyName": "x",
                    "policyDocument": '{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
                },
            ),
            expect=1,
        ),
        Case(
            "default version granting everything",
            call(
                IAM,
                "CreatePolicyVersion",
                {
                    "policyArn": "arn:aws:iam::111122223333:policy/app",
                    "setAsDefault": True,
                    "policyDocument": '{"Statement":{"Effect":"Allow","Action":"*:*","Resource":["*"]}}',
                },
            ),
            expect=1,
        ),
        Case(
            "read-only policy",
            call(IAM, "AttachUserPolicy", {"userName": "svc", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
            expect=0,
        ),
        Case(
            "scoped inline policy",
            call(
                IAM,
                "PutUserPolicy",
                {
                    "userName": "svc",
                    "policyName": "s3",
                    "policyDocument": '{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}',
                },
            ),
            expect=0,
        ),
        Case(
            "non-default policy version",
            call(
                IAM,
                "CreatePolicyVersion",
                {
                    "policyArn": "arn:aws:iam::111122223333:policy/app",
                    "setAsDefault": False,
                    "policyDocument": '{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
                },
            ),
            expect=0,
        ),
        Case(
            "denied",
            call(
                IAM,
                "AttachRolePolicy",
                {"roleName": "app", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
                **failed(),
            ),
            expect=0,
        ),
    ],
)
def iam_admin_policy_attached(e: Event, p: Params) -> Hit | None:
    """Full administrator permissions granted: a managed policy in `admin_policies` attached to a user,
    role or group, or an inline policy / new default policy version that allows every action on every
    resource. Only successful calls count; calls AWS makes itself are not findings (a stack
    granting it is its creator's act)."""
    if by_aws_service(e) or not e.succeeded:
        return None
    request = e.request
    if e.name.startswith("Attach"):
        policy = text(request.get("policyArn"))
        if policy not in p.admin_policies:
            return None
    elif e.name == "CreatePolicyVersion":
        policy = text(request.get("policyArn"))
        if request.get("setAsDefault") is not True or not _grants_everything(request.get("policyDocument")):
            return None
    else:
        policy = text(request.get("policyName"))
        if not _grants_everything(request.get("policyDocument")):
            return None
    grantee = text(request.get("userName")) or text(request.get("roleName")) or text(request.get("groupName")) or policy
    return Hit(
        key=f"{grantee}|{policy}",
        resources=(grantee, policy),
        summary=f"Administrator access ({policy}) granted to {grantee} by {e.principal}",
        context={"grantee": grantee, "policy": policy, "actor": actor(e)},
    )


def _other_user_hit(e: Event, what: str) -> Hit | None:
    target = targets_other_user(e)
    if not target or by_aws_service(e) or not e.succeeded:
        return None
    return Hit(
        key=f"{actor(e)}|{target}",
        resources=(target,),
        summary=f"{what} for user {target} by {e.principal}",
        context={"target_user": target, "caller_user": caller_user_name(e), "actor": actor(e)},
    )


@match(
    id="iam-access-key-created-for-another-user",
    title="Access key created for another IAM user",
    severity="medium",
    attack="T1098.001",
    events={IAM: ["CreateAccessKey"]},
    dedup="1h",
    runbook=(
        "Confirm with the target user's owner that a new key was wanted. If not: deactivate and delete the "
        "key (responseElements.accessKey.accessKeyId), review its use, and investigate the principal."
    ),
    cases=[
        Case(
            "key for someone else",
            call(
                IAM,
                "CreateAccessKey",
                {"userName": "backup-svc"},
                {"accessKey": {"accessKeyId": "AKIANEW", "userName": "backup-svc"}},
            ),
            expect=1,
        ),
        Case(
            "role session creating a user key",
            call(IAM, "CreateAccessKey", {"userName": "ci"}, userIdentity=role_session("admin")),
            expect=1,
        ),
        Case("user rotating own key", call(IAM, "CreateAccessKey", {"userName": "alice"}), expect=0),
        Case("own key, no user named", call(IAM, "CreateAccessKey"), expect=0),
        Case("denied", call(IAM, "CreateAccessKey", {"userName": "backup-svc"}, **failed()), expect=0),
    ],
)
def iam_access_key_created_for_another_user(e: Event, p: Params) -> Hit | None:
    """CreateAccessKey naming a user other than the calling IAM user: a second, long-lived way in that
    survives the loss of the caller's own credentials. A user creating their own key is not a finding.
    Only successful calls count; calls AWS makes itself are not findings."""
    return _other_user_hit(e, "Access key created")


@match(
    id="iam-login-profile-created-for-another-user",
    title="Console password created for another IAM user",
    severity="medium",
    attack="T1098.001",
    events={IAM: ["CreateLoginProfile"]},
    dedup="1h",
    runbook=(
        "Confirm with the target user's owner. If unexpected: delete the login profile, check ConsoleLogin "
        "events of that user since, and investigate the principal."
    ),
    cases=[
        Case(
            "password for a service user",
            call(IAM, "CreateLoginProfile", {"userName": "svc", "passwordResetRequired": False}),
            expect=1,
        ),
        Case("user setting own password", call(IAM, "CreateLoginProfile", {"userName": "alice"}), expect=0),
        Case("denied", call(IAM, "CreateLoginProfile", {"userName": "svc"}, **failed()), expect=0),
    ],
)
def iam_login_profile_created_for_another_user(e: Event, p: Params) -> Hit | None:
    """CreateLoginProfile giving console access to a user other than the caller (often a service user that
    never had a password). Only successful calls count; calls AWS makes itself are not findings."""
    return _other_user_hit(e, "Console password created")


def _lambda_names(base: str, *versions: str) -> list[str]:
    return [base, *(f"{base}{v}" for v in versions)]


ADD_PERMISSION = _lambda_names("AddPermission", "20150331", "20150331v2")
UPDATE_CONFIG = _lambda_names("UpdateFunctionConfiguration", "20150331", "20150331v2")
UPDATE_CODE = _lambda_names("UpdateFunctionCode", "20150331", "20150331v2")
URL_CONFIG = _lambda_names("CreateFunctionUrlConfig", "20211031") + _lambda_names("UpdateFunctionUrlConfig", "20211031")


def _function(e: Event) -> str:
    return e.text("requestParameters", "functionName")


@match(
    id="lambda-function-policy-opened-externally",
    title="Lambda function made invocable by anyone or by an external account",
    severity="high",
    attack=("T1546", "T1098"),
    events={LAMBDA: ADD_PERMISSION},
    params={"allowed_accounts": []},
    dedup="1h",
    runbook=(
        "Read the added statement (responseElements.statement). If the outside principal is not expected, "
        "remove it (RemovePermission with the statement id), review the function's recent invocations and "
        "code, and investigate the principal."
    ),
    cases=[
        Case(
            "anyone may invoke",
            call(
                LAMBDA,
                "AddPermission20150331v2",
                {"functionName": "f", "action": "lambda:InvokeFunction", "principal": "*", "statementId": "x"},
            ),
            expect=1,
        ),
        Case(
            "external account",
            call(
                LAMBDA,
                "AddPermission20150331v2",
                {"functionName": "f", "action": "lambda:InvokeFunction", "principal": OTHER_ACCOUNT},
            ),
            expect=1,
        ),
        Case(
            "S3 trigger with source account",
            call(
                LAMBDA,
                "AddPermission20150331v2",
                {
                    "functionName": "f",
                    "action": "lambda:InvokeFunction",
                    "principal": "s3.amazonaws.com",
                    "sourceAccount": "111122223333",
                    "sourceArn": "arn:aws:s3:::bucket",
                },
            ),
            expect=0,
        ),
        Case(
            "anyone in the organization",
            call(
                LAMBDA,
                "AddPermission20150331v2",
                {"functionName": "f", "action": "lambda:InvokeFunction", "principal": "*", "principalOrgID": "o-abc"},
            ),
            expect=0,
        ),
        Case(
            "allowed account",
            call(LAMBDA, "AddPermission20150331v2", {"functionName": "f", "principal": OTHER_ACCOUNT}),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
    ],
)
def lambda_function_policy_opened_externally(e: Event, p: Params) -> Hit | None:
    """AddPermission on a function's resource policy for "*" (without a source account, source ARN or
    organization condition) or for an AWS account outside the caller's (not in `allowed_accounts`): a
    backdoor anyone, or the attacker's account, can invoke. Service principals (S3, EventBridge, API
    Gateway triggers) are not findings. Only successful calls count; calls AWS services make are not
    findings."""
    if by_aws_service(e) or not e.succeeded:
        return None
    request = e.request
    principal = text(request.get("principal"))
    constrained = any(text(request.get(k)) for k in ("sourceAccount", "sourceArn", "principalOrgID"))
    if principal == ANYONE:
        if constrained:
            return None
        who = "anyone"
    elif foreign(account_of(principal), e, p.allowed_accounts):
        who = principal
    else:
        return None
    function = _function(e)
    return Hit(
        key=f"{function}|{principal}",
        resources=(function,),
        summary=f"Lambda {function} invocable by {who} ({text(request.get('action'))}) via {e.principal}",
        context={
            "principal": principal,
            "action": text(request.get("action")),
            "statement_id": text(request.get("statementId")),
            "function_url_auth_type": text(request.get("functionUrlAuthType")),
        },
    )


@match(
    id="lambda-function-url-public",
    title="Lambda function URL without authentication",
    severity="medium",
    attack=("T1546", "T1190"),
    events={LAMBDA: URL_CONFIG},
    dedup="1h",
    runbook=(
        "A function URL with auth type NONE is reachable by anyone on the internet. Confirm it is meant to be "
        "public (a webhook); if not, switch it to AWS_IAM or delete it and review the function's invocations."
    ),
    cases=[
        Case(
            "public URL",
            call(LAMBDA, "CreateFunctionUrlConfig20211031", {"functionName": "f", "authType": "NONE"}),
            expect=1,
        ),
        Case(
            "IAM-authenticated URL",
            call(LAMBDA, "UpdateFunctionUrlConfig20211031", {"functionName": "f", "authType": "AWS_IAM"}),
            expect=0,
        ),
    ],
)
def lambda_function_url_public(e: Event, p: Params) -> Hit | None:
    """CreateFunctionUrlConfig / UpdateFunctionUrlConfig with auth type NONE: the function gets a public
    HTTPS endpoint. Only successful calls count; calls AWS makes itself are not findings."""
    if by_aws_service(e) or not e.succeeded or e.text("requestParameters", "authType").upper() != "NONE":
        return None
    function = _function(e)
    return Hit(
        key=function,
        resources=(function,),
        summary=f"Public URL for Lambda {function} by {e.principal}",
        context={"auth_type": "NONE"},
    )


@match(
    id="lambda-layer-added-to-function",
    title="Lambda layers set on an existing function",
    severity="medium",
    attack="T1525",
    events={LAMBDA: UPDATE_CONFIG},
    params={"only_external_layers": False, "allowed_layer_accounts": []},
    dedup="1h",
    runbook=(
        "Layers (and extensions inside them) run inside every invocation, with the function's role. Compare "
        "the layers with the function's deployment code; inspect unknown layer versions (GetLayerVersion) and "
        "remove them; investigate the principal."
    ),
    cases=[
        Case(
            "layer added",
            call(
                LAMBDA,
                "UpdateFunctionConfiguration20150331v2",
                {"functionName": "f", "layers": ["arn:aws:lambda:us-east-1:111122223333:layer:ext:1"]},
            ),
            expect=1,
        ),
        Case(
            "external layer only mode",
            call(
                LAMBDA,
                "UpdateFunctionConfiguration20150331v2",
                {"functionName": "f", "layers": [f"arn:aws:lambda:us-east-1:{OTHER_ACCOUNT}:layer:ext:3"]},
            ),
            expect=1,
            params={"only_external_layers": True},
        ),
        Case(
            "own layer in external-only mode",
            call(
                LAMBDA,
                "UpdateFunctionConfiguration20150331v2",
                {"functionName": "f", "layers": ["arn:aws:lambda:us-east-1:111122223333:layer:ext:1"]},
            ),
            expect=0,
            params={"only_external_layers": True},
        ),
        Case(
            "memory change without layers",
            call(LAMBDA, "UpdateFunctionConfiguration20150331v2", {"functionName": "f", "memorySize": 256}),
            expect=0,
        ),
        Case(
            "a stack update setting the layer",
            call(
                LAMBDA,
                "UpdateFunctionConfiguration20150331v2",
                {"functionName": "f", "layers": ["arn:aws:lambda:us-east-1:111122223333:layer:ext:1"]},
                **via_service("cloudformation"),
            ),
            expect=1,
        ),
    ],
)
def lambda_layer_added_to_function(e: Event, p: Params) -> Hit | None:
    """UpdateFunctionConfiguration that sets layers on an existing function: a layer carrying a Lambda
    extension runs attacker code in every invocation with the function's role, without touching the
    function's own code. With `only_external_layers`, only layers of accounts other than the caller's (and
    not in `allowed_layer_accounts`, e.g. a monitoring vendor's) count. Only successful calls count,
    through CloudFormation or SAM too (allowlist the deployment pipeline's role)."""
    if by_aws_service(e) or not e.succeeded:
        return None
    layers = strings(e.request.get("layers"), limit=20)
    if not layers:
        return None
    external = [arn for arn in layers if foreign(account_of(arn), e, p.allowed_layer_accounts)]
    if p.only_external_layers and not external:
        return None
    function = _function(e)
    return Hit(
        key=function,
        resources=(function, *layers),
        summary=f"Layers {', '.join(layers)} set on Lambda {function} by {e.principal}",
        context={"layers": layers, "external_layers": external, "actor": actor(e)},
    )


@match(
    id="lambda-function-code-updated",
    title="Lambda function code replaced",
    severity="low",
    attack=("T1525", "T1648"),
    events={LAMBDA: UPDATE_CODE},
    dedup="1h",
    runbook=(
        "Check that the update came from the function's deployment pipeline (allowlist the pipeline's role). "
        "If not: compare the code hash (responseElements.codeSha256) with the expected build, roll back to a "
        "known version, and investigate the principal."
    ),
    cases=[
        Case(
            "direct upload",
            call(
                LAMBDA, "UpdateFunctionCode20150331v2", {"functionName": "f", "publish": True}, {"codeSha256": "abc="}
            ),
            expect=1,
        ),
        Case(
            "deployment through CloudFormation",
            call(
                LAMBDA,
                "UpdateFunctionCode20150331v2",
                {"functionName": "f", "s3Bucket": "b", "s3Key": "k"},
                **via_service("cloudformation"),
            ),
            expect=1,
        ),
        Case("denied", call(LAMBDA, "UpdateFunctionCode20150331v2", {"functionName": "f"}, **failed()), expect=0),
    ],
)
def lambda_function_code_updated(e: Event, p: Params) -> Hit | None:
    """UpdateFunctionCode replacing a function's code: the function then runs whatever the caller
    uploaded, with its role and triggers. Deployments are routine, so this is low severity, one finding
    per function per hour, and deployment pipelines belong in the allowlist; updates made through
    CloudFormation or SAM count like any other. Only successful calls count."""
    if by_aws_service(e) or not e.succeeded:
        return None
    function = _function(e)
    request = e.request
    source = "image" if text(request.get("imageUri")) else "s3" if text(request.get("s3Bucket")) else "upload"
    return Hit(
        key=function,
        resources=(function,),
        summary=f"Code of Lambda {function} replaced by {e.principal}",
        context={"source": source, "code_sha256": e.text("responseElements", "codeSha256"), "actor": actor(e)},
    )


@match(
    id="iam-roles-anywhere-trust-anchor-created",
    title="IAM Roles Anywhere trust anchor created or changed",
    severity="high",
    attack="T1098",
    events={"rolesanywhere.amazonaws.com": ["CreateTrustAnchor", "UpdateTrustAnchor"]},
    dedup="1h",
    runbook=(
        "A trust anchor lets anyone holding a certificate from its CA obtain role credentials from outside AWS. "
        "Confirm the CA belongs to the organization's PKI; if not, disable and delete the anchor and its "
        "profiles, and review CreateSession calls and the roles the profiles map to."
    ),
    cases=[
        Case(
            "anchor with a certificate bundle",
            call(
                "rolesanywhere.amazonaws.com",
                "CreateTrustAnchor",
                {"name": "anchor", "enabled": True, "source": {"sourceType": "CERTIFICATE_BUNDLE"}},
                {"trustAnchor": {"trustAnchorArn": "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/x"}},
            ),
            expect=1,
        ),
        Case("denied", call("rolesanywhere.amazonaws.com", "CreateTrustAnchor", {"name": "a"}, **failed()), expect=0),
        Case(
            "a stack creating the anchor",
            call("rolesanywhere.amazonaws.com", "CreateTrustAnchor", {"name": "a"}, **via_service("cloudformation")),
            expect=1,
        ),
    ],
)
def iam_roles_anywhere_trust_anchor_created(e: Event, p: Params) -> Hit | None:
    """CreateTrustAnchor / UpdateTrustAnchor in IAM Roles Anywhere: registering a certificate authority
    whose certificates can be exchanged for role credentials from anywhere, a persistence path that no
    access key rotation removes. Only successful calls count; calls AWS makes itself are not findings."""
    if by_aws_service(e) or not e.succeeded:
        return None
    anchor = mapping(e.response.get("trustAnchor"))
    name = e.text("requestParameters", "name") or text(anchor.get("name"))
    arn = text(anchor.get("trustAnchorArn")) or e.text("requestParameters", "trustAnchorId")
    source_type = text(mapping(e.request.get("source")).get("sourceType"))
    return Hit(
        key=arn or name,
        resources=tuple(x for x in (arn, name) if x),
        summary=f"Roles Anywhere trust anchor {name or arn} ({e.name}) by {e.principal}",
        context={"source_type": source_type, "actor": actor(e)},
    )


def _allows_everything(document: Any) -> bool:
    return any(allows(s) and ANYONE in strings(s.get("Action")) for s in statements(load_policy(document)))


@match(
    id="sts-federation-token-created",
    title="Federation token obtained from IAM user credentials",
    severity="medium",
    attack=("T1550.001", "T1098"),
    events={"sts.amazonaws.com": ["GetFederationToken"]},
    dedup="1h",
    runbook=(
        "GetFederationToken turns an IAM user's key into sessions that outlive the key's deletion (up to 36 "
        "hours) and can open the console. Confirm the user is a federation broker; if not, deactivate the "
        "user's keys, attach a deny-all policy to the user (which also cuts its federated sessions), and "
        "review the federated user's calls."
    ),
    cases=[
        Case(
            "broad federation token",
            call(
                "sts.amazonaws.com",
                "GetFederationToken",
                {"name": "x", "policy": '{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'},
                {"federatedUser": {"arn": "arn:aws:sts::111122223333:federated-user/x"}},
            ),
            expect=1,
        ),
        Case("denied", call("sts.amazonaws.com", "GetFederationToken", {"name": "x"}, **failed()), expect=0),
        Case("session token (MFA)", call("sts.amazonaws.com", "GetSessionToken"), expect=0),
    ],
)
def sts_federation_token_created(e: Event, p: Params) -> Hit | None:
    """A successful GetFederationToken: temporary credentials derived from an IAM user's long-term key that
    keep working after the key is deleted, a known persistence trick. Legitimate use is rare (custom
    federation brokers: allowlist them). Calls AWS makes itself are not findings."""
    if by_aws_service(e) or not e.succeeded:
        return None
    federated = text(mapping(e.response.get("federatedUser")).get("arn"))
    name = e.text("requestParameters", "name")
    return Hit(
        key=f"{actor(e)}|{name}",
        resources=tuple(x for x in (federated,) if x),
        summary=f"Federation token {name} obtained by {e.principal}",
        context={"federated_user": federated, "policy_allows_all": _allows_everything(e.request.get("policy"))},
    )


SIGNIN = "signin.amazonaws.com"


def _root_console(**fields: Any) -> dict[str, Any]:
    """A call root made in the console: CloudTrail names the sign-in service in invokedBy."""
    return {
        "userIdentity": root_identity(
            invokedBy=SIGNIN,
            sessionContext={"attributes": {"creationDate": "2024-07-01T13:55:00Z", "mfaAuthenticated": "true"}},
        ),
        "sourceIPAddress": "81.2.69.142",
        "userAgent": SIGNIN,
        **fields,
    }


def _root_password(name: str = "PasswordUpdated", outcome: str = "Success") -> dict[str, Any]:
    record = call(
        SIGNIN,
        name,
        response={name: outcome},
        userIdentity=root_identity(accessKeyId=""),
        sourceIPAddress="81.2.69.142",
    )
    record["requestParameters"] = None
    return record


@match(
    id="root-credentials-changed",
    title="Root user access key created or password changed",
    severity="critical",
    attack=("T1098", "T1098.001"),
    events={IAM: ["CreateAccessKey"], SIGNIN: ["PasswordUpdated", "PasswordRecoveryCompleted"]},
    dedup="1h",
    runbook=(
        "Only the root user's owner should ever do this, and root access keys should not exist at all. Call "
        "the owner at once. If it was not them: delete the root access key (responseElements.accessKey), "
        "reset the root password and MFA device through the account's email, review every call made with "
        "root credentials since, and contact AWS Support if the account's email or MFA was changed too."
    ),
    cases=[
        Case(
            "root key created in the console (invokedBy signin)",
            call(
                IAM,
                "CreateAccessKey",
                response={
                    "accessKey": {
                        "accessKeyId": "AKIAROOTNEWKEY000001",
                        "status": "Active",
                        "createDate": "Jul 1, 2024, 2:00:00 PM",
                    }
                },
                **_root_console(),
            ),
            expect=1,
        ),
        Case(
            "root key created with the CLI",
            call(IAM, "CreateAccessKey", userIdentity=root_identity(accessKeyId="AKIAROOTOLDKEY000001")),
            expect=1,
        ),
        Case("root password changed", _root_password(), expect=1, no_form=SIGN_IN),
        Case(
            "root password recovered by email", _root_password("PasswordRecoveryCompleted"), expect=1, no_form=SIGN_IN
        ),
        Case(
            "root creating a key for an IAM user",
            call(IAM, "CreateAccessKey", {"userName": "alice"}, **_root_console()),
            expect=0,
        ),
        Case("an IAM user creating their own key", call(IAM, "CreateAccessKey"), expect=0),
        Case("root password change failed", _root_password(outcome="Failure"), expect=0),
        Case(
            "root key creation denied",
            call(IAM, "CreateAccessKey", **_root_console(**failed("LimitExceeded"))),
            expect=0,
        ),
    ],
)
def root_credentials_changed(e: Event, p: Params) -> Hit | None:
    """The root user created an access key for itself, or its password was changed or recovered: a new
    way into the one identity no policy can limit. Whatever invoked the call (the console's sign-in
    service, CloudFormation, or nothing), root acted, so `invokedBy` is not looked at. Only successful
    changes count; root creating a key for an IAM user is left to the IAM rules."""
    if e.identity_type != "Root" or not e.succeeded:
        return None
    key = ""
    if e.name == "CreateAccessKey":
        if e.text("requestParameters", "userName"):
            return None
        key = e.text("responseElements", "accessKey", "accessKeyId")
        what = f"access key {key} created" if key else "access key created"
    elif e.text("responseElements", e.name) in ("", "Success"):
        what = "password recovered" if e.name == "PasswordRecoveryCompleted" else "password changed"
    else:
        return None
    account = e.account
    return Hit(
        key=f"{account}|{e.name}",
        resources=(f"arn:aws:iam::{account}:root",) if account else (),
        summary=f"Root user of {account or 'unknown account'}: {what} from {e.source_ip or 'unknown address'}",
        context={
            "invoked_by": text(e.identity.get("invokedBy")),
            "access_key_id": key,
            "mfa_authenticated": e.mfa_authenticated,
        },
    )
