"""Sessions: who turned a long-term key into temporary credentials or a console session, assumed a role
the team keeps for emergencies, failed the second factor again and again, or called AWS with a known
attack or key-validation tool?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, SIGN_IN, USER_AGENT, call, console_sign_in, failed, iam_user, role_session
from pipeline.event import Event, text
from pipeline.rule import ANY, Case, Hit, Params, match
from pipeline.rules.attack_common import actor, by_aws_service, long_term_key
from pipeline.rules.change_common import by_person, change_hit, matches_any
from pipeline.rules.forms import console, stack, with_denied
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold

STS = "sts.amazonaws.com"
SIGNIN = "signin.amazonaws.com"
KEY_RUNBOOK = (
    "Ask the key's owner whether they made this call. If not, the long-term key is in someone else's hands: "
    "deactivate it, attach a deny-all policy to the user (temporary credentials derived from the key keep "
    "working until then), and review every call made with the key and the sessions derived from it."
)


@match(
    id="sts-session-token-without-mfa",
    title="Session token obtained from a long-term key without MFA",
    severity="low",
    attack=("T1550.001", "T1098"),
    events={STS: ["GetSessionToken"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=KEY_RUNBOOK,
    cases=[
        *with_denied(
            "token without MFA",
            call(STS, "GetSessionToken", {"durationSeconds": 129600}, userIdentity=iam_user("bob")),
            failed_expect=0,
            failed_why="no credentials were issued",
        ),
        Case(
            "token with an MFA code (the intended use)",
            call(
                STS, "GetSessionToken", {"durationSeconds": 43200, "serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/alice"}
            ),
            expect=0,
        ),
        Case("a role session cannot call it", call(STS, "GetSessionToken", userIdentity=role_session("app")), expect=0),
    ],
)
def sts_session_token_without_mfa(e: Event, p: Params) -> Hit | None:
    """GetSessionToken by an IAM user (or root) without an MFA serial number: temporary credentials derived
    from a long-term key, which keep working for up to 36 hours after the key is deactivated, a way to
    persist with a stolen key. With MFA it is the intended use and not a finding. Only successful calls
    count by default; calls AWS makes itself are not findings."""
    if e.identity_type not in ("IAMUser", "Root") or e.text("requestParameters", "serialNumber"):
        return None
    if not by_person(e, p.include_failed):
        return None
    duration = e.get("requestParameters", "durationSeconds")
    return change_hit(
        e,
        "Session token without MFA for",
        e.principal,
        key=actor(e),
        duration_seconds=duration if type(duration) is int else None,
    )


def _signin_token(
    identity: dict[str, Any] | None = None, agent: str = "python-requests/2.31.0", **fields: Any
) -> dict[str, Any]:
    return {
        "eventSource": SIGNIN,
        "eventName": "GetSigninToken",
        "eventType": "AwsApiCall",
        "userIdentity": identity
        or {
            "type": "FederatedUser",
            "principalId": f"{ACCOUNT}:bob",
            "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/bob",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLEFEDERATE1",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "IAMUser",
                    "userName": "bob",
                    "accountId": ACCOUNT,
                    "arn": f"arn:aws:iam::{ACCOUNT}:user/bob",
                }
            },
        },
        "userAgent": agent,
        "sourceIPAddress": "81.2.69.142",
        "requestParameters": None,
        "responseElements": {"GetSigninToken": "Success"},
        **fields,
    }


SSO_PORTAL = role_session(
    "AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com", path="aws-reserved/sso.amazonaws.com/"
)


@match(
    id="console-session-from-cli-credentials",
    title="Console session made from API credentials (GetSigninToken)",
    severity="medium",
    attack=("T1550.001", "T1021.007"),
    events={SIGNIN: ["GetSigninToken"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "A sign-in token turns API credentials (a federation token or a role session) into a console session. "
        "If the principal is not a known federation broker (allowlist it): end its sessions, deactivate the "
        "long-term key behind it, and review the console activity that followed."
    ),
    cases=[
        Case("federated user from a script", _signin_token(), expect=1),
        Case("role session from a script", _signin_token(role_session("ops", "stolen")), expect=1),
        Case(
            "role session from a script, denied (no token issued)",
            _signin_token(
                role_session("ops", "stolen"), errorCode="AccessDenied", responseElements={"GetSigninToken": "Failure"}
            ),
            expect=0,
        ),
        Case(
            "IAM Identity Center portal opening the console",
            _signin_token(SSO_PORTAL, "Jersey/${project.version}"),
            expect=0,
        ),
    ],
)
def console_session_from_cli_credentials(e: Event, p: Params) -> Hit | None:
    """GetSigninToken: the federation endpoint exchanging API credentials (from GetFederationToken or
    AssumeRole, typically derived from a long-term key) for a console sign-in token, the way tools open a
    console with stolen keys. The IAM Identity Center portal does this for its own role sessions
    (AWSReservedSSO_ roles) and is not a finding. It has no CloudFormation form. Only successful calls count
    by default."""
    if not by_person(e, p.include_failed) or text(e.response.get("GetSigninToken")) == "Failure":
        return None
    if "/AWSReservedSSO_" in e.principal:
        return None
    return change_hit(e, "Console sign-in token issued to", e.principal, key=actor(e))


@match(
    id="sts-protected-role-assumed",
    title="Protected role assumed",
    severity="high",
    attack=("T1078.004", "T1548"),
    events={STS: ["AssumeRole"]},
    params={"protected_roles": [], "include_failed": True},
    dedup="1h",
    runbook=(
        "The role is one the team keeps for emergencies or automation only. Ask who assumed it and why; if "
        "nobody did, revoke the role's active sessions, check who may assume it (its trust policy) and review "
        "the session's calls."
    ),
    cases=[
        *with_denied(
            "break-glass role assumed by a user",
            call(
                STS, "AssumeRole", {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/BreakGlassAdmin", "roleSessionName": "bob"}
            ),
            failed_expect=1,
            failed_why="trying to become the role is the behaviour",
            params={"protected_roles": ["arn:aws:iam::*:role/BreakGlass*"]},
        ),
        Case(
            "other roles",
            call(STS, "AssumeRole", {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/ReadOnly", "roleSessionName": "bob"}),
            expect=0,
            params={"protected_roles": ["arn:aws:iam::*:role/BreakGlass*"]},
        ),
        Case(
            "no protected roles configured",
            call(
                STS, "AssumeRole", {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/BreakGlassAdmin", "roleSessionName": "bob"}
            ),
            expect=0,
        ),
        Case(
            "a service assuming it",
            {
                **call(STS, "AssumeRole", {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/BreakGlassAdmin"}),
                "userIdentity": {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
            },
            expect=0,
            params={"protected_roles": ["arn:aws:iam::*:role/BreakGlass*"]},
        ),
    ],
)
def sts_protected_role_assumed(e: Event, p: Params) -> Hit | None:
    """AssumeRole of a role matching `protected_roles` (ARN shell patterns; none by default, so the rule
    is quiet until the team lists its break-glass or automation-only roles). Denied attempts count by
    default; AWS services assuming the role are not findings."""
    protected = p["protected_roles"]  # item access: AssumeRole is frequent and the list usually empty
    if not protected:
        return None
    role = e.text("requestParameters", "roleArn")
    if not role or not matches_any(role, protected):
        return None
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Protected role", role, "assumed", key=f"{actor(e)}|{role}")


def _mfa_failure(t: float, user: str = "alice", mfa: str = "Yes", outcome: str = "Failure") -> dict[str, Any]:
    identity = {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEALICE",
        "accountId": ACCOUNT,
        "accessKeyId": "",
        "userName": user,
    }
    return console_sign_in(identity, outcome, t, "203.0.113.66", mfa)


@threshold(
    id="console-sign-in-mfa-failures",
    title="Repeated console sign-ins that passed the password but failed MFA",
    severity="medium",
    attack=("T1621", "T1110"),
    events={SIGNIN: ["ConsoleLogin"]},
    params={"failures": 3, "window": "10m"},
    threshold="failures",
    window="window",
    dedup="1h",
    runbook=(
        "Someone has this user's password and is failing the second factor. Ask the user whether it was them; if "
        "not, reset the password at once, check the MFA device is still theirs, and look up the source addresses."
    ),
    cases=[
        Case("three MFA failures in five minutes", [_mfa_failure(i * 2) for i in range(3)], expect=1, no_form=SIGN_IN),
        Case("two MFA failures (a mistyped code)", [_mfa_failure(i * 2) for i in range(2)], expect=0),
        Case(
            "password failures without MFA (brute-force rules' job)",
            [_mfa_failure(i, mfa="No") for i in range(5)],
            expect=0,
        ),
        Case("successful MFA sign-ins", [_mfa_failure(i, outcome="Success") for i in range(5)], expect=0),
        Case("three users, one failure each", [_mfa_failure(i, user=f"u{i}") for i in range(3)], expect=0),
    ],
)
def console_sign_in_mfa_failures(e: Event, p: Params) -> Step | None:
    """At least `failures` failed console sign-ins with `MFAUsed: Yes` for one user within `window`: the
    password was right and the second factor failed, so someone holds the password (or is pushing MFA
    prompts at the user). Sign-in events are console events by nature; they have no CloudFormation form."""
    if text(e.response.get("ConsoleLogin")) != "Failure" or e.text("additionalEventData", "MFAUsed") != "Yes":
        return None
    user = text(e.identity.get("userName")) or text(e.identity.get("arn")) or e.identity_type
    return Step(f"{e.account}|{user}") if user else None


TOOL_AGENTS = ["trufflehog", "pacu", "cloudfox", "weirdaal", "cloudgoat", "kali", "parrot", "pentoo"]


# Tool names found per user agent, per configured list: user agents repeat, so each is searched once.
_SEEN: dict[int, tuple[list[str], dict[str, str]]] = {}
_SEEN_LIMIT = 4096


def _tool_in(agent: str, agents: list[str]) -> str:
    """The first of `agents` (lowercase substrings) in the user agent, else ""."""
    entry = _SEEN.get(id(agents))
    if entry is None or entry[0] is not agents:
        if len(_SEEN) > 64:
            _SEEN.clear()
        entry = _SEEN[id(agents)] = (agents, {})
    seen = entry[1]
    found = seen.get(agent)
    if found is None:
        lowered = agent.lower()
        found = next((a for a in agents if type(a) is str and a and a.lower() in lowered), "")
        if len(seen) >= _SEEN_LIMIT:
            seen.clear()
        seen[agent] = found
    return found


# The calls key validators and attack tools make first (whose keys are these, what may they do, what is
# there): the rule watches these rather than every event, which would cost every event a check.
FIRST_CALLS = {
    STS: ANY,
    "iam.amazonaws.com": ANY,
    "organizations.amazonaws.com": ANY,
    "s3.amazonaws.com": ["ListBuckets"],
    "ec2.amazonaws.com": ["DescribeInstances", "DescribeRegions"],
    "secretsmanager.amazonaws.com": ["ListSecrets"],
    "lambda.amazonaws.com": ["ListFunctions20150331"],
}
TRUFFLEHOG = "TruffleHog"
KALI_CLI = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9-amd64 exe/x86_64.kali.2024 prompt/off command/sts.get-caller-identity"
)


@match(
    id="attack-tool-user-agent",
    title="Call made with a known attack or key-validation tool",
    severity="high",
    attack=("T1087.004", "T1078.004"),
    events=FIRST_CALLS,
    params={"user_agents": TOOL_AGENTS},
    dedup="1h",
    runbook=(
        "The user agent names a tool that validates leaked keys (TruffleHog) or attacks AWS accounts (Pacu, "
        "CloudFox, a Kali or Parrot Linux CLI). Unless it is the team's own red team (allowlist it), treat the "
        "credentials as leaked: deactivate the key or revoke the sessions and review what else they did."
    ),
    cases=[
        Case(
            "TruffleHog checks a key",
            call(STS, "GetCallerIdentity", userAgent=TRUFFLEHOG),
            expect=1,
            no_form=USER_AGENT,
        ),
        Case(
            "TruffleHog checks a key, denied (a denied probe is a probe with a leaked key)",
            call(STS, "GetCallerIdentity", userAgent=TRUFFLEHOG, **failed()),
            expect=1,
            no_form=USER_AGENT,
        ),
        Case("the same call in the console (no tool in the agent)", console(call(STS, "GetCallerIdentity")), expect=0),
        Case("the same call through a CloudFormation stack", stack(call(STS, "GetCallerIdentity")), expect=0),
        Case(
            "aws-cli from Kali Linux",
            call("iam.amazonaws.com", "ListUsers", userAgent=KALI_CLI, userIdentity=iam_user("ci")),
            expect=1,
            no_form=USER_AGENT,
        ),
        Case(
            "Pacu module",
            call(
                "ec2.amazonaws.com",
                "DescribeInstances",
                userAgent="Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux lang/python#3.11 Pacu",
            ),
            expect=1,
            no_form=USER_AGENT,
        ),
        Case("ordinary aws-cli", call(STS, "GetCallerIdentity"), expect=0),
        Case(
            "no tool names configured",
            call(STS, "GetCallerIdentity", userAgent=TRUFFLEHOG),
            expect=0,
            params={"user_agents": []},
        ),
    ],
)
def attack_tool_user_agent(e: Event, p: Params) -> Hit | None:
    """A call whose user agent names a tool of `user_agents` (case-insensitive substrings): key validators
    such as TruffleHog, AWS attack frameworks (Pacu, CloudFox, WeirdAAL) and the CLI of penetration-testing
    Linux distributions (Kali, Parrot, Pentoo). The rule watches the calls such tools begin with (STS, IAM
    and Organizations calls, listing buckets, instances, regions, secrets and functions); a tool that
    never makes one of them is missed. Denied calls count: probing with a leaked key is the behaviour. A
    user agent is set by the client and an attacker can change it, so this catches the careless, not the
    careful. Calls AWS makes itself are not findings."""
    agent = e.raw.get("userAgent")  # this runs on every event: read the field and the parameter directly
    tool = _tool_in(agent, p["user_agents"]) if type(agent) is str else ""
    if not tool or by_aws_service(e):
        return None
    return change_hit(
        e, f"{tool} in the user agent of {e.name}", key=f"{actor(e)}|{tool}", tool=tool, long_term_key=long_term_key(e)
    )
