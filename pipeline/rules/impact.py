"""Impact: hijacking the account's paid services (LLMjacking on Bedrock)."""

from __future__ import annotations

from pipeline.cases import call, failed, role_session, via_service
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import actor, attempted, by_aws_service, outcome

BEDROCK = "bedrock.amazonaws.com"
MODEL_ACCESS_EVENTS = ["PutFoundationModelEntitlement", "PutUseCaseForModelAccess", "CreateFoundationModelAgreement"]


@match(
    id="bedrock-model-access-enabled",
    title="Bedrock foundation model access enabled",
    severity="medium",
    attack="T1496.004",
    events={BEDROCK: MODEL_ACCESS_EVENTS},
    params={"include_failed": True},
    dedup="1h",
    runbook=(
        "Model access is normally enabled once, by an administrator, for a planned use. Ask the principal's "
        "owner; if unexpected, remove the model access, check InvokeModel usage and Bedrock costs in every "
        "region, check that model invocation logging is on, and revoke the principal's sessions and keys."
    ),
    cases=[
        Case(
            "access enabled then used",
            [
                call(BEDROCK, "PutUseCaseForModelAccess", userIdentity=role_session("dev")),
                call(
                    BEDROCK,
                    "CreateFoundationModelAgreement",
                    {"modelId": "anthropic.claude-3-sonnet"},
                    userIdentity=role_session("dev"),
                ),
                call(
                    BEDROCK,
                    "PutFoundationModelEntitlement",
                    {"modelId": "anthropic.claude-3-sonnet"},
                    userIdentity=role_session("dev"),
                ),
            ],
            expect=1,
        ),
        Case(
            "denied attempt",
            call(BEDROCK, "CreateFoundationModelAgreement", {"modelId": "anthropic.claude-3-sonnet"}, **failed()),
            expect=1,
        ),
        Case("application invoking a model", call(BEDROCK, "InvokeModel", {"modelId": "anthropic.claude-3"}), expect=0),
        Case(
            "entitlement the Marketplace put for the caller",
            call(BEDROCK, "PutFoundationModelEntitlement", {"modelId": "m"}, **via_service("aws-marketplace")),
            expect=1,
        ),
        Case(
            "failures ignored when configured",
            call(BEDROCK, "CreateFoundationModelAgreement", {"modelId": "anthropic.claude-3-sonnet"}, **failed()),
            expect=0,
            params={"include_failed": False},
        ),
    ],
)
def bedrock_model_access_enabled(e: Event, p: Params) -> Hit | None:
    """Enabling access to a Bedrock foundation model (submitting the use-case form, accepting the model
    agreement, creating the entitlement): the preparatory step of LLMjacking, where stolen credentials
    are used to run paid models for someone else. Applications only invoke models that are already
    enabled, so InvokeModel alone is not a finding. Denied attempts count (`include_failed`): probing
    model access is the behaviour. Calls AWS makes itself are not findings. A spike of InvokeModel per
    principal would be a threshold rule."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    model = e.text("requestParameters", "modelId")
    return Hit(
        key=actor(e),
        resources=(model,) if model else (),
        summary=f"{e.name} {model}".rstrip() + f" by {e.principal}{outcome(e)}",
        context={"model_id": model, "error_code": e.error_code},
    )
