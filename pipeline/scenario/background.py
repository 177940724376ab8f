"""Benign background activity of a working organization.

Mostly reads (describes, gets, S3 object reads), role assumptions by services, and some writes
by automation: instances launched fully tagged or tagged 30-90 s later, scale-in terminations,
security group rules between internal networks, IAM role changes by Terraform. People sign in
with MFA (IAM users) or through IAM Identity Center. A few calls are denied, spread over many
principals. Nothing here is an attack; the only rules it may trigger are CIS change-monitoring
controls (security group, IAM policy, unauthorized call and console failure metrics), which
fire on legitimate changes by design.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from pipeline.scenario.attacks import REQUIRED_TAGS
from pipeline.scenario.ids import Ids
from pipeline.scenario.org import Actor, Organization, root_identity
from pipeline.scenario.shapes import Shapes

Record = dict[str, Any]

DESCRIBES = (
    "DescribeInstances",
    "DescribeSecurityGroups",
    "DescribeVolumes",
    "DescribeSubnets",
    "DescribeVpcs",
    "DescribeNetworkInterfaces",
    "DescribeImages",
    "DescribeTags",
    "DescribeRegions",
    "DescribeInstanceStatus",
)
IAM_READS = (
    "GetRole",
    "ListRoles",
    "ListAttachedRolePolicies",
    "GetPolicy",
    "GetAccountSummary",
    "ListUsers",
    "GetUser",
    "ListPolicies",
    "GetRolePolicy",
    "ListInstanceProfilesForRole",
)
TEAMS = ("platform-team", "payments", "data-eng", "web", "ml-research")
SCALE_IN_AFTER = 600.0
LONGEST_CHAIN = SCALE_IN_AFTER  # the longest delay from an activity's first record to its last
INSTANCE_TYPES = ("t3.medium", "t3.large", "m6i.large", "m6i.xlarge", "c6g.large", "r6i.large")


class Background:
    def __init__(self, org: Organization, shapes: Shapes, rng: random.Random, ids: Ids) -> None:
        self.org, self.shapes, self.rng, self.ids = org, shapes, rng, ids
        kinds = org.by_kind
        self.readers = kinds["scanner"] + kinds["config"] + kinds["terraform"] + org.sso + kinds["ec2"]
        self.workloads = kinds["lambda"] + kinds["ecs"] + kinds["ec2"]
        self.automation = [a for a in org.actors if a.kind not in ("human-iam", "human-sso")]
        self.callers = self.automation + org.sso
        self.launched: list[tuple[Actor, str, str]] = []  # (account's autoscaling actor, region, instance id)
        self.activities: list[tuple[float, Callable[[float], list[Record]]]] = [
            (22, self.describe_calls),
            (6, self.iam_read),
            (9, self.service_assume_role),
            (2, self.web_identity),
            (4, self.caller_identity),
            (20, self.s3_objects),
            (3, self.kms_direct),
            (9, self.app_reads),
            (3, self.log_streams),
            (0.3, self.console_sessions),
            (0.6, self.instance_power),
            (0.8, self.launch),
            (0.3, self.scale_in),
            (0.25, self.internal_ingress),
            (0.2, self.iam_role_changes),
            (0.3, self.denied),
            (0.05, self.service_events),
        ]

    def generate(self, count: int, start: float, duration: float) -> list[Record]:
        """About `count` records (a chained activity may add a few) spread evenly over `duration` seconds;
        activities start early enough for what they chain (a scale-in 10 minutes on) to end by then too."""
        rng = self.rng
        funcs = [f for _, f in self.activities]
        cum = list(accumulate(w for w, _ in self.activities))
        out: list[Record] = self.region_sweep(start) if count else []
        step = max(duration - LONGEST_CHAIN, duration / 2) / max(count, 1)
        while len(out) < count:
            batch = rng.choices(funcs, cum_weights=cum, k=max(64, count - len(out)))
            for fn in batch:
                n = len(out)
                if n >= count:
                    break
                out.extend(fn(start + n * step + rng.random() * step))
        return out

    def region_sweep(self, start: float) -> list[Record]:
        """The security scanner's first pass: an IAM read and a describe in every region each account uses,
        so an account's regions are all known early, however sparse the rest of the scenario."""
        out: list[Record] = []
        t = start
        for acct in self.org.accounts:
            scanner = self.org.actor("scanner", acct)
            out.append(self.shapes.iam(scanner, t, "GetAccountSummary", None, read_only=True))
            for region in acct.regions:
                t += self.rng.uniform(0.5, 3)
                out.append(self.shapes.ec2_describe(scanner, t, region, "DescribeInstances"))
        return out

    # -- helpers -----------------------------------------------------------------------------------
    def region(self, actor: Actor) -> str:
        return self.rng.choice(actor.account.regions)

    # -- reads -------------------------------------------------------------------------------------
    def describe_calls(self, t: float) -> list[Record]:
        actor = self.rng.choice(self.readers)
        return [self.shapes.ec2_describe(actor, t, self.region(actor), self.rng.choice(DESCRIBES))]

    def iam_read(self, t: float) -> list[Record]:
        rng = self.rng
        actor = rng.choice(self.org.by_kind["scanner"] + self.org.by_kind["config"] + self.org.by_kind["terraform"])
        name = rng.choice(IAM_READS)
        role = rng.choice(("app-instance-role", "orders-api-lambda-role", "terraform-deployer"))
        requests: dict[str, dict[str, Any]] = {
            "GetRole": {"roleName": role},
            "ListAttachedRolePolicies": {"roleName": role},
            "GetPolicy": {"policyArn": f"arn:aws:iam::{actor.account.id}:policy/{role}-policy"},
            "GetUser": {"userName": rng.choice([p.user_name for p in self.org.people])},
            "GetRolePolicy": {"roleName": role, "policyName": "inline"},
            "ListInstanceProfilesForRole": {"roleName": role},
            "ListPolicies": {"scope": "Local", "onlyAttached": False},
        }
        return [self.shapes.iam(actor, t, name, requests.get(name), read_only=True)]

    def service_assume_role(self, t: float) -> list[Record]:
        target = self.rng.choice(self.workloads)
        service = {"lambda": "lambda.amazonaws.com", "ecs": "ecs-tasks.amazonaws.com", "ec2": "ec2.amazonaws.com"}[
            target.kind
        ]
        return [self.shapes.service_assume_role(service, t, self.region(target), target)]

    def web_identity(self, t: float) -> list[Record]:
        """GitHub Actions exchanging its OIDC token for the deploy role."""
        ci = self.rng.choice(self.org.by_kind["ci"])
        acct = ci.account.id
        provider = f"arn:aws:iam::{acct}:oidc-provider/token.actions.githubusercontent.com"
        subject = f"repo:acme-corp/{self.rng.choice(('orders', 'web', 'infra'))}:ref:refs/heads/main"
        identity = {
            "type": "WebIdentityUser",
            "principalId": f"{provider}:sts.amazonaws.com:{subject}",
            "userName": subject,
            "identityProvider": provider,
        }
        ev = self.shapes.call(
            ci,
            t,
            "us-east-1",
            "sts.amazonaws.com",
            "AssumeRoleWithWebIdentity",
            identity=identity,
            read_only=True,
            request={"roleArn": ci.role_arn, "roleSessionName": "GitHubActions", "durationSeconds": 3600},
            response={
                "subjectFromWebIdentityToken": subject,
                "provider": provider,
                "audience": "sts.amazonaws.com",
                "assumedRoleUser": {"arn": ci.identity["arn"], "assumedRoleId": ci.identity["principalId"]},
                "credentials": {"accessKeyId": ci.identity["accessKeyId"]},
            },
            resources=[{"accountId": acct, "type": "AWS::IAM::Role", "ARN": ci.role_arn}],
        )
        return [ev]

    def caller_identity(self, t: float) -> list[Record]:
        actor = self.rng.choice(self.callers)
        return [self.shapes.get_caller_identity(actor, t, self.region(actor))]

    def s3_objects(self, t: float) -> list[Record]:
        rng = self.rng
        actor = rng.choice(self.workloads)
        region = actor.account.regions[0]
        bucket = rng.choice(actor.account.buckets[:2])
        key = f"{rng.choice(('orders', 'invoices', 'images', 'exports'))}/2024/08/{self.ids.hex(12)}.json"
        write = rng.random() < 0.25
        out = [self.shapes.s3_object(actor, t, region, bucket, key, write)]
        if not write and rng.random() < 0.3:
            out.append(self.shapes.kms_decrypt(actor, t, region, bucket, key))
        return out

    def kms_direct(self, t: float) -> list[Record]:
        actor = self.rng.choice(self.org.by_kind["ecs"])
        region = actor.account.regions[0]
        name = self.rng.choice(("GenerateDataKey", "Decrypt"))
        key = actor.account.kms_key
        request = (
            {"keyId": key, "keySpec": "AES_256"}
            if name == "GenerateDataKey"
            else {"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": {"service": "payments"}}
        )
        return [
            self.shapes.call(
                actor,
                t,
                region,
                "kms.amazonaws.com",
                name,
                request=request,
                read_only=True,
                resources=[{"accountId": actor.account.id, "type": "AWS::KMS::Key", "ARN": key}],
            )
        ]

    def app_reads(self, t: float) -> list[Record]:
        rng = self.rng
        actor = rng.choice(self.workloads)
        region = actor.account.regions[0]
        acct = actor.account.id
        choice = rng.randrange(7)
        if choice == 0:
            name = f"/{actor.account.name}/orders/db-host"
            return [
                self.shapes.call(
                    actor,
                    t,
                    region,
                    "ssm.amazonaws.com",
                    "GetParameter",
                    read_only=True,
                    request={"name": name, "withDecryption": True},
                    resources=[{"ARN": f"arn:aws:ssm:{region}:{acct}:parameter{name}", "accountId": acct}],
                )
            ]
        if choice == 1:
            secret = f"arn:aws:secretsmanager:{region}:{acct}:secret:{actor.account.name}/payments/db-AbC123"
            return [
                self.shapes.call(
                    actor,
                    t,
                    region,
                    "secretsmanager.amazonaws.com",
                    "GetSecretValue",
                    read_only=True,
                    request={"secretId": secret},
                )
            ]
        if choice == 2:
            return [
                self.shapes.call(
                    actor,
                    t,
                    region,
                    "dynamodb.amazonaws.com",
                    "DescribeTable",
                    read_only=True,
                    request={"tableName": rng.choice(("orders", "sessions", "idempotency"))},
                )
            ]
        if choice == 3:
            return [
                self.shapes.call(
                    actor,
                    t,
                    region,
                    "ecr.amazonaws.com",
                    "GetAuthorizationToken",
                    read_only=True,
                    request={"registryIds": [acct]},
                )
            ]
        if choice == 4:
            return [
                self.shapes.call(
                    actor,
                    t,
                    region,
                    "sqs.amazonaws.com",
                    "GetQueueAttributes",
                    read_only=True,
                    request={
                        "queueUrl": f"https://sqs.{region}.amazonaws.com/{acct}/orders",
                        "attributeNames": ["ApproximateNumberOfMessages"],
                    },
                )
            ]
        tf = rng.choice(self.org.by_kind["terraform"])
        if choice == 5:
            return [
                self.shapes.call(
                    tf,
                    t,
                    tf.account.regions[0],
                    "lambda.amazonaws.com",
                    "GetFunction20150331v2",
                    read_only=True,
                    request={"functionName": "orders-api"},
                )
            ]
        return [
            self.shapes.call(
                tf,
                t,
                tf.account.regions[0],
                "cloudformation.amazonaws.com",
                "DescribeStacks",
                read_only=True,
                request={"stackName": "network-baseline"},
            )
        ]

    def log_streams(self, t: float) -> list[Record]:
        actor = self.rng.choice(self.org.by_kind["lambda"])
        fn = actor.identity["arn"].rsplit("/", 1)[-1]
        return [
            self.shapes.call(
                actor,
                t,
                actor.account.regions[0],
                "logs.amazonaws.com",
                "CreateLogStream",
                request={
                    "logGroupName": f"/aws/lambda/{fn}",
                    "logStreamName": f"2024/08/06/[$LATEST]{self.ids.hex(32)}",
                },
            )
        ]

    # -- people ------------------------------------------------------------------------------------
    def console_sessions(self, t: float) -> list[Record]:
        rng = self.rng
        if rng.random() < 0.5:  # people sign in from where they always do
            sso = rng.choice(self.org.sso)
            return [self.shapes.federated_login(sso, t, ip=sso.ips[0])]
        person = rng.choice(self.org.people)
        ip = person.ips[0]
        if rng.random() < 0.1:  # a mistyped password, then the right one
            return [
                self.shapes.console_login(person, t, success=False, mfa=False, ip=ip),
                self.shapes.console_login(person, t + rng.uniform(5, 20), success=True, mfa=True, ip=ip),
            ]
        return [self.shapes.console_login(person, t, success=True, mfa=True, ip=ip)]

    def instance_power(self, t: float) -> list[Record]:
        actor = self.rng.choice(self.org.sso)
        name = self.rng.choice(("StopInstances", "StartInstances", "RebootInstances"))
        iid = self.ids.resource("i")
        return [
            self.shapes.call(
                actor,
                t,
                self.region(actor),
                "ec2.amazonaws.com",
                name,
                request={"instancesSet": {"items": [{"instanceId": iid}]}},
                response={"_return": True},
                agent="console.ec2.amazonaws.com",
            )
        ]

    # -- automation writes -------------------------------------------------------------------------
    def launch(self, t: float) -> list[Record]:
        """Terraform or Auto Scaling launching instances: tagged at launch, or by CreateTags 30-90 s later."""
        rng = self.rng
        tf = rng.choice(self.org.by_kind["terraform"])
        region = self.region(tf)
        ids = [self.ids.resource("i") for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        tags = {
            "Name": f"{tf.account.name}-app",
            **REQUIRED_TAGS,
            "Environment": tf.account.name,
            "Owner": rng.choice(TEAMS),
        }
        asg = self.org.actor("autoscaling", tf.account)
        for iid in ids:
            self.launched.append((asg, region, iid))
        itype = rng.choice(INSTANCE_TYPES)
        if rng.random() < 0.6:
            return [self.shapes.run_instances(tf, t, region, ids, tags=tags, instance_type=itype)]
        return [
            self.shapes.run_instances(tf, t, region, ids, tags=None, instance_type=itype),
            self.shapes.create_tags(tf, t + rng.uniform(30, 90), region, ids, tags),
        ]

    def scale_in(self, t: float) -> list[Record]:
        if not self.launched:
            return self.describe_calls(t)
        asg, region, iid = self.launched.pop(self.rng.randrange(len(self.launched)))
        return [self.shapes.terminate_instances(asg, t + SCALE_IN_AFTER, region, [iid])]

    def internal_ingress(self, t: float) -> list[Record]:
        tf = self.rng.choice(self.org.by_kind["terraform"])
        rules = (
            [("tcp", 443, 443, "10.0.0.0/8")]
            if self.rng.random() < 0.5
            else [("tcp", 5432, 5432, self.ids.resource("sg"))]
        )
        return [self.shapes.authorize_ingress(tf, t, self.region(tf), self.ids.resource("sg"), rules)]

    def iam_role_changes(self, t: float) -> list[Record]:
        tf = self.rng.choice(self.org.by_kind["terraform"])
        role = f"{self.rng.choice(('orders-api', 'invoice-worker', 'thumbnailer'))}-lambda-role"
        doc = (
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],'
            f'"Resource":"arn:aws:s3:::{tf.account.buckets[1]}/*"}}]}}'
        )
        return [
            self.shapes.iam(
                tf, t, "PutRolePolicy", {"roleName": role, "policyName": "app-data-read", "policyDocument": doc}
            )
        ]

    def denied(self, t: float) -> list[Record]:
        actor = self.rng.choice(self.automation)
        region = self.region(actor)
        if actor.kind in ("config", "autoscaling"):
            return self.describe_calls(t)
        if self.rng.random() < 0.5:
            bucket = actor.account.buckets[2]
            return [
                self.shapes.s3_object(
                    actor,
                    t,
                    region,
                    bucket,
                    f"archive/{self.ids.hex(8)}.gz",
                    False,
                    error=self.shapes.denied(actor, "s3:GetObject", f"arn:aws:s3:::{bucket}/archive"),
                )
            ]
        return [
            self.shapes.ec2_describe(
                actor, t, region, "DescribeVolumes", error=self.shapes.ec2_denied(actor, "ec2:DescribeVolumes", "*")
            )
        ]

    def service_events(self, t: float) -> list[Record]:
        """Service-made records: key rotation (AwsServiceEvent), and the root identity acting through a service."""
        rng = self.rng
        acct = rng.choice(self.org.accounts)
        svc = self.org.actor("config", acct)
        region = acct.regions[0]
        if rng.random() < 0.5:
            return [self.shapes.kms_rotation(svc, t, region)]
        ev = self.shapes.call(
            svc,
            t,
            "us-east-1",
            "iam.amazonaws.com",
            "GetAccountSummary",
            read_only=True,
            identity=root_identity(acct.id, invoked_by="support.amazonaws.com"),
            ip="support.amazonaws.com",
            agent="support.amazonaws.com",
        )
        return [ev]
