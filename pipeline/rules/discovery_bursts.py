"""Discovery bursts: is one principal reading its way across many services in minutes, or sizing up
the account's email sending (SES) as spammers and phishers do first?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import at, call, role_session, service_linked
from pipeline.event import Event, text
from pipeline.rule import ANY, Case, Params
from pipeline.rules.attack_common import actor, by_aws_service, from_console
from pipeline.rules.forms import console, stack
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold

READS = ("List", "Describe", "Get")
SERVICES = ["iam", "s3", "ec2", "lambda", "rds", "secretsmanager", "ssm", "kms", "dynamodb", "sts", "sns", "sqs"]
RECON_RUNBOOK = (
    "Find out whose credentials these are and whether they run an inventory or security scanner (allowlist "
    "it). If not, the credentials are probably stolen and being explored: revoke the session or deactivate the "
    "key, and look at what the principal did right after."
)
NAMES = {
    "iam": "ListUsers",
    "s3": "ListBuckets",
    "ec2": "DescribeInstances",
    "lambda": "ListFunctions20150331",
    "rds": "DescribeDBInstances",
    "secretsmanager": "ListSecrets",
    "ssm": "DescribeParameters",
    "kms": "ListKeys",
    "dynamodb": "ListTables",
    "sts": "GetCallerIdentity",
    "sns": "ListTopics",
    "sqs": "ListQueues",
}


def _read(i: int, minutes: float, **fields: Any) -> dict[str, Any]:
    service = SERVICES[i % len(SERVICES)]
    return {
        **call(f"{service}.amazonaws.com", NAMES[service]),
        "eventTime": at(minutes),
        "userIdentity": role_session("ci-runner", "build-7731"),
        **fields,
    }


@threshold(
    id="discovery-burst",
    title="One principal reading across many services within minutes",
    severity="medium",
    attack=("T1580", "T1526", "T1087.004"),
    events={ANY: ANY},
    params={"services": 12, "window": "10m", "include_console": True},
    threshold="services",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=RECON_RUNBOOK,
    cases=[
        Case("twelve services in two minutes", [_read(i, i * 0.2) for i in range(12)], expect=1),
        Case(
            "twelve services, denied (probing is the behaviour)",
            [_read(i, i * 0.2, errorCode="AccessDenied") for i in range(12)],
            expect=1,
        ),
        Case(
            "twelve services read by a CloudFormation stack (its own bookkeeping)",
            [stack(_read(i, i * 0.2)) for i in range(12)],
            expect=0,
        ),
        Case(
            "twelve services in the console, console sessions excluded",
            [console(_read(i, i * 0.2)) for i in range(12)],
            expect=0,
            params={"include_console": False},
        ),
        Case("eleven services", [_read(i, i * 0.2) for i in range(11)], expect=0),
        Case("one service read all day", [_read(0, i) for i in range(50)], expect=0),
        Case("twelve services over two hours", [_read(i, i * 10) for i in range(12)], expect=0),
        Case(
            "AWS Config recording the account",
            [_read(i, i * 0.2, userIdentity=service_linked("config", "AWSServiceRoleForConfig")) for i in range(12)],
            expect=0,
        ),
        Case("writes do not count", [{**_read(i, i * 0.2), "eventName": "CreateTags"} for i in range(12)], expect=0),
    ],
)
def discovery_burst(e: Event, p: Params) -> Step | None:
    """List*, Describe* or Get* calls to at least `services` distinct services by one principal within
    `window`: what freshly stolen credentials do first. The key is the caller's ARN, so each new role
    session or user key is a new principal. Denied reads count (probing is the behaviour), and so do
    console sessions (a team whose people browse many consoles quickly can set `include_console` false:
    a console page fans out reads across services). Reads any service makes with `invokedBy` do not (a
    CloudFormation stack describing what it deploys is its own bookkeeping); inventory and security
    scanners belong in the rule's allowlist."""
    if not e.name.startswith(READS) or by_aws_service(e) or text(e.identity.get("invokedBy")):
        return None
    if not p.include_console and from_console(e):
        return None
    who = e.principal
    return Step(who, value=e.source) if who else None


SES = "ses.amazonaws.com"
SES_RECON = [
    "GetAccountSendingEnabled",
    "GetSendQuota",
    "GetSendStatistics",
    "ListIdentities",
    "GetIdentityVerificationAttributes",
    "ListVerifiedEmailAddresses",
    "ListEmailIdentities",
    "GetAccount",
]


def _ses(i: int, minutes: float, **fields: Any) -> dict[str, Any]:
    return {**call(SES, SES_RECON[i % len(SES_RECON)]), "eventTime": at(minutes), **fields}


@threshold(
    id="ses-enumeration",
    title="Email sending capability of the account enumerated (SES)",
    severity="medium",
    attack=("T1580", "T1526"),
    events={SES: SES_RECON},
    params={"calls": 3, "window": "1h", "include_console": True},
    threshold="calls",
    window="window",
    distinct=True,
    dedup="1d",
    runbook=RECON_RUNBOOK + " SES abuse follows: check sending quotas, new identities and sending statistics.",
    cases=[
        Case("sending enabled, quota and identities checked", [_ses(i, i) for i in range(3)], expect=1),
        Case("the same checks made by a CloudFormation stack", [stack(_ses(i, i)) for i in range(3)], expect=0),
        Case("the same checks, denied", [_ses(i, i, errorCode="AccessDenied") for i in range(3)], expect=1),
        Case(
            "the SES console page, console sessions excluded",
            [console(_ses(i, i)) for i in range(3)],
            expect=0,
            params={"include_console": False},
        ),
        Case("a mailer checking its quota", [_ses(1, i) for i in range(10)], expect=0),
        Case(
            "Trusted Advisor's checks",
            [
                _ses(i, i, userIdentity=service_linked("trustedadvisor", "AWSServiceRoleForTrustedAdvisor"))
                for i in range(5)
            ],
            expect=0,
        ),
    ],
)
def ses_enumeration(e: Event, p: Params) -> Step | None:
    """At least `calls` distinct SES checks (is sending enabled, the quota and statistics, which identities
    are verified) by one principal within `window`: how stolen credentials are sized up for spam and
    phishing. Denied calls count, and console sessions do (the SES console makes these calls when it
    opens: allowlist the administrators who use it, or set `include_console` false); reads services make
    (`invokedBy`, Trusted Advisor) are not findings."""
    if by_aws_service(e) or text(e.identity.get("invokedBy")) or (from_console(e) and not p.include_console):
        return None
    return Step(actor(e), value=e.name)
