"""IAM changes as a record: what did people change in IAM (users, roles, groups, credentials, policies,
providers)? Compliance evidence kept at info severity; the dangerous changes have rules of their own."""

from __future__ import annotations

from pipeline.cases import call, role_session, service_linked
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.change_common import by_person, change_hit, first_text
from pipeline.rules.cis_identity import IAM_POLICY_EVENTS
from pipeline.rules.forms import with_denied

IAM = "iam.amazonaws.com"
CHANGES = (
    "Add",
    "Attach",
    "Change",
    "Create",
    "Deactivate",
    "Delete",
    "Detach",
    "Enable",
    "Put",
    "Remove",
    "Reset",
    "Resync",
    "Set",
    "Tag",
    "Untag",
    "Update",
    "Upload",
)
POLICY_CHANGES = frozenset(IAM_POLICY_EVENTS)
TARGETS = (
    "userName",
    "roleName",
    "groupName",
    "policyArn",
    "policyName",
    "instanceProfileName",
    "serialNumber",
    "name",
    "url",
    "sAMLProviderArn",
    "openIDConnectProviderArn",
    "accessKeyId",
    "serverCertificateName",
)


@match(
    id="iam-configuration-changed",
    title="IAM configuration changed",
    severity="info",
    attack=("T1098", "T1136.003"),
    events={IAM: "*"},
    params={"include_failed": False},
    dedup="1h",
    runbook="A record of the change for audits. Review it when investigating the principal or the identity changed.",
    cases=[
        *with_denied(
            "role created",
            call(IAM, "CreateRole", {"roleName": "reporting", "assumeRolePolicyDocument": "{}"}),
            failed_expect=0,
            failed_why="nothing changed",
        ),
        Case("user password changed by the user", call(IAM, "ChangePassword"), expect=1),
        Case(
            "access key created by Terraform",
            call(IAM, "CreateAccessKey", {"userName": "ci"}, userIdentity=role_session("terraform", "run-42")),
            expect=1,
        ),
        Case("roles listed", call(IAM, "ListRoles"), expect=0),
        Case(
            "policy attached (recorded by cis-iam-policy-changes)",
            call(
                IAM,
                "AttachRolePolicy",
                {"roleName": "reporting", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            ),
            expect=0,
        ),
        Case(
            "service-linked role created by its service",
            call(
                IAM,
                "CreateServiceLinkedRole",
                {"aWSServiceName": "autoscaling.amazonaws.com"},
                userIdentity=service_linked("elasticloadbalancing", "AWSServiceRoleForElasticLoadBalancing"),
            ),
            expect=0,
        ),
    ],
)
def iam_configuration_changed(e: Event, p: Params) -> Hit | None:
    """A successful IAM call that changes something (its name starts with Create, Delete, Update, Put,
    Attach, Detach, Add, Remove, ...), made by a person: directly, in the console or through a stack. Policy
    changes are cis-iam-policy-changes' record and not repeated here. One finding per principal, call and
    target per hour. Only successful calls count by default; calls AWS makes itself are not findings."""
    if not e.name.startswith(CHANGES) or e.name in POLICY_CHANGES or not by_person(e, p.include_failed):
        return None
    return change_hit(e, f"IAM {e.name}", first_text(e, *TARGETS))
