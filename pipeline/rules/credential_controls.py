"""Credential controls: did AWS find a leaked key, or did someone remove an MFA device, weaken the password
policy, change who the account trusts to sign people in, or put a user in an administrators group?"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, call, role_session, root_identity, service_linked
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.change_common import by_person, change_hit, matches_any
from pipeline.rules.forms import with_denied

IAM = "iam.amazonaws.com"
QUARANTINE_POLICIES = (
    "AWSCompromisedKeyQuarantine",
    "AWSCompromisedKeyQuarantineV2",
    "AWSCompromisedKeyQuarantineV3",
    "AWSExposedCredentialPolicy_DO_NOT_REMOVE",
)


def _quarantine_name(e: Event) -> str:
    """The AWS quarantine policy a call attaches or puts, else ""."""
    name = e.text("requestParameters", "policyArn").rpartition("/")[2] or e.text("requestParameters", "policyName")
    return name if name in QUARANTINE_POLICIES else ""


@match(
    id="iam-compromised-key-quarantine-policy-attached",
    title="AWS quarantined a leaked access key",
    severity="high",
    attack=("T1552.001", "T1078.004"),
    events={IAM: ["AttachUserPolicy", "AttachGroupPolicy", "AttachRolePolicy", "PutUserPolicy"]},
    dedup="1d",
    runbook=(
        "AWS found this user's access key in public (a code repository, a paste) and attached a policy that "
        "blocks some actions. The key is in the open: deactivate and delete it, review every call made with it "
        "(including before the quarantine), then remove the quarantine policy once the user has a new key."
    ),
    cases=[
        Case(
            "AWS attaches the quarantine policy (AWS Internal agent)",
            call(
                IAM,
                "AttachUserPolicy",
                {"userName": "ci-deploy", "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"},
                userIdentity=role_session("support-automation", "aws"),
                userAgent="AWS Internal",
                sourceIPAddress="AWS Internal",
            ),
            expect=1,
        ),
        Case(
            "exposed-credential inline policy",
            call(
                IAM,
                "PutUserPolicy",
                {
                    "userName": "ci-deploy",
                    "policyName": "AWSExposedCredentialPolicy_DO_NOT_REMOVE",
                    "policyDocument": (
                        '{"Statement":[{"Effect":"Deny","Action":["iam:CreateAccessKey"],"Resource":["*"]}]}'
                    ),
                },
                userAgent="aws-internal/3 aws-sdk-java/1.11.706",
            ),
            expect=1,
        ),
        Case(
            "an administrator applying it by hand in the console",
            call(
                IAM,
                "AttachUserPolicy",
                {"userName": "ci-deploy", "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2"},
                sourceIPAddress="AWS Internal",
                userAgent="AWS Internal",
                sessionCredentialFromConsole="true",
            ),
            expect=1,
        ),
        Case(
            "a deny-all policy of the team's own",
            call(IAM, "PutUserPolicy", {"userName": "ci-deploy", "policyName": "DenyAll", "policyDocument": "{}"}),
            expect=0,
        ),
        Case(
            "denied attach (nothing quarantined)",
            call(
                IAM,
                "AttachUserPolicy",
                {"userName": "x", "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"},
                errorCode="AccessDenied",
            ),
            expect=0,
        ),
    ],
)
def iam_compromised_key_quarantine_policy_attached(e: Event, p: Params) -> Hit | None:
    """AWS's leaked-key quarantine policy (AWSCompromisedKeyQuarantine, V2, V3, or the inline
    AWSExposedCredentialPolicy_DO_NOT_REMOVE) attached to a user: AWS found that user's access key in
    public. AWS itself usually makes the call, so here its calls are the finding; a person applying the
    policy by hand (console, CloudFormation) is reported too. Only successful calls count."""
    name = _quarantine_name(e)
    if not name or not e.succeeded:
        return None
    target = (
        e.text("requestParameters", "userName")
        or e.text("requestParameters", "groupName")
        or e.text("requestParameters", "roleName")
    )
    return change_hit(e, "Leaked-key quarantine policy attached to", target, f"({name})", key=target, policy=name)


def _mfa_call(name: str, user: str = "bob", serial: str = "", **fields: Any) -> dict[str, Any]:
    return call(IAM, name, {"userName": user, "serialNumber": serial or f"arn:aws:iam::{ACCOUNT}:mfa/{user}"}, **fields)


@match(
    id="iam-mfa-device-removed",
    title="MFA device deactivated or deleted for an IAM user",
    severity="medium",
    attack=("T1556.006", "T1098"),
    events={IAM: ["DeactivateMFADevice", "DeleteVirtualMFADevice"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "Ask the user whether they replaced their device (an EnableMFADevice for them should follow within "
        "minutes). If not: re-enroll MFA, reset the user's password and keys, and review the user's sign-ins and "
        "the principal that removed the device."
    ),
    cases=[
        *with_denied(
            "another user's device deactivated",
            _mfa_call("DeactivateMFADevice"),
            failed_expect=0,
            failed_why="the device stays",
        ),
        Case(
            "virtual device deleted",
            call(IAM, "DeleteVirtualMFADevice", {"serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/bob"}),
            expect=1,
        ),
        Case(
            "root's own device (root-mfa-removed reports it)",
            call(
                IAM,
                "DeactivateMFADevice",
                {"serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/root-account-mfa-device"},
                userIdentity=root_identity(),
            ),
            expect=0,
        ),
        Case("device enabled", _mfa_call("EnableMFADevice"), expect=0),
    ],
)
def iam_mfa_device_removed(e: Event, p: Params) -> Hit | None:
    """DeactivateMFADevice or DeleteVirtualMFADevice for an IAM user: the user's password (or a stolen one)
    then opens the console alone. Root's own device is root-mfa-removed's. Only successful calls count by
    default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    serial = e.text("requestParameters", "serialNumber")
    if serial.endswith(":mfa/root-account-mfa-device") or (
        e.identity_type == "Root" and not e.text("requestParameters", "userName")
    ):
        return None
    user = e.text("requestParameters", "userName") or serial.rpartition("/")[2]
    return change_hit(e, "MFA device removed for user", user, key=f"{user}|{serial}", serial_number=serial)


def _weaknesses(request: dict[str, Any], p: Params) -> list[str]:
    found = []
    length = request.get("minimumPasswordLength")
    if not isinstance(length, int) or isinstance(length, bool) or length < p.min_length:
        found.append(f"minimum length {length if isinstance(length, int) else 'default (8)'} < {p.min_length}")
    for flag in ("requireSymbols", "requireNumbers", "requireUppercaseCharacters", "requireLowercaseCharacters"):
        if request.get(flag) is not True:
            found.append(f"{flag} off")
    reuse = request.get("passwordReusePrevention")
    if not isinstance(reuse, int) or isinstance(reuse, bool) or reuse < p.min_reuse_prevention:
        found.append(f"reuse prevention {reuse if isinstance(reuse, int) else 'off'} < {p.min_reuse_prevention}")
    return found


STRONG = {
    "minimumPasswordLength": 14,
    "requireSymbols": True,
    "requireNumbers": True,
    "requireUppercaseCharacters": True,
    "requireLowercaseCharacters": True,
    "allowUsersToChangePassword": True,
    "passwordReusePrevention": 24,
    "maxPasswordAge": 90,
}


@match(
    id="iam-password-policy-weakened",
    title="Account password policy weakened or deleted",
    severity="medium",
    attack=("T1556", "T1201"),
    events={IAM: ["UpdateAccountPasswordPolicy", "DeleteAccountPasswordPolicy"]},
    params={"min_length": 14, "min_reuse_prevention": 24, "include_failed": False},
    dedup="1h",
    runbook=(
        "Compare the new policy with the organization's standard (CIS asks for length 14 and 24 remembered "
        "passwords). If the change was not planned, restore the policy from infrastructure code and ask the "
        "principal's owner why it changed."
    ),
    cases=[
        *with_denied(
            "length cut to 6",
            call(IAM, "UpdateAccountPasswordPolicy", STRONG | {"minimumPasswordLength": 6}),
            failed_expect=0,
            failed_why="the policy is unchanged",
        ),
        Case("policy deleted", call(IAM, "DeleteAccountPasswordPolicy"), expect=1),
        Case(
            "symbols no longer required",
            call(IAM, "UpdateAccountPasswordPolicy", STRONG | {"requireSymbols": False}),
            expect=1,
        ),
        Case("policy meeting the standard", call(IAM, "UpdateAccountPasswordPolicy", STRONG), expect=0),
        Case(
            "a team standard of 12 characters",
            call(IAM, "UpdateAccountPasswordPolicy", STRONG | {"minimumPasswordLength": 12}),
            expect=0,
            params={"min_length": 12},
        ),
        Case("policy read", call(IAM, "GetAccountPasswordPolicy"), expect=0),
    ],
)
def iam_password_policy_weakened(e: Event, p: Params) -> Hit | None:
    """DeleteAccountPasswordPolicy, or UpdateAccountPasswordPolicy leaving the policy below the standard:
    shorter than `min_length`, a character class not required, or fewer than `min_reuse_prevention`
    remembered passwords (a field the update leaves out falls back to AWS's weak default). CloudTrail does
    not show the previous policy, so a policy that was already weak is reported when rewritten. Only
    successful calls count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    weak = ["policy deleted"] if e.name == "DeleteAccountPasswordPolicy" else _weaknesses(e.request, p)
    if not weak:
        return None
    return change_hit(
        e, "Password policy of account", e.account, f"weakened ({'; '.join(weak)})", key=e.account, weaknesses=weak
    )


IDP_EVENTS = [
    "CreateSAMLProvider",
    "UpdateSAMLProvider",
    "DeleteSAMLProvider",
    "CreateOpenIDConnectProvider",
    "UpdateOpenIDConnectProviderThumbprint",
    "AddClientIDToOpenIDConnectProvider",
    "DeleteOpenIDConnectProvider",
]


@match(
    id="iam-identity-provider-changed",
    title="SAML or OIDC identity provider created or changed",
    severity="high",
    attack=("T1484.002", "T1556.007"),
    events={IAM: IDP_EVENTS},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "An identity provider decides who may become which role. Confirm the provider and its metadata or "
        "thumbprint with the identity team; if unknown, delete it (or restore its metadata), list the roles that "
        "trust it and their AssumeRoleWithSAML / AssumeRoleWithWebIdentity calls, and investigate the principal."
    ),
    cases=[
        *with_denied(
            "SAML provider created",
            call(
                IAM,
                "CreateSAMLProvider",
                {"name": "okta-prod", "sAMLMetadataDocument": "<EntityDescriptor ...>"},
                {"sAMLProviderArn": f"arn:aws:iam::{ACCOUNT}:saml-provider/okta-prod"},
            ),
            failed_expect=0,
            failed_why="no provider is trusted",
        ),
        Case(
            "OIDC provider for any GitHub repository",
            call(
                IAM,
                "CreateOpenIDConnectProvider",
                {
                    "url": "https://token.actions.githubusercontent.com",
                    "clientIDList": ["sts.amazonaws.com"],
                    "thumbprintList": ["6938fd4d98bab03faadb97b34396831e3780aea1"],
                },
            ),
            expect=1,
        ),
        Case(
            "SAML metadata replaced",
            call(
                IAM,
                "UpdateSAMLProvider",
                {"sAMLProviderArn": f"arn:aws:iam::{ACCOUNT}:saml-provider/okta-prod", "sAMLMetadataDocument": "<x/>"},
            ),
            expect=1,
        ),
        Case(
            "IAM Identity Center's service-linked role",
            call(
                IAM,
                "CreateSAMLProvider",
                {"name": "AWSSSO_abc"},
                userIdentity=service_linked("sso", "AWSServiceRoleForSSO"),
            ),
            expect=0,
        ),
        Case("providers listed", call(IAM, "ListSAMLProviders"), expect=0),
    ],
)
def iam_identity_provider_changed(e: Event, p: Params) -> Hit | None:
    """A SAML or OIDC identity provider created, its metadata, thumbprint or audiences changed, or deleted:
    whoever controls a trusted provider can mint sign-ins to the roles that trust it (and a deleted one
    locks people out). IAM Identity Center managing its own providers (a service-linked role) is AWS
    itself; a stack or a console session is the person behind it. Only successful calls count by default."""
    if not by_person(e, p.include_failed):
        return None
    provider = (
        e.text("requestParameters", "name")
        or e.text("requestParameters", "url")
        or e.text("requestParameters", "sAMLProviderArn")
        or e.text("requestParameters", "openIDConnectProviderArn")
    )
    return change_hit(e, f"{e.name}:", provider)


@match(
    id="iam-user-added-to-admin-group",
    title="IAM user added to an administrators group",
    severity="high",
    attack=("T1098", "T1078.004"),
    events={IAM: ["AddUserToGroup"]},
    params={"admin_groups": ["*admin*"], "include_failed": False},
    dedup="1h",
    runbook=(
        "Confirm the membership with the user's manager. If unexpected: remove the user from the group, disable "
        "its keys and password, and review what the user and the principal that added it did since."
    ),
    cases=[
        *with_denied(
            "user added to Administrators",
            call(IAM, "AddUserToGroup", {"groupName": "Administrators", "userName": "svc-report"}),
            failed_expect=0,
            failed_why="membership unchanged",
        ),
        Case(
            "a team's own admin group name",
            call(IAM, "AddUserToGroup", {"groupName": "breakglass", "userName": "eve"}),
            expect=1,
            params={"admin_groups": ["breakglass", "*admin*"]},
        ),
        Case(
            "user added to developers",
            call(IAM, "AddUserToGroup", {"groupName": "developers", "userName": "eve"}),
            expect=0,
        ),
    ],
)
def iam_user_added_to_admin_group(e: Event, p: Params) -> Hit | None:
    """AddUserToGroup into a group whose name matches `admin_groups` (shell patterns, case-insensitive;
    by default any name containing "admin"). Only successful calls count by default; calls AWS makes
    itself are not findings."""
    group = e.text("requestParameters", "groupName")
    if not group or not matches_any(group, p.admin_groups) or not by_person(e, p.include_failed):
        return None
    user = e.text("requestParameters", "userName")
    return change_hit(e, f"User {user} added to group", group, key=f"{user}|{group}", user=user)
