"""Privilege escalation: taking over another identity's access by resetting its credentials."""

from __future__ import annotations

from pipeline.cases import call, failed, role_session, via_service
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import actor, by_aws_service, caller_user_name, targets_other_user

IAM = "iam.amazonaws.com"


@match(
    id="iam-login-profile-updated-for-another-user",
    title="Console password of another IAM user changed",
    severity="high",
    attack=("T1098", "T1078.004"),
    events={IAM: ["UpdateLoginProfile"]},
    dedup="1h",
    runbook=(
        "Confirm with the target user that a password reset was requested (help-desk resets should use "
        "passwordResetRequired). If not: reset the password again with passwordResetRequired, check the "
        "user's ConsoleLogin events since the change, and investigate the principal."
    ),
    cases=[
        Case("password of another user reset", call(IAM, "UpdateLoginProfile", {"userName": "admin-bob"}), expect=1),
        Case(
            "role session resetting a user's password",
            call(
                IAM,
                "UpdateLoginProfile",
                {"userName": "admin-bob", "passwordResetRequired": True},
                userIdentity=role_session("helpdesk"),
            ),
            expect=1,
        ),
        Case("user updating own profile", call(IAM, "UpdateLoginProfile", {"userName": "alice"}), expect=0),
        Case("denied", call(IAM, "UpdateLoginProfile", {"userName": "admin-bob"}, **failed()), expect=0),
        Case(
            "a stack update changing the user's password",
            call(IAM, "UpdateLoginProfile", {"userName": "admin-bob"}, **via_service("cloudformation")),
            expect=1,
        ),
    ],
)
def iam_login_profile_updated_for_another_user(e: Event, p: Params) -> Hit | None:
    """UpdateLoginProfile setting the console password of a user other than the calling IAM user: whoever
    holds iam:UpdateLoginProfile can log in as any user with a password, and so take its permissions. A
    user's own password change (ChangePassword, or UpdateLoginProfile on itself) is not a finding. Only
    successful calls count; calls AWS makes itself are not findings. The context says whether the new
    password must be reset at first sign-in (the help-desk pattern)."""
    target = targets_other_user(e)
    if not target or by_aws_service(e) or not e.succeeded:
        return None
    reset = e.get("requestParameters", "passwordResetRequired") is True
    return Hit(
        key=f"{actor(e)}|{target}",
        resources=(target,),
        summary=f"Console password of {target} changed by {e.principal}",
        context={"target_user": target, "caller_user": caller_user_name(e), "password_reset_required": reset},
    )
