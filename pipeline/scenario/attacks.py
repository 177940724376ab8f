"""Attack scenarios: each writes the CloudTrail an attacker leaves behind and declares the findings it must raise.

An attack runs with a `Kit`: the account it targets, a compromised identity calling from an
attacker's address, and helpers to write records and expectations. Rule ids live in `RULES`,
one place to follow the rule pack.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Config
from pipeline.finding import OPEN, RESOLVED
from pipeline.rule import parse_duration
from pipeline.rules.iam_user_after_hours import business_hours_of
from pipeline.scenario.expected import Expected
from pipeline.scenario.ids import Ids, java_date
from pipeline.scenario.org import PEOPLE, UNUSED_REGIONS, Account, Actor, Organization, iam_user_identity, root_identity
from pipeline.scenario.shapes import Shapes
from pipeline.scenario.tagging import record as tag_record
from pipeline.scenario.tagging import resource_name
from pipeline.tagging.samples import SAMPLES, Call

# Rule ids the attacks expect, by what they detect.
RULES = {
    # stateless, fixed
    "console-no-mfa": "console-login-without-mfa",
    "sg-open": "ec2-security-group-open-to-internet",
    "user-after-hours": "iam-user-created-outside-business-hours",
    # CIS AWS Foundations monitoring controls
    "cis-root": "cis-root-account-usage",
    "cis-unauthorized": "cis-unauthorized-api-calls",
    "cis-iam-policy": "cis-iam-policy-changes",
    "cis-cloudtrail": "cis-cloudtrail-config-changes",
    "cis-console-failures": "cis-console-authentication-failures",
    "cis-cmk": "cis-kms-cmk-disabled-or-deleted",
    "cis-s3-policy": "cis-s3-bucket-policy-changes",
    "cis-config": "cis-aws-config-changes",
    "cis-sg": "cis-security-group-changes",
    "cis-nacl": "cis-nacl-changes",
    "cis-gateway": "cis-network-gateway-changes",
    "cis-route": "cis-route-table-changes",
    "cis-vpc": "cis-vpc-changes",
    "cis-organizations": "cis-organizations-changes",
    # attack techniques
    "cloudtrail-stop": "cloudtrail-logging-stopped",
    "cloudtrail-delete": "cloudtrail-trail-deleted",
    "cloudtrail-selectors": "cloudtrail-event-selectors-reduce-logging",
    "flow-logs-delete": "vpc-flow-logs-deleted",
    "dns-logs-delete": "route53-resolver-query-logging-deleted",
    "org-leave": "organizations-leave-attempted",
    "config-stopped": "config-recording-stopped",
    "snapshot-share": "ebs-snapshot-shared-externally",
    "ami-share": "ec2-ami-shared-publicly-or-externally",
    "rds-share": "rds-snapshot-shared-externally",
    "role-backdoor": "iam-role-trust-policy-opened-to-external-account",
    "user-backdoor-key": "iam-access-key-created-for-another-user",
    "admin-policy": "iam-admin-policy-attached",
    "backdoor-role": "iam-role-trust-policy-opened-to-external-account",
    "login-profile": "iam-login-profile-created-for-another-user",
    "login-profile-update": "iam-login-profile-updated-for-another-user",
    "lambda-public": "lambda-function-policy-opened-externally",
    "lambda-layer": "lambda-layer-added-to-function",
    "lambda-code": "lambda-function-code-updated",
    "rolesanywhere": "iam-roles-anywhere-trust-anchor-created",
    "federation-token": "sts-federation-token-created",
    "password-data": "ec2-password-data-retrieved",
    "secrets": "secretsmanager-secret-read-with-long-term-key",
    "secrets-batch": "secretsmanager-mass-secret-retrieval",
    "ssm-params": "ssm-bulk-securestring-parameter-retrieval",
    "user-data-read": "ec2-instance-user-data-read",
    "unusual-instances": "ec2-unusual-instance-type-launched",
    "user-data-modified": "ec2-instance-user-data-modified",
    "ssm-command": "ssm-send-command-to-instances",
    "ssm-session": "ssm-session-started",
    "bedrock": "bedrock-model-access-enabled",
    "instance-connect": "ec2-instance-connect-ssh-key-pushed",
    "serial-console": "ec2-serial-console-access",
    "instance-creds": "ec2-instance-credentials-used-outside-instance",
    # stateful
    "untagged": "ec2-instance-missing-required-tags",
    "untagged-resource": "resource-missing-required-tags",
    "brute-force": "console-login-brute-force",
    "spraying": "console-login-password-spraying",
    "recon": "access-denied-recon",
    "key-then-admin": "iam-access-key-then-privilege",
    "profile-no-mfa": "iam-login-profile-without-mfa",
    "new-region": "first-seen-region",
    "new-ip": "first-seen-console-source-ip",
}

ATTACKER_AGENTS = (
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023 prompt/off",
    "Boto3/1.28.57 md/Botocore#1.31.57 ua/2.0 os/linux#6.5.0-kali3-amd64 md/arch#x86_64 lang/python#3.11.6 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.31.57",
    "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64",
)
ATTACKER_NETS = ("185.220.101", "45.155.205", "91.240.118", "193.142.146", "146.70.199")
EXTERNAL_ACCOUNT = "914358201766"  # outside the organization
REQUIRED_TAGS = {"Owner": "platform-team", "CostCenter": "cc-4410", "Environment": "prod"}
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2lvZmY...\n-----END CERTIFICATE-----\n"


@dataclass
class Kit:
    """What one attack runs with; `emit` and `expect` collect its output."""

    org: Organization
    shapes: Shapes
    ids: Ids
    rng: random.Random
    start: float
    end: float
    name: str
    account: Account
    actor: Actor
    ip: str
    region: str
    config: Config = field(default_factory=Config.from_dict)
    placed: bool = True  # False when the attack's time condition holds nowhere (see Attack.when)
    events: list[dict[str, Any]] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)

    def api(
        self,
        t: float,
        source: str,
        name: str,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        *,
        read_only: bool = False,
        region: str = "",
        actor: Actor | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        actor = actor or self.actor
        kw.setdefault("ip", self.ip)
        ev = self.shapes.call(
            actor, t, region or self.region, source, name, request=request, response=response, read_only=read_only, **kw
        )
        self.events.append(ev)
        return ev

    def emit(self, ev: dict[str, Any]) -> dict[str, Any]:
        self.events.append(ev)
        return ev

    def expect(
        self, what: str, *, stateful: bool = False, present: bool = True, status: str = OPEN, **facts: str
    ) -> None:
        self.expected.append(Expected(RULES[what], self.name, self.account.id, dict(facts), stateful, present, status))

    def step(self, t: float, lo: float = 1, hi: float = 12) -> float:
        return t + self.rng.uniform(lo, hi)

    def external_user(self, name: str) -> Actor:
        """Another compromised long-term identity in the target account."""
        ident = iam_user_identity(self.account.id, name, self.ids.key_id("AIDA"), self.ids.key_id("AKIA"))
        return Actor(f"attacker:{name}", "attacker", self.account, ident, (self.ip,), self.actor.agents, user_name=name)


When = Callable[[Config], Callable[[float], bool]]


@dataclass(frozen=True)
class Attack:
    """An attack; `when`, given the configuration, tells whether an epoch second suits the attack's start
    (e.g. outside business hours): the builder then places it at such a moment, whatever the clock says.
    An attack `apart` draws its moment, account and ids from a random stream of its own, so adding one
    moves no other attack (nor any finding id of a recorded scenario)."""

    name: str
    summary: str
    run: Callable[[Kit, float], None]
    stateful: bool = False
    when: When | None = None
    apart: bool = False


ATTACKS: dict[str, Attack] = {}


def attack(
    name: str, summary: str, stateful: bool = False, when: When | None = None, apart: bool = False
) -> Callable[[Callable[[Kit, float], None]], Callable[[Kit, float], None]]:
    def wrap(fn: Callable[[Kit, float], None]) -> Callable[[Kit, float], None]:
        if apart and when is not None:
            raise ValueError(f"attack {name}: an attack placed apart has no time condition")
        ATTACKS[name] = Attack(name, summary, fn, stateful, when, apart)
        return fn

    return wrap


def outside_business_hours(config: Config) -> Callable[[float], bool]:
    """Outside the business hours configured for the after-hours rule (days, hours, time zone)."""
    hours = business_hours_of(config)
    return lambda t: not hours.contains(t)


def _arn(k: Kit) -> str:
    return str(k.actor.identity.get("arn", ""))


# -- stateless: the rules with fixed ids ---------------------------------------------------------------


@attack("console-login-without-mfa", "An IAM user signs in to the console with a password alone")
def console_login_without_mfa(k: Kit, t: float) -> None:
    user = Actor(
        "attacker:contractor",
        "human-iam",
        k.account,
        {},
        (k.ip,),
        ("",),
        user_name="contractor-jsmith",
        extra={"principal_id": k.ids.key_id("AIDA")},
    )
    k.emit(
        k.shapes.console_login(
            user,
            t,
            success=True,
            mfa=False,
            ip=k.ip,
            agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36",
            user_name="contractor-jsmith",
        )
    )
    k.expect("console-no-mfa", resource="contractor-jsmith")


@attack("security-group-open", "SSH and RDP opened to the whole internet, IPv4 and IPv6")
def security_group_open(k: Kit, t: float) -> None:
    group = k.ids.resource("sg")
    k.emit(k.shapes.authorize_ingress(k.actor, t, k.region, group, [("tcp", 22, 22, "0.0.0.0/0")], ip=k.ip))
    group2 = k.ids.resource("sg")
    k.emit(k.shapes.authorize_ingress(k.actor, k.step(t), k.region, group2, [("tcp", 3389, 3389, "::/0")], ip=k.ip))
    k.expect("sg-open", resource=group)
    k.expect("sg-open", resource=group2)
    k.expect("cis-sg", source_ip=k.ip)


@attack("iam-user-after-hours", "An IAM user created outside business hours", when=outside_business_hours)
def iam_user_after_hours(k: Kit, t: float) -> None:
    k.emit(k.shapes.create_user(k.actor, t, "svc-backup-sync", ip=k.ip))
    # business hours configured round the clock, all week: there is no "after hours", and no finding
    k.expect("user-after-hours", present=k.placed, resource="svc-backup-sync")


# -- CIS monitoring controls ---------------------------------------------------------------------------


@attack("root-usage", "The root user signs in and lists IAM users")
def root_usage(k: Kit, t: float) -> None:
    root = Actor(
        "attacker:root",
        "root",
        k.account,
        root_identity(k.account.id),
        (k.ip,),
        ("AWS Internal",),
        extra={"browser": ATTACKER_AGENTS[0]},
    )
    k.emit(
        k.shapes.console_login(
            root,
            t,
            success=True,
            mfa=True,
            ip=k.ip,
            agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        )
    )
    k.api(
        k.step(t),
        "iam.amazonaws.com",
        "ListUsers",
        {"maxItems": 100},
        read_only=True,
        region="us-east-1",
        actor=root,
        agent="AWS Internal",
    )
    k.expect("cis-root", source_ip=k.ip)


@attack("kms-key-deletion", "A customer managed key disabled and scheduled for deletion")
def kms_key_deletion(k: Kit, t: float) -> None:
    key = f"arn:aws:kms:{k.region}:{k.account.id}:key/{k.ids.uuid()}"
    res = [{"accountId": k.account.id, "type": "AWS::KMS::Key", "ARN": key}]
    k.api(t, "kms.amazonaws.com", "DisableKey", {"keyId": key}, None, resources=res)
    k.api(
        k.step(t),
        "kms.amazonaws.com",
        "ScheduleKeyDeletion",
        {"keyId": key, "pendingWindowInDays": 7},
        {
            "keyId": key,
            "deletionDate": java_date(t + 7 * 86400),
            "keyState": "PendingDeletion",
            "pendingWindowInDays": 7,
        },
        resources=res,
    )
    k.expect("cis-cmk", source_ip=k.ip)


@attack("s3-bucket-policy", "A bucket policy granting everyone read access")
def s3_bucket_policy(k: Kit, t: float) -> None:
    bucket = k.account.buckets[1]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "public",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    k.api(
        t,
        "s3.amazonaws.com",
        "PutBucketPolicy",
        {"bucketPolicy": policy, "bucketName": bucket, "Host": f"{bucket}.s3.{k.region}.amazonaws.com", "policy": ""},
        None,
        resources=[{"accountId": k.account.id, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
        host=f"{bucket}.s3.{k.region}.amazonaws.com",
        additional={
            "SignatureVersion": "SigV4",
            "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": 0,
            "AuthenticationMethod": "AuthHeader",
            "bytesTransferredOut": 0,
        },
    )
    k.expect("cis-s3-policy", source_ip=k.ip)


@attack("config-recorder-stopped", "AWS Config recording stopped and its delivery channel deleted")
def config_stopped(k: Kit, t: float) -> None:
    k.api(t, "config.amazonaws.com", "StopConfigurationRecorder", {"configurationRecorderName": "default"})
    k.api(k.step(t), "config.amazonaws.com", "DeleteDeliveryChannel", {"deliveryChannelName": "default"})
    k.expect("cis-config", source_ip=k.ip)
    k.expect("config-stopped", source_ip=k.ip)


@attack("network-changes", "A new VPC with an internet gateway, an open route and an allow-all network ACL entry")
def network_changes(k: Kit, t: float) -> None:
    vpc, igw, rtb, acl = (k.ids.resource(p) for p in ("vpc", "igw", "rtb", "acl"))
    k.api(
        t,
        "ec2.amazonaws.com",
        "CreateVpc",
        {"cidrBlock": "10.99.0.0/16", "instanceTenancy": "default"},
        {
            "requestId": "",
            "vpc": {
                "vpcId": vpc,
                "state": "pending",
                "cidrBlock": "10.99.0.0/16",
                "ownerId": k.account.id,
                "instanceTenancy": "default",
                "isDefault": False,
            },
        },
    )
    t = k.step(t)
    k.api(
        t,
        "ec2.amazonaws.com",
        "CreateInternetGateway",
        {},
        {
            "requestId": "",
            "internetGateway": {"internetGatewayId": igw, "ownerId": k.account.id, "attachmentSet": {}, "tagSet": {}},
        },
    )
    t = k.step(t)
    k.api(
        t,
        "ec2.amazonaws.com",
        "AttachInternetGateway",
        {"internetGatewayId": igw, "vpcId": vpc},
        {"requestId": "", "_return": True},
    )
    t = k.step(t)
    k.api(
        t,
        "ec2.amazonaws.com",
        "CreateRoute",
        {"routeTableId": rtb, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": igw},
        {"requestId": "", "_return": True},
    )
    t = k.step(t)
    k.api(
        t,
        "ec2.amazonaws.com",
        "CreateNetworkAclEntry",
        {
            "networkAclId": acl,
            "ruleNumber": 90,
            "egress": False,
            "ruleAction": "allow",
            "icmpTypeCode": {},
            "portRange": {"from": 0, "to": 65535},
            "aclProtocol": "-1",
            "cidrBlock": "0.0.0.0/0",
        },
        {"requestId": "", "_return": True},
    )
    for what in ("cis-vpc", "cis-gateway", "cis-route", "cis-nacl"):
        k.expect(what)


# -- attack techniques (the behaviours of the Stratus Red Team techniques, written afresh) -------------


@attack("cloudtrail-stop", "A trail stops logging")
def cloudtrail_stop(k: Kit, t: float) -> None:
    trail = f"arn:aws:cloudtrail:{k.region}:{k.account.id}:trail/organization-trail"
    k.api(t, "cloudtrail.amazonaws.com", "StopLogging", {"name": trail})
    k.expect("cloudtrail-stop")
    k.expect("cis-cloudtrail", source_ip=k.ip)


@attack("cloudtrail-delete", "A trail is deleted")
def cloudtrail_delete(k: Kit, t: float) -> None:
    k.api(t, "cloudtrail.amazonaws.com", "DeleteTrail", {"name": "audit-trail"})
    k.expect("cloudtrail-delete")
    k.expect("cis-cloudtrail", source_ip=k.ip)


@attack("cloudtrail-event-selectors", "A trail's event selectors drop management events")
def cloudtrail_selectors(k: Kit, t: float) -> None:
    selectors = [
        {
            "readWriteType": "ReadOnly",
            "includeManagementEvents": False,
            "dataResources": [],
            "excludeManagementEventSources": [],
        }
    ]
    k.api(
        t,
        "cloudtrail.amazonaws.com",
        "PutEventSelectors",
        {"trailName": "audit-trail", "eventSelectors": selectors},
        {"trailARN": f"arn:aws:cloudtrail:{k.region}:{k.account.id}:trail/audit-trail", "eventSelectors": selectors},
    )
    k.expect("cloudtrail-selectors")  # not in the CIS 4.5 filter (Create/Update/DeleteTrail, Start/StopLogging)


@attack("vpc-flow-logs-delete", "VPC flow logs deleted")
def flow_logs_delete(k: Kit, t: float) -> None:
    fl = k.ids.resource("fl")
    ev = k.api(
        t, "ec2.amazonaws.com", "DeleteFlowLogs", {"DeleteFlowLogsRequest": {"FlowLogId": {"content": fl, "tag": 1}}}
    )
    ev["responseElements"] = {
        "DeleteFlowLogsResponse": {
            "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/",
            "requestId": ev["requestID"],
            "unsuccessful": "",
        }
    }
    k.expect("flow-logs-delete")


@attack("dns-query-logs-delete", "Route 53 Resolver query logging configuration deleted")
def dns_logs_delete(k: Kit, t: float) -> None:
    cfg = f"rqlc-{k.ids.hex(15)}"
    k.api(
        t,
        "route53resolver.amazonaws.com",
        "DeleteResolverQueryLogConfig",
        {"resolverQueryLogConfigId": cfg},
        {
            "resolverQueryLogConfig": {
                "id": cfg,
                "ownerId": k.account.id,
                "status": "DELETING",
                "shareStatus": "NOT_SHARED",
                "associationCount": 0,
                "name": "vpc-dns-logs",
            }
        },
    )
    k.expect("dns-logs-delete")


@attack("organizations-leave", "An account tries to leave the organization")
def organizations_leave(k: Kit, t: float) -> None:
    k.api(t, "organizations.amazonaws.com", "LeaveOrganization", None, None, region="us-east-1")
    k.expect("org-leave")
    k.expect("cis-organizations", source_ip=k.ip)


@attack("ec2-share-snapshot", "An EBS snapshot shared with an account outside the organization")
def share_snapshot(k: Kit, t: float) -> None:
    snap = k.ids.resource("snap")
    ev = k.api(
        t,
        "ec2.amazonaws.com",
        "ModifySnapshotAttribute",
        {
            "snapshotId": snap,
            "createVolumePermission": {"add": {"items": [{"userId": EXTERNAL_ACCOUNT}]}},
            "attributeType": "CREATE_VOLUME_PERMISSION",
        },
    )
    ev["responseElements"] = {"requestId": ev["requestID"], "_return": True}
    k.expect("snapshot-share", resource=snap)


@attack("ec2-share-ami", "An AMI shared with an account outside the organization")
def share_ami(k: Kit, t: float) -> None:
    ami = k.ids.resource("ami")
    ev = k.api(
        t,
        "ec2.amazonaws.com",
        "ModifyImageAttribute",
        {
            "imageId": ami,
            "launchPermission": {"add": {"items": [{"userId": EXTERNAL_ACCOUNT}]}},
            "attributeType": "launchPermission",
        },
    )
    ev["responseElements"] = {"requestId": ev["requestID"], "_return": True}
    k.expect("ami-share", resource=ami)


@attack("rds-share-snapshot", "An RDS snapshot shared with an account outside the organization")
def share_rds(k: Kit, t: float) -> None:
    k.api(
        t,
        "rds.amazonaws.com",
        "ModifyDBSnapshotAttribute",
        {"dBSnapshotIdentifier": "orders-db-final", "attributeName": "restore", "valuesToAdd": [EXTERNAL_ACCOUNT]},
        {
            "dBSnapshotIdentifier": "orders-db-final",
            "dBSnapshotAttributes": [{"attributeName": "restore", "attributeValues": [EXTERNAL_ACCOUNT]}],
        },
    )
    k.expect("rds-share")


def _trust(principal: dict[str, str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
        },
        indent=2,
    )


@attack("iam-backdoor-role", "A role's trust policy opened to an outside account")
def backdoor_role(k: Kit, t: float) -> None:
    doc = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{EXTERNAL_ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                },
            ],
        },
        indent=2,
    )
    k.api(
        t,
        "iam.amazonaws.com",
        "UpdateAssumeRolePolicy",
        {"roleName": "app-instance-role", "policyDocument": doc},
        region="us-east-1",
    )
    k.expect("role-backdoor", resource="app-instance-role")  # a trust policy: not in the CIS 4.4 filter


@attack("iam-backdoor-user", "An access key created for another user")
def backdoor_user(k: Kit, t: float) -> None:
    k.emit(k.shapes.create_access_key(k.actor, t, "billing-reports", ip=k.ip))
    k.expect("user-backdoor-key", resource="billing-reports")


@attack("iam-create-admin-user", "A new user with AdministratorAccess and an access key")
def create_admin_user(k: Kit, t: float) -> None:
    user = "support-ops"
    k.emit(k.shapes.create_user(k.actor, t, user, ip=k.ip))
    t = k.step(t)
    k.emit(k.shapes.attach_user_policy(k.actor, t, user, ADMIN_POLICY, ip=k.ip))
    k.emit(k.shapes.create_access_key(k.actor, k.step(t), user, ip=k.ip))
    k.expect("admin-policy", resource=user)
    k.expect("cis-iam-policy", source_ip=k.ip)


@attack("iam-create-backdoor-role", "A new role trusted by an outside account, with AdministratorAccess")
def create_backdoor_role(k: Kit, t: float) -> None:
    role = "ops-break-glass"
    doc = _trust({"AWS": f"arn:aws:iam::{EXTERNAL_ACCOUNT}:root"})
    k.api(
        t,
        "iam.amazonaws.com",
        "CreateRole",
        {"roleName": role, "assumeRolePolicyDocument": doc},
        {
            "role": {
                "path": "/",
                "roleName": role,
                "roleId": k.ids.key_id("AROA"),
                "arn": f"arn:aws:iam::{k.account.id}:role/{role}",
                "createDate": java_date(t),
                "assumeRolePolicyDocument": doc,
            }
        },
        region="us-east-1",
    )
    k.api(
        k.step(t),
        "iam.amazonaws.com",
        "AttachRolePolicy",
        {"roleName": role, "policyArn": ADMIN_POLICY},
        region="us-east-1",
    )
    k.expect("backdoor-role", resource=role)
    k.expect("admin-policy", resource=role)
    k.expect("cis-iam-policy", source_ip=k.ip)


@attack("iam-login-profile", "A console password given to another user, who never gets an MFA device")
def login_profile(k: Kit, t: float) -> None:
    k.emit(k.shapes.create_login_profile(k.actor, t, "svc-reporting", ip=k.ip))
    k.expect("login-profile", resource="svc-reporting")
    k.expect("profile-no-mfa", stateful=True, resource="svc-reporting")


@attack("iam-update-login-profile", "Another user's console password changed")
def update_login_profile(k: Kit, t: float) -> None:
    k.api(t, "iam.amazonaws.com", "UpdateLoginProfile", {"userName": "dana.kowalski"}, region="us-east-1")
    k.expect("login-profile-update", resource="dana.kowalski")


@attack("lambda-backdoor-function", "A Lambda function made invokable by anyone")
def lambda_public(k: Kit, t: float) -> None:
    fn = "orders-api"
    arn = f"arn:aws:lambda:{k.region}:{k.account.id}:function:{fn}"
    stmt = {
        "Sid": "public-invoke",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "lambda:InvokeFunction",
        "Resource": arn,
    }
    k.api(
        t,
        "lambda.amazonaws.com",
        "AddPermission20150331v2",
        {"functionName": fn, "statementId": "public-invoke", "action": "lambda:InvokeFunction", "principal": "*"},
        {"statement": json.dumps(stmt, separators=(",", ":"))},
    )
    k.expect("lambda-public", resource=fn)


@attack("lambda-layer-extension", "A layer from an outside account added to a Lambda function")
def lambda_layer(k: Kit, t: float) -> None:
    arn = f"arn:aws:lambda:{k.region}:{k.account.id}:function:invoice-worker"
    layer = f"arn:aws:lambda:{k.region}:{EXTERNAL_ACCOUNT}:layer:telemetry-extension:3"
    k.api(
        t,
        "lambda.amazonaws.com",
        "UpdateFunctionConfiguration20150331v2",
        {"functionName": arn, "layers": [layer], "environment": {}},
        {
            "functionName": "invoice-worker",
            "functionArn": arn,
            "runtime": "python3.12",
            "layers": [{"arn": layer, "codeSize": 1184}],
            "lastUpdateStatus": "InProgress",
        },
    )
    k.expect("lambda-layer", resource="invoice-worker")


@attack("lambda-overwrite-code", "A Lambda function's code replaced")
def lambda_code(k: Kit, t: float) -> None:
    fn = "thumbnailer"
    arn = f"arn:aws:lambda:{k.region}:{k.account.id}:function:{fn}"
    k.api(
        t,
        "lambda.amazonaws.com",
        "UpdateFunctionCode20150331v2",
        {
            "functionName": arn,
            "publish": True,
            "dryRun": False,
            "fullyQualifiedArn": {
                "arnPrefix": {"partition": "aws", "region": k.region, "account": k.account.id},
                "relativeId": {"functionName": fn},
                "functionQualifier": {},
            },
        },
        {
            "functionName": fn,
            "functionArn": f"{arn}:7",
            "runtime": "python3.12",
            "codeSize": 2211,
            "codeSha256": "kq8vCw0d4V1mQ2l0p3YQ6i0v5hmb4Zf2sEwq4bXKc1o=",
            "lastUpdateStatus": "InProgress",
        },
    )
    k.expect("lambda-code", resource=fn)


@attack("rolesanywhere-trust-anchor", "An IAM Roles Anywhere trust anchor and profile created")
def rolesanywhere(k: Kit, t: float) -> None:
    anchor = k.ids.uuid()
    k.api(
        t,
        "rolesanywhere.amazonaws.com",
        "CreateTrustAnchor",
        {
            "name": "edge-devices",
            "enabled": True,
            "source": {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": CERTIFICATE}},
        },
        {
            "trustAnchor": {
                "trustAnchorId": anchor,
                "name": "edge-devices",
                "enabled": True,
                "trustAnchorArn": f"arn:aws:rolesanywhere:{k.region}:{k.account.id}:trust-anchor/{anchor}",
            }
        },
    )
    k.api(
        k.step(t),
        "rolesanywhere.amazonaws.com",
        "CreateProfile",
        {
            "name": "edge-profile",
            "enabled": True,
            "durationSeconds": 3600,
            "roleArns": [f"arn:aws:iam::{k.account.id}:role/app-instance-role"],
        },
        {"profile": {"name": "edge-profile", "enabled": True, "createdBy": _arn(k)}},
    )
    k.expect("rolesanywhere")


@attack("sts-federation-token", "A federation token with an allow-everything policy")
def federation_token(k: Kit, t: float) -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    k.api(
        t,
        "sts.amazonaws.com",
        "GetFederationToken",
        {"name": "maint", "policy": policy, "durationSeconds": 43200},
        {
            "credentials": {
                "accessKeyId": k.ids.key_id("ASIA"),
                "sessionToken": k.ids.alnum(64),
                "expiration": java_date(t + 43200),
            },
            "federatedUser": {
                "federatedUserId": f"{k.account.id}:maint",
                "arn": f"arn:aws:sts::{k.account.id}:federated-user/maint",
            },
            "packedPolicySize": 6,
        },
    )
    k.expect("federation-token")


@attack("ec2-get-password-data", "Windows administrator passwords requested for many instances")
def password_data(k: Kit, t: float) -> None:
    for _ in range(12):
        iid = k.ids.resource("i")
        k.api(
            t,
            "ec2.amazonaws.com",
            "GetPasswordData",
            {"instanceId": iid},
            read_only=True,
            error=k.shapes.ec2_denied(
                k.actor, "ec2:GetPasswordData", f"arn:aws:ec2:{k.region}:{k.account.id}:instance/{iid}"
            ),
        )
        t = k.step(t, 0.2, 2)
    k.expect("password-data")


@attack("secretsmanager-retrieve-secrets", "Many secrets listed and read in a minute")
def secrets(k: Kit, t: float) -> None:
    k.api(t, "secretsmanager.amazonaws.com", "ListSecrets", {"maxResults": 100}, read_only=True)
    for n in range(15):
        t = k.step(t, 0.5, 3)
        arn = f"arn:aws:secretsmanager:{k.region}:{k.account.id}:secret:app/{n:02d}/db-credentials-{k.ids.alnum(6)}"
        k.api(t, "secretsmanager.amazonaws.com", "GetSecretValue", {"secretId": arn}, read_only=True)
    k.expect("secrets")


@attack("secretsmanager-batch-retrieve-secrets", "Secrets read in bulk with BatchGetSecretValue")
def secrets_batch(k: Kit, t: float) -> None:
    k.api(
        t,
        "secretsmanager.amazonaws.com",
        "BatchGetSecretValue",
        {"filters": [{"key": "name", "values": ["prod/"]}]},
        read_only=True,
    )
    k.expect("secrets-batch")


@attack("ssm-retrieve-securestring-parameters", "SecureString parameters listed and decrypted in bulk")
def ssm_params(k: Kit, t: float) -> None:
    k.api(t, "ssm.amazonaws.com", "DescribeParameters", {"maxResults": 50}, read_only=True)
    names = [f"/prod/payments/secret-{n}" for n in range(10)]
    k.api(
        k.step(t),
        "ssm.amazonaws.com",
        "GetParameters",
        {"names": names, "withDecryption": True},
        read_only=True,
        resources=[
            {"ARN": f"arn:aws:ssm:{k.region}:{k.account.id}:parameter{n}", "accountId": k.account.id} for n in names
        ],
    )
    k.expect("ssm-params")


@attack("ec2-download-user-data", "User data read from many instances")
def user_data_read(k: Kit, t: float) -> None:
    for _ in range(10):
        k.api(
            t,
            "ec2.amazonaws.com",
            "DescribeInstanceAttribute",
            {"instanceId": k.ids.resource("i"), "attribute": "userData"},
            read_only=True,
        )
        t = k.step(t, 0.3, 2)
    k.expect("user-data-read")


@attack("ec2-launch-unusual-instances", "GPU instances launched with a compromised key")
def unusual_instances(k: Kit, t: float) -> None:
    ids = [k.ids.resource("i") for _ in range(4)]
    k.emit(k.shapes.run_instances(k.actor, t, k.region, ids, tags=None, instance_type="p4d.24xlarge", ip=k.ip))
    k.expect("unusual-instances")


@attack("ec2-user-data", "An instance stopped, its user data replaced, and started again")
def user_data_modified(k: Kit, t: float) -> None:
    iid = k.ids.resource("i")
    items = {"items": [{"instanceId": iid}]}
    k.api(
        t,
        "ec2.amazonaws.com",
        "StopInstances",
        {"instancesSet": items, "force": True},
        {
            "instancesSet": {
                "items": [
                    {
                        "instanceId": iid,
                        "currentState": {"code": 64, "name": "stopping"},
                        "previousState": {"code": 16, "name": "running"},
                    }
                ]
            }
        },
    )
    t = k.step(t, 30, 60)
    ev = k.api(
        t, "ec2.amazonaws.com", "ModifyInstanceAttribute", {"instanceId": iid, "userData": "<sensitiveDataRemoved>"}
    )
    ev["responseElements"] = {"requestId": ev["requestID"], "_return": True}
    k.api(
        k.step(t),
        "ec2.amazonaws.com",
        "StartInstances",
        {"instancesSet": items},
        {
            "instancesSet": {
                "items": [
                    {
                        "instanceId": iid,
                        "currentState": {"code": 0, "name": "pending"},
                        "previousState": {"code": 80, "name": "stopped"},
                    }
                ]
            }
        },
    )
    k.expect("user-data-modified", resource=iid)


@attack("ssm-send-command", "A shell script pushed to instances with SSM Run Command")
def ssm_command(k: Kit, t: float) -> None:
    ids = [k.ids.resource("i") for _ in range(3)]
    k.api(
        t,
        "ssm.amazonaws.com",
        "DescribeInstanceInformation",
        {"filters": [{"key": "InstanceIds", "values": ids}]},
        read_only=True,
    )
    cid = k.ids.uuid()
    k.api(
        k.step(t),
        "ssm.amazonaws.com",
        "SendCommand",
        {
            "instanceIds": ids,
            "documentName": "AWS-RunShellScript",
            "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
            "interactive": False,
        },
        {
            "command": {
                "commandId": cid,
                "documentName": "AWS-RunShellScript",
                "instanceIds": ids,
                "status": "Pending",
                "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
                "targetCount": len(ids),
            }
        },
    )
    k.expect("ssm-command")


@attack("ssm-start-session", "Interactive SSM sessions opened on instances")
def ssm_session(k: Kit, t: float) -> None:
    for _ in range(2):
        iid = k.ids.resource("i")
        sid = f"{k.actor.user_name}-{k.ids.alnum(17).lower()}"
        k.api(
            t,
            "ssm.amazonaws.com",
            "StartSession",
            {"target": iid},
            {
                "sessionId": sid,
                "tokenValue": "Value hidden due to security reasons.",
                "streamUrl": f"wss://ssmmessages.{k.region}.amazonaws.com/v1/data-channel/{sid}?role=publish_subscribe",
            },
        )
        t = k.step(t)
    k.expect("ssm-session")


@attack("bedrock-invoke-model", "Foundation models enabled and invoked with a stolen key")
def bedrock(k: Kit, t: float) -> None:
    model = "anthropic.claude-3-sonnet-20240229-v1:0"
    k.api(t, "bedrock.amazonaws.com", "GetFoundationModelAvailability", {"modelId": model}, read_only=True)
    t = k.step(t)
    k.api(t, "bedrock.amazonaws.com", "PutUseCaseForModelAccess", {"formData": "HIDDEN_DUE_TO_SECURITY_REASONS"})
    t = k.step(t)
    k.api(
        t,
        "bedrock.amazonaws.com",
        "CreateFoundationModelAgreement",
        {"modelId": model, "offerToken": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        {"modelId": model},
    )
    t = k.step(t)
    k.api(t, "bedrock.amazonaws.com", "PutFoundationModelEntitlement", {"modelId": model}, {"status": "SUCCESS"})
    for _ in range(5):
        t = k.step(t, 1, 4)
        k.api(
            t,
            "bedrock.amazonaws.com",
            "InvokeModel",
            {"modelId": model},
            read_only=True,
            additional={"inputTokens": 512, "outputTokens": 1800},
        )
    k.expect("bedrock")


@attack("ec2-instance-connect", "SSH public keys pushed to instances with EC2 Instance Connect")
def instance_connect(k: Kit, t: float) -> None:
    for _ in range(3):
        k.api(
            t,
            "ec2-instance-connect.amazonaws.com",
            "SendSSHPublicKey",
            {
                "instanceId": k.ids.resource("i"),
                "instanceOSUser": "ec2-user",
                "sSHPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK7p0attackerkeymaterialXXXXXXXXXXXXXXXX",
            },
            {"requestId": k.ids.uuid(), "success": True},
        )
        t = k.step(t)
    k.expect("instance-connect")


@attack("ec2-serial-console", "Serial console access enabled and an SSH key pushed to it")
def serial_console(k: Kit, t: float) -> None:
    ev = k.api(t, "ec2.amazonaws.com", "EnableSerialConsoleAccess", {"EnableSerialConsoleAccessRequest": ""})
    ev["responseElements"] = {
        "EnableSerialConsoleAccessResponse": {
            "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/",
            "requestId": ev["requestID"],
            "serialConsoleAccessEnabled": True,
        }
    }
    k.api(
        k.step(t),
        "ec2-instance-connect.amazonaws.com",
        "SendSerialConsoleSSHPublicKey",
        {
            "instanceId": k.ids.resource("i"),
            "serialPort": 0,
            "monitorMode": False,
            "sSHPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK7p0attackerkeymaterialXXXXXXXXXXXXXXXX",
        },
        {"requestId": k.ids.uuid(), "success": True},
    )
    k.expect("serial-console")


@attack("ec2-steal-instance-credentials", "An instance role's credentials used from outside AWS")
def instance_credentials(k: Kit, t: float) -> None:
    instance = next(a for a in k.org.by_kind["ec2"] if a.account is k.account)
    k.api(t, "sts.amazonaws.com", "GetCallerIdentity", None, read_only=True, actor=instance)
    k.api(
        k.step(t),
        "ec2.amazonaws.com",
        "DescribeInstances",
        {"instancesSet": {}, "filterSet": {}},
        read_only=True,
        actor=instance,
    )
    k.expect("instance-creds", principal=str(instance.identity["arn"]))


# -- stateful ------------------------------------------------------------------------------------------


@attack("ec2-untagged-instance", "An instance launched without the required tags, which never arrive", stateful=True)
def untagged_instance(k: Kit, t: float) -> None:
    iid = k.ids.resource("i")
    k.emit(k.shapes.run_instances(k.actor, t, k.region, [iid], tags={"Name": "tmp-worker"}, ip=k.ip))
    k.expect("untagged", stateful=True, resource=iid)


@attack("ec2-tag-removed", "A required tag deleted from a running instance", stateful=True)
def tag_removed(k: Kit, t: float) -> None:
    terraform = k.org.actor("terraform", k.account)
    iid = k.ids.resource("i")
    k.emit(k.shapes.run_instances(terraform, t, k.region, [iid], tags={"Name": "batch-01", **REQUIRED_TAGS}))
    k.emit(k.shapes.delete_tags(k.actor, t + k.rng.uniform(120, 300), k.region, [iid], ["Owner"], ip=k.ip))
    k.expect("untagged", stateful=True, resource=iid)


@attack(
    "ec2-late-tags",
    "Instances tagged 30-90 s after launch, and one terminated before its deadline: benign",
    stateful=True,
)
def late_tags(k: Kit, t: float) -> None:
    asg = k.org.actor("terraform", k.account)
    for _ in range(2):
        iid = k.ids.resource("i")
        k.emit(k.shapes.run_instances(asg, t, k.region, [iid], tags=None))
        k.emit(
            k.shapes.create_tags(asg, t + k.rng.uniform(30, 90), k.region, [iid], {"Name": "emr-core", **REQUIRED_TAGS})
        )
        k.expect("untagged", stateful=True, present=False, resource=iid)
        t = k.step(t, 5, 20)
    iid = k.ids.resource("i")
    k.emit(k.shapes.run_instances(asg, t, k.region, [iid], tags=None))
    k.emit(k.shapes.terminate_instances(asg, t + k.rng.uniform(60, 120), k.region, [iid]))
    k.expect("untagged", stateful=True, present=False, resource=iid)


def _own(k: Kit, kind: str) -> Actor:
    """An actor of `kind` in the target account, drawn from the attack's own random stream."""
    return k.rng.choice([a for a in k.org.by_kind[kind] if a.account is k.account] or k.org.by_kind[kind])


def _tag_call(k: Kit, actor: Actor, t: float, made: Call, **kw: Any) -> None:
    k.emit(tag_record(k.shapes, actor, t, k.region, made, **kw))


@attack(
    "untagged-resources",
    "An S3 bucket made in the console and an RDS database made by CI without the "
    "required tags, never tagged; a required tag removed from a Lambda function",
    stateful=True,
    apart=True,
)
def untagged_resources(k: Kit, t: float) -> None:
    acct, region = k.account.id, k.region
    person = next((a for a in k.org.sso if a.account is k.account), None) or _own(k, "terraform")
    bucket = resource_name("s3-bucket", k.ids, acct)
    _tag_call(
        k,
        person,
        t,
        SAMPLES["s3-bucket"].create(bucket, {"Name": "quarterly-exports"}, acct, region),
        ip="AWS Internal",
        agent="AWS Internal",
    )
    k.events[-1]["sessionCredentialFromConsole"] = "true"
    k.expect("untagged-resource", stateful=True, resource=bucket)
    ci = _own(k, "ci")
    db = resource_name("rds-instance", k.ids, acct)
    _tag_call(k, ci, k.step(t, 20, 60), SAMPLES["rds-instance"].create(db, {"Owner": "payments"}, acct, region))
    k.expect("untagged-resource", stateful=True, resource=db)
    terraform = _own(k, "terraform")
    fn = resource_name("lambda-function", k.ids, acct)
    made = k.step(t, 60, 120)
    _tag_call(k, terraform, made, SAMPLES["lambda-function"].create(fn, REQUIRED_TAGS, acct, region))
    _tag_call(
        k, person, made + k.rng.uniform(120, 300), SAMPLES["lambda-function"].untag(fn, ["CostCenter"], acct, region)
    )
    k.expect("untagged-resource", stateful=True, resource=fn)


@attack(
    "ec2-tagged-after-alert",
    "An instance launched without the required tags, alerted, then tagged by its owner: the finding resolves",
    stateful=True,
    apart=True,
)
def tagged_after_alert(k: Kit, t: float) -> None:
    owner = _own(k, "terraform")
    iid = k.ids.resource("i")
    k.emit(k.shapes.run_instances(k.actor, t, k.region, [iid], tags={"Name": "scratch-box"}, ip=k.ip))
    grace = parse_duration(k.config.section("tags").get("grace", "15m"))
    k.emit(k.shapes.create_tags(owner, t + grace + k.rng.uniform(60, 240), k.region, [iid], REQUIRED_TAGS))
    k.expect("untagged", stateful=True, resource=iid)
    k.expect("untagged", stateful=True, resource=iid, status=RESOLVED)


@attack(
    "late-resource-tags",
    "Resources tagged at creation, tagged 30-90 s later (S3, DynamoDB), or deleted "
    "before the grace ends (Lambda): benign",
    stateful=True,
    apart=True,
)
def late_resource_tags(k: Kit, t: float) -> None:
    acct, region = k.account.id, k.region
    terraform = _own(k, "terraform")
    queue = resource_name("sqs-queue", k.ids, acct)
    _tag_call(k, terraform, t, SAMPLES["sqs-queue"].create(queue, REQUIRED_TAGS, acct, region))
    k.expect("untagged-resource", stateful=True, present=False, resource=queue)
    for type_name in ("s3-bucket", "dynamodb-table"):
        t = k.step(t, 5, 20)
        rid = resource_name(type_name, k.ids, acct)
        sample = SAMPLES[type_name]
        _tag_call(k, terraform, t, sample.create(rid, None, acct, region))
        _tag_call(k, terraform, t + k.rng.uniform(30, 90), sample.tag(rid, REQUIRED_TAGS, acct, region))
        k.expect("untagged-resource", stateful=True, present=False, resource=rid)
    t = k.step(t, 5, 20)
    fn = resource_name("lambda-function", k.ids, acct)
    _tag_call(k, terraform, t, SAMPLES["lambda-function"].create(fn, None, acct, region))
    _tag_call(k, terraform, t + k.rng.uniform(60, 180), SAMPLES["lambda-function"].delete(fn, acct, region))
    k.expect("untagged-resource", stateful=True, present=False, resource=fn)


@attack(
    "console-brute-force",
    "Dozens of failed console sign-ins for one user from one address, then quiet: the finding resolves",
    stateful=True,
)
def brute_force(k: Kit, t: float) -> None:
    target = k.org.people[0]
    agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0"
    for _ in range(30):
        k.emit(k.shapes.console_login(target, t, success=False, mfa=False, ip=k.ip, agent=agent))
        t = k.step(t, 1, 6)
    k.account = target.account
    k.expect("brute-force", stateful=True, source_ip=k.ip)
    # The burst stops: after a quiet window (10 min of event time) the finding resolves, with the same id.
    k.expect("brute-force", stateful=True, source_ip=k.ip, status=RESOLVED)
    k.expect("cis-console-failures", source_ip=k.ip)


@attack("console-password-spraying", "Failed console sign-ins for many users from one address", stateful=True)
def spraying(k: Kit, t: float) -> None:
    target = k.org.people[0]
    agent = "python-requests/2.31.0"
    for person in PEOPLE:
        k.emit(k.shapes.console_login(target, t, success=False, mfa=False, ip=k.ip, agent=agent, user_name=person))
        t = k.step(t, 2, 10)
    k.account = target.account
    k.expect("spraying", stateful=True, source_ip=k.ip)


@attack("access-denied-recon", "A burst of denied list and describe calls across services", stateful=True)
def recon(k: Kit, t: float) -> None:
    calls = (
        ("iam.amazonaws.com", "ListUsers"),
        ("iam.amazonaws.com", "ListRoles"),
        ("iam.amazonaws.com", "ListPolicies"),
        ("iam.amazonaws.com", "GetAccountAuthorizationDetails"),
        ("s3.amazonaws.com", "ListBuckets"),
        ("secretsmanager.amazonaws.com", "ListSecrets"),
        ("ssm.amazonaws.com", "DescribeParameters"),
        ("lambda.amazonaws.com", "ListFunctions20150331"),
        ("dynamodb.amazonaws.com", "ListTables"),
        ("rds.amazonaws.com", "DescribeDBInstances"),
        ("kms.amazonaws.com", "ListKeys"),
        ("cloudtrail.amazonaws.com", "DescribeTrails"),
        ("guardduty.amazonaws.com", "ListDetectors"),
        ("organizations.amazonaws.com", "DescribeOrganization"),
    )
    lam = next(a for a in k.org.by_kind["lambda"] if a.account is k.account)
    for source, name in calls:
        prefix = source.split(".", 1)[0]
        k.api(
            t,
            source,
            name,
            None,
            read_only=True,
            actor=lam,
            agent=ATTACKER_AGENTS[1],
            region="us-east-1" if prefix in ("iam", "organizations") else k.region,
            error=k.shapes.denied(lam, f"{prefix}:{name.rstrip('0123456789')}"),
        )
        t = k.step(t, 0.5, 4)
    k.expect("recon", stateful=True, principal=str(lam.identity["arn"]))
    k.expect("cis-unauthorized", source_ip=k.ip)


@attack(
    "access-key-then-admin", "An access key created for a user, then AdministratorAccess attached to it", stateful=True
)
def key_then_admin(k: Kit, t: float) -> None:
    user = "etl-runner"
    k.emit(k.shapes.create_access_key(k.actor, t, user, ip=k.ip))
    k.emit(k.shapes.attach_user_policy(k.actor, t + k.rng.uniform(20, 120), user, ADMIN_POLICY, ip=k.ip))
    k.expect("key-then-admin", stateful=True, resource=user)
    k.expect("admin-policy", resource=user)


@attack("new-region", "Stolen credentials used in a region the account never uses", stateful=True)
def new_region(k: Kit, t: float) -> None:
    region = k.rng.choice(UNUSED_REGIONS)
    k.api(
        t,
        "ec2.amazonaws.com",
        "DescribeInstances",
        {"instancesSet": {}, "filterSet": {}},
        read_only=True,
        region=region,
    )
    k.api(
        k.step(t),
        "ec2.amazonaws.com",
        "DescribeKeyPairs",
        {"keySet": {}, "filterSet": {}},
        read_only=True,
        region=region,
    )
    k.expect("new-region", stateful=True, region=region)


@attack("new-source-ip", "A user who always signs in from the office signs in from a new address", stateful=True)
def new_source_ip(k: Kit, t: float) -> None:
    person = k.org.people[1]
    office = person.ips[0]
    # the history: the usual sign-ins, early in the scenario
    for h in (k.start + 60, k.start + 300):
        k.emit(k.shapes.console_login(person, h, success=True, mfa=True, ip=office))
    k.emit(k.shapes.console_login(person, t, success=True, mfa=True, ip=k.ip))
    k.account = person.account
    k.expect("new-ip", stateful=True, source_ip=k.ip)
