"""Credential access by volume: one principal reading many distinct secrets or SecureString parameters in a
short time (threshold rules; the per-call signals are in credential_access)."""

from __future__ import annotations

from typing import Any

from pipeline.cases import at, call, role_session, via_service
from pipeline.event import Event
from pipeline.rule import Case, Params
from pipeline.rules.attack_common import actor, by_aws_service
from pipeline.stateful.facts import Step
from pipeline.stateful.kinds import threshold

SECRETS = "secretsmanager.amazonaws.com"
SSM = "ssm.amazonaws.com"


def _secret_read(i: int, minutes: float, **fields: Any) -> dict[str, Any]:
    return call(SECRETS, "GetSecretValue", {"secretId": f"prod/secret-{i}"}, eventTime=at(minutes), **fields)


@threshold(
    id="secretsmanager-secret-harvesting",
    title="Many distinct secrets read by one principal",
    severity="high",
    attack="T1555.006",
    events={SECRETS: ["GetSecretValue"]},
    params={"secrets": 10, "window": "10m"},
    threshold="secrets",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=(
        "List the secrets the principal read in the window (GetSecretValue events). If this is not a known "
        "bootstrap or rotation job: revoke its sessions and keys, rotate every secret it read, and review "
        "what it did before (ListSecrets is the usual first step) and after."
    ),
    cases=[
        Case("ten secrets in two minutes", [_secret_read(i, i * 0.2) for i in range(10)], expect=1),
        Case("nine secrets", [_secret_read(i, i * 0.2) for i in range(9)], expect=0),
        Case("one secret read often", [_secret_read(0, i * 0.2) for i in range(30)], expect=0),
        Case("ten secrets over two hours", [_secret_read(i, i * 13) for i in range(10)], expect=0),
        Case("ten workloads one secret each",
             [_secret_read(i, i * 0.2, userIdentity=role_session(f"app{i}", "task")) for i in range(10)], expect=0),
        Case("a stack resolving every secret is its creator reading them",
             [_secret_read(i, i * 0.2, **via_service("cloudformation")) for i in range(12)], expect=1),
        Case("denied reads count as the attempt",
             [_secret_read(i, i * 0.2, errorCode="AccessDeniedException") for i in range(10)], expect=1),
    ],
)
def secretsmanager_secret_harvesting(e: Event, p: Params) -> Step | None:
    """At least `secrets` distinct secrets read with GetSecretValue by one principal (the role behind a
    session, so fresh sessions do not reset the count) within `window`: collection of the account's
    secrets, whatever credentials are used. Denied reads count, since trying every secret is the
    behaviour; calls AWS makes itself are not findings. Applications read the few secrets they need,
    usually the same ones again. BatchGetSecretValue is judged per call by
    secretsmanager-mass-secret-retrieval (stage 2 counts one fact per event and key)."""
    secret = e.text("requestParameters", "secretId")
    if by_aws_service(e) or not secret:
        return None
    return Step(actor(e), value=secret)


def _parameter_read(i: int, minutes: float, decrypt: bool = True, **fields: Any) -> dict[str, Any]:
    return call(SSM, "GetParameter", {"name": f"/creds/p{i}", "withDecryption": decrypt},
                      eventTime=at(minutes), **fields)


@threshold(
    id="ssm-securestring-harvesting",
    title="Many distinct SecureString parameters decrypted by one principal",
    severity="high",
    attack="T1555.006",
    events={SSM: ["GetParameter"]},
    params={"parameters": 20, "window": "10m"},
    threshold="parameters",
    window="window",
    distinct=True,
    dedup="1h",
    runbook=(
        "List the parameters the principal decrypted in the window. If this is not a known deployment or "
        "bootstrap job: revoke its sessions and keys, rotate the credentials stored in those parameters, "
        "and review its DescribeParameters calls and later activity."
    ),
    cases=[
        Case("twenty parameters one by one", [_parameter_read(i, i * 0.1) for i in range(20)], expect=1),
        Case("the same parameter again and again", [_parameter_read(0, i * 0.1) for i in range(30)], expect=0),
        Case("without decryption", [_parameter_read(i, i * 0.1, decrypt=False) for i in range(25)], expect=0),
        Case("nineteen parameters", [_parameter_read(i, i * 0.1) for i in range(19)], expect=0),
        Case("a stack resolving references is its creator decrypting them",
             [_parameter_read(i, i * 0.1, **via_service("cloudformation")) for i in range(25)], expect=1),
    ],
)
def ssm_securestring_harvesting(e: Event, p: Params) -> Step | None:
    """At least `parameters` distinct parameters decrypted one by one (GetParameter with decryption) by
    one principal within `window`: enumeration that avoids the batch calls which
    ssm-bulk-securestring-parameter-retrieval judges per call (stage 2 counts one fact per event and
    key, so batches are left to that rule). Only successful calls count (nothing is decrypted
    otherwise); calls AWS makes itself are not findings."""
    name = e.text("requestParameters", "name")
    if not name or by_aws_service(e) or not e.succeeded or e.request.get("withDecryption") is not True:
        return None
    return Step(actor(e), value=name)
