"""CIS AWS Foundations 4.1, 4.2, 4.3, 4.4 and 4.6: who signs in and calls, and IAM policy changes."""

from __future__ import annotations

from typing import Any

from pipeline.cases import SIGN_IN, call, role_session, root_identity
from pipeline.event import Event, text
from pipeline.rule import Case, Gate, Hit, Params, match
from pipeline.rules.cis_common import actor, change_monitor

ANY = "*"


# --- 4.1 -------------------------------------------------------------------------------------------


def _denied(code: str) -> bool:
    return code.endswith("UnauthorizedOperation") or code.startswith("AccessDenied")


@match(
    id="cis-unauthorized-api-calls",
    title="Unauthorized API calls (CIS 4.1)",
    severity="info",
    attack=("T1580", "T1078.004"),
    events={ANY: ANY},
    gates=[Gate.of("errorCode")],
    dedup="1h",
    runbook=(
        "Look at what the caller tried (context.event_name, the finding's events) and whether the "
        "principal should be probing those APIs. A burst of denials across services from one "
        "principal often means stolen credentials being enumerated; rotate them if the caller is unexpected."
    ),
    cases=[
        Case(
            "ec2 unauthorized operation",
            call(
                "ec2.amazonaws.com",
                "GetPasswordData",
                {"instanceId": "i-0abc"},
                errorCode="Client.UnauthorizedOperation",
                errorMessage="You are not authorized to perform this operation.",
                userIdentity=role_session("app", "s1"),
            ),
            expect=1,
        ),
        Case(
            "access denied",
            call(
                "s3.amazonaws.com",
                "GetObject",
                {"bucketName": "b", "key": "k"},
                errorCode="AccessDenied",
                errorMessage="Access Denied",
            ),
            expect=1,
        ),
        Case(
            "access denied exception",
            call(
                "secretsmanager.amazonaws.com", "GetSecretValue", {"secretId": "db"}, errorCode="AccessDeniedException"
            ),
            expect=1,
        ),
        Case(
            "one finding per role per hour across sessions",
            [
                call(
                    "ec2.amazonaws.com",
                    "DescribeInstances",
                    errorCode="Client.UnauthorizedOperation",
                    userIdentity=role_session("app", f"s{i}"),
                )
                for i in range(5)
            ],
            expect=1,
        ),
        Case(
            "throttling is not a denial",
            call("ec2.amazonaws.com", "DescribeInstances", errorCode="Client.RequestLimitExceeded"),
            expect=0,
        ),
        Case("throttling exception", call("kms.amazonaws.com", "Decrypt", errorCode="ThrottlingException"), expect=0),
        Case("success", call("s3.amazonaws.com", "ListBuckets"), expect=0),
        Case(
            "log delivery service excluded",
            call(
                "s3.amazonaws.com", "PutObject", errorCode="AccessDenied", sourceIPAddress="delivery.logs.amazonaws.com"
            ),
            expect=0,
        ),
        Case(
            "HeadBucket excluded",
            call("s3.amazonaws.com", "HeadBucket", {"bucketName": "b"}, errorCode="AccessDenied"),
            expect=0,
        ),
    ],
)
def unauthorized_api_calls(e: Event, p: Params) -> Hit | None:
    """An API call denied for lack of permission. CIS filter:
    `($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*")`, with the v1.5
    exclusions of log delivery (`sourceIPAddress = delivery.logs.amazonaws.com`) and `HeadBucket`
    probes, which deny routinely. Runs on every event, so it reads errorCode first and stops there
    when the call succeeded. One finding per caller (the role behind a session) per hour."""
    code = e.raw.get("errorCode")
    if type(code) is not str or not code or not _denied(code):
        return None
    if e.name == "HeadBucket" or e.raw.get("sourceIPAddress") == "delivery.logs.amazonaws.com":
        return None
    who = actor(e)
    return Hit(
        key=who,
        summary=f"{e.name} on {e.source} denied ({code}) for {e.principal or who}",
        context={"error_code": code, "error_message": text(e.raw.get("errorMessage"))[:512]},
    )


# --- 4.2 -------------------------------------------------------------------------------------------


def _console_login(*, mfa: str | None, outcome: str = "Success", identity: dict | None = None, **fields: Any) -> dict:
    extra = {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No"}
    if mfa is not None:
        extra["MFAUsed"] = mfa
    record = call(
        "signin.amazonaws.com", "ConsoleLogin", response={"ConsoleLogin": outcome}, additionalEventData=extra, **fields
    )
    record["requestParameters"] = None
    if identity is not None:
        record["userIdentity"] = identity
    return record


@match(
    id="console-login-without-mfa",
    title="Console sign-in without MFA (CIS 4.2)",
    severity="low",
    attack="T1078.004",
    events={ANY: ["ConsoleLogin"]},
    dedup="1h",
    runbook=(
        "Confirm with the user that they signed in (time, source IP, user agent). Require MFA for "
        "the user (an IAM policy denying actions without aws:MultiFactorAuthPresent) or move them to "
        "IAM Identity Center. If the sign-in was not theirs, disable the login profile and rotate keys."
    ),
    cases=[
        Case("iam user without mfa", _console_login(mfa="No"), expect=1, no_form=SIGN_IN),
        Case("mfa field missing", _console_login(mfa=None), expect=1, no_form=SIGN_IN),
        Case("iam user with mfa", _console_login(mfa="Yes"), expect=0),
        Case(
            "failed sign-in",
            _console_login(mfa="No", outcome="Failure", errorMessage="Failed authentication"),
            expect=0,
        ),
        Case(
            "sso federated sign-in",
            _console_login(
                mfa="No", identity=role_session("AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com")
            ),
            expect=0,
        ),
        Case("root sign-in is left to root usage", _console_login(mfa="No", identity=root_identity()), expect=0),
    ],
)
def console_login_without_mfa(e: Event, p: Params) -> Hit | None:
    """An IAM user signed in to the console without MFA. CIS filter (the variant that leaves out
    SSO and assumed-role sign-ins and failed attempts): `($.eventName = "ConsoleLogin") &&
    ($.additionalEventData.MFAUsed != "Yes") && ($.userIdentity.type = "IAMUser") &&
    ($.responseElements.ConsoleLogin = "Success")`. A missing MFAUsed counts as no MFA."""
    if e.identity_type != "IAMUser" or text(e.response.get("ConsoleLogin")) != "Success":
        return None
    if text(e.additional.get("MFAUsed")) == "Yes":
        return None
    user = e.user_name or e.principal
    return Hit(
        key=e.principal or user,
        resources=(e.principal,) if e.principal else (),
        summary=f"{user} signed in to the console without MFA from {e.source_ip or 'unknown address'}",
        context={"mfa_used": text(e.additional.get("MFAUsed")) or "(not recorded)"},
    )


# --- 4.3 -------------------------------------------------------------------------------------------


@match(
    id="cis-root-account-usage",
    title="Root account usage (CIS 4.3)",
    severity="medium",
    attack="T1078.004",
    events={ANY: ANY},
    gates=[Gate.of("userIdentity.type", equals=["Root"])],
    dedup="1h",
    runbook=(
        "The root user should only be used for the few tasks that need it. Confirm who holds the root "
        "credentials and why they were used; if unexpected, reset the root password, replace its MFA "
        "device, delete any root access keys and review what the calls changed."
    ),
    cases=[
        Case("root console call", call("iam.amazonaws.com", "ListUsers", userIdentity=root_identity()), expect=1),
        Case("root sign-in", _console_login(mfa="Yes", identity=root_identity()), expect=1, no_form=SIGN_IN),
        Case(
            "failed root call still counts",
            call(
                "s3.amazonaws.com",
                "PutBucketPolicy",
                {"bucketName": "b"},
                errorCode="AccessDenied",
                userIdentity=root_identity(),
            ),
            expect=1,
            no_form={"cloudformation": "CIS 4.3 leaves out calls with invokedBy; root's CreateStack is root usage"},
        ),
        Case(
            "one finding per account per hour",
            [
                call("iam.amazonaws.com", "ListUsers", userIdentity=root_identity()),
                call("iam.amazonaws.com", "CreateAccessKey", userIdentity=root_identity()),
            ],
            expect=1,
        ),
        Case(
            "invoked by a service",
            call("s3.amazonaws.com", "PutObject", userIdentity=root_identity(invokedBy="cloudtrail.amazonaws.com")),
            expect=0,
        ),
        Case(
            "service event",
            call("health.amazonaws.com", "AWSHealthEvent", userIdentity=root_identity(), eventType="AwsServiceEvent"),
            expect=0,
        ),
        Case("iam user", call("iam.amazonaws.com", "ListUsers"), expect=0),
    ],
)
def root_account_usage(e: Event, p: Params) -> Hit | None:
    """The root user made a call itself (no AWS service acting for it). CIS filter: `$.userIdentity.type = "Root" &&
    $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent"` (an invokedBy key
    with any value, even null, exists). Runs on every event, so it looks at the identity type
    first. Failed calls count. One finding per account per hour."""
    ident = e.raw.get("userIdentity")
    if type(ident) is not dict or ident.get("type") != "Root":
        return None
    if "invokedBy" in ident or e.raw.get("eventType") == "AwsServiceEvent":
        return None
    account = e.account or text(ident.get("accountId"))
    return Hit(
        key=account or e.principal,
        resources=(e.principal,) if e.principal else (),
        summary=f"root user of {account or 'unknown account'} called {e.name} on {e.source} "
        f"from {e.source_ip or 'unknown address'}",
        context={"error_code": e.error_code},
    )


# --- 4.6 -------------------------------------------------------------------------------------------


@match(
    id="cis-console-authentication-failures",
    title="Console authentication failures (CIS 4.6)",
    severity="info",
    attack="T1110",
    events={ANY: ["ConsoleLogin"]},
    dedup="1h",
    runbook=(
        "One failure is usually a typo. Many for one user, or for many users from one address, is "
        "password guessing: check the source address, lock or reset the targeted users, and make sure MFA is on."
    ),
    cases=[
        Case(
            "failed password",
            _console_login(mfa="No", outcome="Failure", errorMessage="Failed authentication"),
            expect=1,
            no_form=SIGN_IN,
        ),
        Case(
            "several failures of one user from one address",
            [_console_login(mfa="No", outcome="Failure", errorMessage="Failed authentication") for _ in range(4)],
            expect=1,
            no_form=SIGN_IN,
        ),
        Case(
            "unknown user",
            _console_login(
                mfa="No",
                outcome="Failure",
                errorMessage="Failed authentication",
                identity={
                    "type": "IAMUser",
                    "accountId": "111122223333",
                    "accessKeyId": "",
                    "userName": "HIDDEN_DUE_TO_SECURITY_REASONS",
                },
            ),
            expect=1,
            no_form=SIGN_IN,
        ),
        Case("successful sign-in", _console_login(mfa="Yes"), expect=0),
        Case(
            "other failure message",
            _console_login(mfa="No", outcome="Failure", errorMessage="No username found in supplied account"),
            expect=0,
        ),
    ],
)
def console_authentication_failures(e: Event, p: Params) -> Hit | None:
    """A console sign-in failed its password check. CIS filter: `($.eventName = ConsoleLogin) &&
    ($.errorMessage = "Failed authentication")`. One finding per user and source address per hour."""
    if text(e.raw.get("errorMessage")) != "Failed authentication":
        return None
    user = e.user_name or "unknown user"
    return Hit(
        key=f"{e.account}|{user}|{e.source_ip}",
        summary=f"failed console sign-in for {user} from {e.source_ip or 'unknown address'}",
        context={"user_name": user},
    )


# --- 4.4 -------------------------------------------------------------------------------------------

IAM_POLICY_EVENTS = [
    "DeleteGroupPolicy",
    "DeleteRolePolicy",
    "DeleteUserPolicy",
    "PutGroupPolicy",
    "PutRolePolicy",
    "PutUserPolicy",
    "CreatePolicy",
    "DeletePolicy",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
]
IAM = "iam.amazonaws.com"

change_monitor(
    control="CIS 4.4",
    id="cis-iam-policy-changes",
    title="IAM policy changes (CIS 4.4)",
    severity="info",
    attack=("T1098", "T1098.003"),
    events={ANY: IAM_POLICY_EVENTS},
    description=(
        "A change to an IAM policy: inline policies put or deleted, managed policies or versions created "
        "or deleted, policies attached or detached. CIS filter: the 16 event names, with no eventSource, "
        "so Organizations' CreatePolicy/DeletePolicy match too, as they would trip the CIS alarm. "
        "Failed calls match as well. One finding per caller, call and target per hour."
    ),
    runbook=(
        "Check that the change came from the expected pipeline or administrator. Read the policy "
        "(requestParameters.policyDocument or the attached policyArn): broad grants such as "
        "AdministratorAccess or iam:* to a new principal are how attackers keep access."
    ),
    cases=[
        Case(
            "attach admin policy",
            call(
                IAM,
                "AttachUserPolicy",
                {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess", "userName": "backup-svc"},
            ),
            expect=1,
        ),
        Case(
            "inline role policy",
            call(
                IAM,
                "PutRolePolicy",
                {
                    "roleName": "app",
                    "policyName": "s3-read",
                    "policyDocument": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",'
                    '"Resource":"*"}]}',
                },
            ),
            expect=1,
        ),
        Case(
            "new policy version",
            call(
                IAM,
                "CreatePolicyVersion",
                {"policyArn": "arn:aws:iam::111122223333:policy/app", "setAsDefault": True, "policyDocument": "{}"},
            ),
            expect=1,
        ),
        Case(
            "failed detach still counts",
            call(
                IAM,
                "DetachRolePolicy",
                {"roleName": "audit", "policyArn": "arn:aws:iam::aws:policy/SecurityAudit"},
                errorCode="AccessDenied",
            ),
            expect=1,
        ),
        Case(
            "different targets are different findings",
            [
                call(IAM, "AttachRolePolicy", {"roleName": "a", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
                call(
                    IAM, "AttachRolePolicy", {"roleName": "b", "policyArn": "arn:aws:iam::aws:policy/PowerUserAccess"}
                ),
            ],
            expect=2,
        ),
        Case(
            "reading a policy",
            call(IAM, "GetPolicy", {"policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
            expect=0,
        ),
        Case(
            "trust policy update is not in the CIS list",
            call(IAM, "UpdateAssumeRolePolicy", {"roleName": "app", "policyDocument": "{}"}),
            expect=0,
        ),
    ],
)
