"""A synthetic AWS Organization: accounts, their regions, and the people and automation acting in them.

Every actor carries a prebuilt CloudTrail `userIdentity` (shared by its events, never mutated),
the source addresses it calls from and the user agents it uses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pipeline.scenario.ids import Ids, iso

# (name, home regions) of the accounts, in the order they are created.
ACCOUNT_PLAN = (
    ("management", ("us-east-1",)),
    ("prod", ("us-east-1", "us-west-2", "eu-west-1")),
    ("staging", ("us-east-1", "eu-west-1")),
    ("dev", ("us-east-1", "us-east-2")),
    ("security", ("us-east-1",)),
    ("data", ("us-east-1", "eu-west-1")),
    ("shared-services", ("us-east-1", "us-west-2")),
    ("sandbox", ("us-west-2",)),
)
# Regions no account of the organization uses: the "new region" attack picks one.
UNUSED_REGIONS = ("ap-southeast-3", "sa-east-1", "me-central-1", "af-south-1")

PEOPLE = (
    "alice.nguyen",
    "bob.martin",
    "chen.wei",
    "dana.kowalski",
    "emeka.obi",
    "fatima.haddad",
    "gustavo.lima",
    "hana.sato",
    "ivan.petrov",
    "julia.schmidt",
    "kofi.mensah",
    "lena.berg",
)

BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
)
CLI = (
    "aws-cli/2.17.13 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9 md/pyimpl#CPython "
    "cfg/retry-mode#standard md/installer#source md/prompt#off md/command#ec2.describe-instances",
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1022-aws exe/x86_64.ubuntu.22 prompt/off command/s3.ls",
)
CONSOLE_AGENTS = ("AWS Internal", "console.amazonaws.com", "console.ec2.amazonaws.com")
TERRAFORM = (
    "APN/1.0 HashiCorp/1.0 Terraform/1.8.5 (+https://www.terraform.io) terraform-provider-aws/5.58.0 "
    "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.30.1 ua/2.0 os/linux lang/go#1.22.4 "
    "md/GOOS#linux md/GOARCH#amd64 api/ec2#1.167.1",
)
GITHUB_CLI = (
    "aws-cli/2.17.9 md/awscrt#0.20.11 ua/2.0 os/linux#6.5.0-1023-azure md/arch#x86_64 lang/python#3.11.9 "
    "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.22 md/prompt#off "
    "md/command#ecs.update-service",
)
BOTO3_LAMBDA = (
    "Boto3/1.34.101 md/Botocore#1.34.101 ua/2.0 os/linux#5.10.219-229.860.amzn2.x86_64 md/arch#x86_64 "
    "lang/python#3.12.3 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.101",
)
JAVA_SDK = (
    "aws-sdk-java/2.25.60 Linux/5.10.218-208.862.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 "
    "vendor/Amazon.com_Inc. exec-env/AWS_ECS_EC2 io/sync http/Apache cfg/retry-mode/legacy",
    "aws-sdk-java/1.12.729 Linux/5.10.218-208.862.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/11.0.23+9-LTS java/11.0.23 "
    "kotlin/1.9.22 vendor/Amazon.com_Inc. cfg/retry-mode/standard",
)
GO_SDK = ("aws-sdk-go-v2/1.30.1 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#arm64 api/ec2#1.168.0",)
SCANNER = (
    "Boto3/1.34.120 md/Botocore#1.34.120 ua/2.0 os/linux#6.1.92-99.174.amzn2023.x86_64 md/arch#x86_64 "
    "lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#adaptive Botocore/1.34.120 prowler/4.2.4",
)


@dataclass
class Account:
    id: str
    name: str
    regions: tuple[str, ...]
    kms_key: str = ""
    buckets: tuple[str, ...] = ()


@dataclass
class Actor:
    """Someone or something that calls AWS APIs in one account."""

    key: str
    kind: str  # human-iam, human-sso, terraform, ci, lambda, ecs, ec2, scanner, config, autoscaling, root
    account: Account
    identity: dict[str, Any]
    ips: tuple[str, ...]
    agents: tuple[str, ...]
    user_name: str = ""
    role_arn: str = ""
    tls: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def iam_user_identity(account: str, name: str, principal_id: str, access_key: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": principal_id,
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": access_key,
        "userName": name,
    }


def console_user_identity(
    account: str, name: str, principal_id: str, access_key: str, created: str, mfa: bool = True
) -> dict[str, Any]:
    """An IAM user acting through the console: session credentials with sessionContext attributes."""
    ident = iam_user_identity(account, name, principal_id, access_key)
    ident["sessionContext"] = {
        "sessionIssuer": {},
        "webIdFederationData": {},
        "attributes": {"creationDate": created, "mfaAuthenticated": str(mfa).lower()},
    }
    return ident


def assumed_role_identity(
    account: str,
    role: str,
    role_id: str,
    session: str,
    access_key: str,
    created: str,
    mfa: bool = False,
    path: str = "/",
    **context: Any,
) -> dict[str, Any]:
    role_path = "" if path == "/" else path.strip("/") + "/"
    ctx: dict[str, Any] = {
        "sessionIssuer": {
            "type": "Role",
            "principalId": role_id,
            "arn": f"arn:aws:iam::{account}:role/{role_path}{role}",
            "accountId": account,
            "userName": role,
        },
        "webIdFederationData": {},
        "attributes": {"creationDate": created, "mfaAuthenticated": str(mfa).lower()},
    }
    ctx.update(context)
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": access_key,
        "sessionContext": ctx,
    }


def root_identity(account: str, invoked_by: str = "") -> dict[str, Any]:
    ident: dict[str, Any] = {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
    }
    if invoked_by:
        ident["invokedBy"] = invoked_by
    else:
        ident["accessKeyId"] = ""
    return ident


def service_identity(service: str) -> dict[str, Any]:
    return {"type": "AWSService", "invokedBy": service}


class Organization:
    """Accounts and actors, all drawn from the seed."""

    def __init__(self, rng: random.Random, ids: Ids, n_accounts: int, start: float) -> None:
        self.rng = rng
        self.ids = ids
        self.start = start
        n_accounts = max(2, min(n_accounts, len(ACCOUNT_PLAN)))
        self.accounts = [Account(ids.account(), name, regions) for name, regions in ACCOUNT_PLAN[:n_accounts]]
        for acct in self.accounts:
            acct.kms_key = f"arn:aws:kms:{acct.regions[0]}:{acct.id}:key/{ids.uuid()}"
            acct.buckets = tuple(f"{acct.name}-{b}-{acct.id}" for b in ("artifacts", "app-data", "logs-archive"))
        self.management = self.accounts[0]
        self.office_ips = tuple(f"203.0.113.{n}" for n in rng.sample(range(10, 250), 4))
        self.actors: list[Actor] = []
        self.people: list[Actor] = []  # IAM users with console access (management account)
        self.sso: list[Actor] = []
        self.person_ips: dict[str, tuple[str, ...]] = {}
        self._build_people()
        for acct in self.accounts:
            self._build_automation(acct)
        self.by_kind: dict[str, list[Actor]] = {}
        for actor in self.actors:
            self.by_kind.setdefault(actor.kind, []).append(actor)

    def created(self, before: float = 1800) -> str:
        return iso(self.start - self.rng.randrange(60, int(before)))

    def _build_people(self) -> None:
        ids, rng, mgmt = self.ids, self.rng, self.management
        for i, person in enumerate(PEOPLE):
            home = f"198.51.100.{rng.randrange(2, 254)}"
            self.person_ips[person] = (rng.choice(self.office_ips), home)
            if i < 5:  # legacy IAM users with MFA, in the management account
                pid = ids.key_id("AIDA")
                actor = Actor(
                    f"user:{person}",
                    "human-iam",
                    mgmt,
                    console_user_identity(mgmt.id, person, pid, ids.key_id("ASIA"), self.created(), True),
                    self.person_ips[person],
                    CONSOLE_AGENTS + CLI[:1],
                    user_name=person,
                    extra={"principal_id": pid, "browser": rng.choice(BROWSERS)},
                )
                self.people.append(actor)
                self.actors.append(actor)
            # everyone also works through IAM Identity Center in a couple of accounts
            for acct in rng.sample(self.accounts, k=min(2, len(self.accounts))):
                perm = rng.choice(("AdministratorAccess", "PowerUserAccess", "ReadOnlyAccess"))
                role = f"AWSReservedSSO_{perm}_{ids.hex(16)}"
                role_id = ids.key_id("AROA")
                ident = assumed_role_identity(
                    acct.id,
                    role,
                    role_id,
                    f"{person}@example.com",
                    ids.key_id("ASIA"),
                    self.created(),
                    path="/aws-reserved/sso.amazonaws.com/",
                )
                actor = Actor(
                    f"sso:{person}:{acct.name}",
                    "human-sso",
                    acct,
                    ident,
                    self.person_ips[person],
                    CONSOLE_AGENTS + CLI,
                    user_name=person,
                    role_arn=f"arn:aws:iam::{acct.id}:role/aws-reserved/sso.amazonaws.com/{role}",
                    extra={"browser": rng.choice(BROWSERS), "readonly": perm == "ReadOnlyAccess"},
                )
                self.sso.append(actor)
                self.actors.append(actor)

    def _role(
        self,
        acct: Account,
        kind: str,
        role: str,
        session: str,
        ips: tuple[str, ...],
        agents: tuple[str, ...],
        tls: bool = True,
        **context: Any,
    ) -> Actor:
        role_id = self.ids.key_id("AROA")
        ident = assumed_role_identity(
            acct.id, role, role_id, session, self.ids.key_id("ASIA"), self.created(3000), **context
        )
        actor = Actor(
            f"{kind}:{acct.name}:{role}:{session}",
            kind,
            acct,
            ident,
            ips,
            agents,
            role_arn=f"arn:aws:iam::{acct.id}:role/{role}",
            tls=tls,
        )
        self.actors.append(actor)
        return actor

    def _build_automation(self, acct: Account) -> None:
        ids, rng = self.ids, self.rng
        nat = tuple(f"52.{rng.randrange(0, 95)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}" for _ in range(2))
        runner = (f"20.{rng.randrange(1, 250)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}",)
        self._role(acct, "terraform", "terraform-deployer", f"aws-go-sdk-{ids.digits(19)}", runner, TERRAFORM)
        self._role(acct, "ci", "github-actions-deploy", "GitHubActions", runner, GITHUB_CLI)
        for fn in ("orders-api", "invoice-worker", "thumbnailer"):
            self._role(acct, "lambda", f"{fn}-lambda-role", fn, nat, BOTO3_LAMBDA)
        self._role(acct, "ecs", "payments-service-task-role", ids.hex(32), nat, JAVA_SDK)
        for _ in range(2):
            # instances reach AWS through the account's VPC endpoints: private source addresses
            private = (f"10.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}",)
            inst = self._role(
                acct,
                "ec2",
                "app-instance-role",
                ids.resource("i"),
                private,
                GO_SDK + JAVA_SDK[:1],
                ec2RoleDelivery="2.0",
            )
            inst.extra["vpce"] = ids.resource("vpce")
        self._role(acct, "scanner", "SecurityAuditRole", "prowler", ("34.201.17.62",), SCANNER)
        self._role(
            acct,
            "config",
            "AWSServiceRoleForConfig",
            "AWSConfig-Describe",
            ("config.amazonaws.com",),
            ("config.amazonaws.com",),
            tls=False,
        )
        self._role(
            acct,
            "autoscaling",
            "AWSServiceRoleForAutoScaling",
            "AutoScaling",
            ("autoscaling.amazonaws.com",),
            ("autoscaling.amazonaws.com",),
            tls=False,
        )

    def actor(self, kind: str, account: Account | None = None) -> Actor:
        """A random actor of `kind`, in `account` if given."""
        pool = self.by_kind[kind] if account is None else [a for a in self.by_kind[kind] if a.account is account]
        return self.rng.choice(pool)

    def account(self, name: str) -> Account:
        return next((a for a in self.accounts if a.name == name), self.accounts[-1])
