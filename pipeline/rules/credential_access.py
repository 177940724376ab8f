"""Credential access: reading passwords, secrets and instance credentials that unlock further access."""

from __future__ import annotations

from pipeline.cases import call, failed, iam_user, in_console, role_session, via_service
from pipeline.event import Event, items, mapping, text
from pipeline.rule import ANY, Case, Gate, Hit, Params, match
from pipeline.rules.attack_common import (
    OTHER_ACCOUNT,
    actor,
    attempted,
    by_aws_service,
    from_console,
    in_networks,
    instance_session,
    long_term_key,
    outcome,
    public_address,
    strings,
)

EC2 = "ec2.amazonaws.com"
SECRETS = "secretsmanager.amazonaws.com"
SSM = "ssm.amazonaws.com"
PUBLIC_IP = "81.2.69.142"
I1 = {"instanceId": "i-0123456789abcdef0"}
UNAUTHORIZED = failed("Client.UnauthorizedOperation")


@match(
    id="ec2-password-data-retrieved",
    title="EC2 Windows administrator password data requested",
    severity="medium",
    attack="T1552",
    events={EC2: ["GetPasswordData"]},
    params={"include_failed": True, "include_console": True},
    dedup="1h",
    runbook=(
        "Ask the principal why it read Windows password data. If unexpected: list the instances it targeted "
        "(see resources and later events), rotate the local Administrator passwords of those instances, revoke "
        "the principal's sessions and keys, and review what else it did in the same hour."
    ),
    cases=[
        Case("api read", call(EC2, "GetPasswordData", I1), expect=1),
        Case(
            "denied attempts are the behaviour too",
            [
                call(EC2, "GetPasswordData", I1, **UNAUTHORIZED),
                call(EC2, "GetPasswordData", {"instanceId": "i-0123456789abcdef1"}, **UNAUTHORIZED),
            ],
            expect=1,
        ),
        Case(
            "console use ignored when configured",
            call(EC2, "GetPasswordData", I1, **in_console()),
            expect=0,
            params={"include_console": False},
        ),
        Case(
            "failures ignored when configured",
            call(EC2, "GetPasswordData", I1, **failed()),
            expect=0,
            params={"include_failed": False},
        ),
    ],
)
def ec2_password_data_retrieved(e: Event, p: Params) -> Hit | None:
    """GetPasswordData returns the encrypted Windows Administrator password of an instance: whoever holds
    the launch key pair can decrypt it. Attackers call it across many instances. Failed calls count by
    default (`include_failed`): a burst of denied attempts is the discovery attempt itself. Console use
    counts like any other (a stolen console session reads the password the same way); a team whose
    administrators routinely read passwords in the console can set `include_console` false. Calls AWS
    makes itself are never findings. A per-principal count of distinct instances would make a better
    threshold rule."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    if from_console(e) and not p.include_console:
        return None
    instance = e.text("requestParameters", "instanceId")
    return Hit(
        key=actor(e),
        resources=(instance,) if instance else (),
        summary=f"GetPasswordData on {instance or 'an instance'} by {e.principal}{outcome(e)}",
        context={"instance_id": instance, "error_code": e.error_code},
    )


def _instance_identity(instance: str = "i-0123456789abcdef0", delivery: str = "2.0") -> dict[str, object]:
    return role_session("web-instance-role", instance, ec2RoleDelivery=delivery)


@match(
    id="ec2-instance-credentials-used-outside-instance",
    title="EC2 instance credentials used from outside the instance",
    severity="high",
    attack="T1552.005",
    events={ANY: ANY},
    gates=[
        Gate.of("userIdentity.principalId", contains=":i-"),
        Gate.of("userIdentity.sessionContext.ec2RoleDelivery"),
    ],
    params={"instance_networks": []},
    param_docs={
        "instance_networks": "the account's own egress addresses (NAT gateways, Elastic IPs, "
        "proxies) as CIDR blocks: instance credentials used from there are fine"
    },
    dedup="1h",
    runbook=(
        "The role session named after an instance id was used from the source address shown. Check whether "
        "that address belongs to the instance (its public IP, NAT gateway or VPC endpoint). If not: deny the "
        "session (aws:userId = role-id:instance-id with a deny-all inline policy or revoke older sessions), "
        "isolate and investigate the instance (SSRF, SSM commands, IMDSv1), require IMDSv2, and review every "
        "call made by that session."
    ),
    cases=[
        Case(
            "credential check from the internet",
            call(
                "sts.amazonaws.com",
                "GetCallerIdentity",
                userIdentity=_instance_identity(delivery="1.0"),
                sourceIPAddress=PUBLIC_IP,
            ),
            expect=1,
        ),
        Case(
            "any call counts, DescribeInstances too",
            call(
                EC2,
                "DescribeInstances",
                {"instancesSet": {}, "filterSet": {}},
                userIdentity=_instance_identity(),
                sourceIPAddress=PUBLIC_IP,
            ),
            expect=1,
        ),
        Case(
            "session named after an instance without ec2RoleDelivery",
            call(
                "iam.amazonaws.com",
                "ListUsers",
                userIdentity=role_session("web", "i-0123456789abcdef0"),
                sourceIPAddress=PUBLIC_IP,
            ),
            expect=1,
        ),
        Case(
            "through another account's VPC endpoint",
            call(
                "sts.amazonaws.com",
                "GetCallerIdentity",
                userIdentity=_instance_identity(),
                sourceIPAddress="10.1.2.3",
                vpcEndpointId="vpce-0abc",
                vpcEndpointAccountId=OTHER_ACCOUNT,
            ),
            expect=1,
        ),
        Case(
            "turned into a console session",
            call("s3.amazonaws.com", "ListBuckets", userIdentity=_instance_identity(), **in_console()),
            expect=1,
        ),
        Case(
            "from the instance's configured egress",
            call(
                "sts.amazonaws.com", "GetCallerIdentity", userIdentity=_instance_identity(), sourceIPAddress=PUBLIC_IP
            ),
            expect=0,
            params={"instance_networks": ["81.2.69.0/24"]},
        ),
        Case(
            "through the account's own VPC endpoint",
            call(
                "sts.amazonaws.com",
                "GetCallerIdentity",
                userIdentity=_instance_identity(),
                sourceIPAddress="10.1.2.3",
                vpcEndpointId="vpce-0abc",
            ),
            expect=0,
        ),
        Case(
            "an ordinary role session",
            call(
                "sts.amazonaws.com",
                "GetCallerIdentity",
                userIdentity=role_session("ci", "build-42"),
                sourceIPAddress=PUBLIC_IP,
            ),
            expect=0,
        ),
        Case(
            "a service acting for the instance",
            call("sts.amazonaws.com", "GetCallerIdentity", **via_service("ssm", _instance_identity())),
            expect=0,
        ),
    ],
)
def ec2_instance_credentials_used_outside_instance(e: Event, p: Params) -> Hit | None:
    """Any call made with an instance profile's credentials (a role session named after the instance id,
    marked `ec2RoleDelivery`) from a public address outside `instance_networks`, through a VPC endpoint
    owned by another account, or in a console session: keys lifted from the instance metadata service
    (SSRF, a command run on the instance) and used elsewhere, whatever they are used for. CloudTrail does
    not say which addresses belong to an instance, so list the account's egress (NAT gateways, Elastic
    IPs) in `instance_networks`; until then, workloads calling AWS through a NAT gateway are findings too.
    Private addresses (the account's own VPC endpoints) and calls AWS makes itself are not findings.
    Failed calls count: trying the keys is the behaviour. One finding per session and address per hour."""
    # Runs on every event, most of them role sessions: the raw record is read first, where the session can
    # be an instance's (named after one, or delivered to one) used from somewhere that is not its own.
    raw = e.raw
    ident = raw.get("userIdentity")
    if type(ident) is not dict or ident.get("type") != "AssumedRole":
        return None
    principal_id = ident.get("principalId")
    if type(principal_id) is not str or ":i-" not in principal_id:
        context = ident.get("sessionContext")
        if type(context) is not dict or "ec2RoleDelivery" not in context:
            return None
    endpoint_account = text(raw.get("vpcEndpointAccountId"))
    if endpoint_account and endpoint_account != e.account:
        reason = f"through a VPC endpoint of account {endpoint_account}"
    elif from_console(e):
        reason = "in a console session"
    else:
        addr = public_address(e.source_ip)
        if addr is None or in_networks(addr, p.instance_networks):
            return None
        reason = f"from {e.source_ip}"
    instance = instance_session(e)
    if not instance or by_aws_service(e):
        return None
    delivery = text(mapping(e.identity.get("sessionContext")).get("ec2RoleDelivery"))
    return Hit(
        key=f"{e.principal}|{e.source_ip}",
        resources=(instance,),
        summary=f"Credentials of instance {instance} used {reason} for {e.name}{outcome(e)}",
        context={
            "instance_id": instance,
            "role": actor(e),
            "imds_version": {"1.0": "v1", "2.0": "v2"}.get(delivery, ""),
            "vpc_endpoint_account": endpoint_account,
            "error_code": e.error_code,
        },
    )


@match(
    id="secretsmanager-mass-secret-retrieval",
    title="Secrets Manager secrets retrieved in bulk",
    severity="high",
    attack="T1555.006",
    events={SECRETS: ["BatchGetSecretValue"]},
    params={"min_secret_ids": 10, "include_failed": True},
    dedup="1h",
    runbook=(
        "Identify the principal and the filter or secret list it used; list the secrets it could read "
        "(ListSecrets with the same filter). If unexpected: revoke its sessions and keys, rotate every secret "
        "that matched, and check where those secrets are used for follow-on access."
    ),
    cases=[
        Case(
            "by filter",
            call(SECRETS, "BatchGetSecretValue", {"filters": [{"key": "tag-key", "values": ["env"]}]}),
            expect=1,
        ),
        Case(
            "many explicit ids",
            call(SECRETS, "BatchGetSecretValue", {"secretIdList": [f"app/secret-{i}" for i in range(12)]}),
            expect=1,
        ),
        Case(
            "a few named secrets",
            call(SECRETS, "BatchGetSecretValue", {"secretIdList": ["app/db", "app/api"]}),
            expect=0,
        ),
        Case(
            "through a service acting with the caller's credentials",
            call(
                SECRETS,
                "BatchGetSecretValue",
                {"filters": [{"key": "name", "values": ["app"]}]},
                **via_service("lambda"),
            ),
            expect=1,
        ),
    ],
)
def secretsmanager_mass_secret_retrieval(e: Event, p: Params) -> Hit | None:
    """BatchGetSecretValue returns the values of every secret matching a filter, or of up to 20 named
    secrets, in one call. A filter (instead of naming the secrets an application needs) or at least
    `min_secret_ids` names is bulk collection. Denied calls count by default (`include_failed`): the
    attempt is the behaviour. Calls AWS makes itself are not findings. Many GetSecretValue calls by one
    principal in a short window are the same behaviour and need a threshold rule."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    filters = items(e.request.get("filters"))
    ids = strings(e.request.get("secretIdList"))
    if not filters and len(ids) < p.min_secret_ids:
        return None
    how = "by filter" if filters else f"{len(ids)} secrets by id"
    return Hit(
        key=actor(e),
        resources=tuple(ids[:20]),
        summary=f"BatchGetSecretValue {how} by {e.principal}{outcome(e)}",
        context={"filters": filters[:10], "secret_count": len(ids), "error_code": e.error_code},
    )


@match(
    id="secretsmanager-secret-read-with-long-term-key",
    title="Secret value read with a long-term access key",
    severity="low",
    attack="T1555.006",
    events={SECRETS: ["GetSecretValue"]},
    params={"include_failed": True},
    dedup="1h",
    runbook=(
        "Long-term IAM user or root keys read secret values: workloads should use roles. Confirm the key's "
        "owner and purpose; if unexpected, deactivate the key, rotate the secrets it read in this window "
        "(see the following events of the same principal) and review the key's other activity."
    ),
    cases=[
        Case(
            "IAM user key reads secrets",
            [
                call(SECRETS, "GetSecretValue", {"secretId": "prod/db"}),
                call(SECRETS, "GetSecretValue", {"secretId": "prod/api"}),
            ],
            expect=1,
        ),
        Case(
            "role session (workload)",
            call(SECRETS, "GetSecretValue", {"secretId": "prod/db"}, userIdentity=role_session("app", "task-1")),
            expect=0,
        ),
        Case(
            "console user viewing a secret",
            call(
                SECRETS,
                "GetSecretValue",
                {"secretId": "prod/db"},
                userIdentity=iam_user(key="ASIAEXAMPLEKEYID9876"),
                sessionCredentialFromConsole="true",
            ),
            expect=0,
        ),
        Case(
            "a stack of the key's user resolving the secret",
            call(SECRETS, "GetSecretValue", {"secretId": "prod/db"}, **via_service("cloudformation")),
            expect=1,
        ),
    ],
)
def secretsmanager_secret_read_with_long_term_key(e: Event, p: Params) -> Hit | None:
    """GetSecretValue called with an IAM user's or the root user's long-term access key (AKIA...). Workloads
    read secrets with role sessions and people read them through console or SSO sessions, so long-term
    keys reading secrets point to leaked keys being used to harvest secrets (one finding per principal
    per hour, naming the first secret). Denied reads count by default. A threshold on distinct secrets
    per principal would catch harvesting with any credential type."""
    if by_aws_service(e) or not long_term_key(e) or not attempted(e, p.include_failed):
        return None
    secret = e.text("requestParameters", "secretId")
    return Hit(
        key=actor(e),
        resources=(secret,) if secret else (),
        summary=f"GetSecretValue of {secret or 'a secret'} with long-term key of {e.principal}{outcome(e)}",
        context={"secret_id": secret, "error_code": e.error_code},
    )


@match(
    id="ssm-bulk-securestring-parameter-retrieval",
    title="SSM SecureString parameters decrypted in bulk",
    severity="medium",
    attack="T1555.006",
    events={SSM: ["GetParameters", "GetParametersByPath"]},
    params={"min_names": 10, "include_failed": False},
    dedup="1h",
    runbook=(
        "Identify the principal and the parameters it decrypted (resources). If unexpected: revoke its sessions "
        "and keys, rotate the credentials stored in those parameters and review its other calls (DescribeParameters "
        "beforehand is the enumeration step)."
    ),
    cases=[
        Case(
            "a full page of decrypted names",
            call(SSM, "GetParameters", {"names": [f"/creds/c{i}" for i in range(10)], "withDecryption": True}),
            expect=1,
        ),
        Case(
            "whole tree decrypted",
            call(SSM, "GetParametersByPath", {"path": "/", "recursive": True, "withDecryption": True}),
            expect=1,
        ),
        Case(
            "application reading its own few parameters",
            call(SSM, "GetParameters", {"names": ["/app/db", "/app/key"], "withDecryption": True}),
            expect=0,
        ),
        Case(
            "many names without decryption",
            call(SSM, "GetParameters", {"names": [f"/cfg/c{i}" for i in range(10)], "withDecryption": False}),
            expect=0,
        ),
        Case(
            "app path subtree",
            call(SSM, "GetParametersByPath", {"path": "/app/prod/", "recursive": True, "withDecryption": True}),
            expect=0,
        ),
        Case(
            "a stack resolving ten SecureString references",
            call(
                SSM,
                "GetParameters",
                {"names": [f"/creds/c{i}" for i in range(10)], "withDecryption": True},
                **via_service("cloudformation"),
            ),
            expect=1,
        ),
    ],
)
def ssm_bulk_securestring_parameter_retrieval(e: Event, p: Params) -> Hit | None:
    """Decrypting many SecureString parameters in one call: GetParameters with decryption for at least
    `min_names` names (10 is the API's page size, what an enumerating script uses), or GetParametersByPath
    with decryption recursively from the root path "/". Applications read the few parameters they need.
    Failed calls do not count by default (nothing was decrypted). Calls AWS makes itself are not findings;
    a stack resolving SecureString references is its creator decrypting them. Smaller batches and
    GetParameter one by one are counted by ssm-securestring-harvesting."""
    if by_aws_service(e) or not attempted(e, p.include_failed) or e.request.get("withDecryption") is not True:
        return None
    if e.name == "GetParameters":
        names = strings(e.request.get("names"))
        if len(names) < p.min_names:
            return None
        return Hit(
            key=actor(e),
            resources=tuple(names[:20]),
            summary=f"{len(names)} SecureString parameters decrypted by {e.principal}{outcome(e)}",
            context={"parameter_count": len(names), "error_code": e.error_code},
        )
    path = e.text("requestParameters", "path")
    if path != "/" or e.request.get("recursive") is not True:
        return None
    return Hit(
        key=actor(e),
        resources=(path,),
        summary=f"Every SecureString parameter under / decrypted by {e.principal}{outcome(e)}",
        context={"path": path, "error_code": e.error_code},
    )
