"""Credential access by volume: one principal reading many distinct secrets or SecureString parameters in a
short time (threshold rules; the per-call signals are in credential_access)."""

from __future__ import annotations

from typing import Any

from pipeline.cases import at, call, role_session, via_service
from pipeline.event import Event, text
from pipeline.rule import Case, Params
from pipeline.rules.attack_common import actor, by_aws_service, strings
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
        Case(
            "ten workloads one secret each",
            [_secret_read(i, i * 0.2, userIdentity=role_session(f"app{i}", "task")) for i in range(10)],
            expect=0,
        ),
        Case(
            "a stack resolving every secret is its creator reading them",
            [_secret_read(i, i * 0.2, **via_service("cloudformation")) for i in range(12)],
            expect=1,
        ),
        Case(
            "denied reads count as the attempt",
            [_secret_read(i, i * 0.2, errorCode="AccessDeniedException") for i in range(10)],
            expect=1,
        ),
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
    return call(
        SSM, "GetParameter", {"name": f"/creds/p{i}", "withDecryption": decrypt}, eventTime=at(minutes), **fields
    )


def _parameters_read(first: int, count: int, minutes: float, **fields: Any) -> dict[str, Any]:
    return call(
        SSM,
        "GetParameters",
        {"names": [f"/creds/p{i}" for i in range(first, first + count)], "withDecryption": True},
        eventTime=at(minutes),
        **fields,
    )


@threshold(
    id="ssm-securestring-harvesting",
    title="Many distinct SecureString parameters decrypted by one principal",
    severity="high",
    attack="T1555.006",
    events={SSM: ["GetParameter", "GetParameters", "GetParametersByPath"]},
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
        Case(
            "three batches of nine in twenty seconds",
            [_parameters_read(9 * b, 9, b * 10 / 60) for b in range(3)],
            expect=1,
        ),
        Case(
            "one by one, in batches and by path together",
            [
                *[_parameter_read(i, i * 0.1) for i in range(8)],
                _parameters_read(8, 9, 1),
                *[
                    call(
                        SSM,
                        "GetParametersByPath",
                        {"path": f"/team{j}/", "recursive": True, "withDecryption": True},
                        eventTime=at(2 + j * 0.1),
                    )
                    for j in range(3)
                ],
            ],
            expect=1,
        ),
        Case("the same parameter again and again", [_parameter_read(0, i * 0.1) for i in range(30)], expect=0),
        Case("the same batch again and again", [_parameters_read(0, 9, i * 0.1) for i in range(10)], expect=0),
        Case("without decryption", [_parameter_read(i, i * 0.1, decrypt=False) for i in range(25)], expect=0),
        Case("nineteen parameters", [_parameter_read(i, i * 0.1) for i in range(19)], expect=0),
        Case(
            "denied batches decrypt nothing",
            [_parameters_read(9 * b, 9, b * 0.2, errorCode="AccessDeniedException") for b in range(4)],
            expect=0,
        ),
        Case(
            "a stack resolving references is its creator decrypting them",
            [_parameter_read(i, i * 0.1, **via_service("cloudformation")) for i in range(25)],
            expect=1,
        ),
    ],
)
def ssm_securestring_harvesting(e: Event, p: Params) -> list[Step] | None:
    """At least `parameters` distinct SecureString parameters decrypted by one principal (the role behind
    a session) within `window`, however they are asked for: GetParameter one by one, GetParameters in
    batches of any size (each name counts), GetParametersByPath (each path counts once, as "/path/*", or
    "/path/**" when recursive: CloudTrail does not log what it returned). Only successful calls with
    decryption count (nothing is decrypted otherwise); calls AWS makes itself are not findings. A single
    call decrypting a page of names or the whole tree is judged at once by
    ssm-bulk-securestring-parameter-retrieval."""
    if by_aws_service(e) or not e.succeeded or e.request.get("withDecryption") is not True:
        return None
    request = e.request
    if e.name == "GetParameters":
        names = strings(request.get("names"), limit=100)
    elif e.name == "GetParametersByPath":
        path = text(request.get("path"))
        names = [path + ("**" if request.get("recursive") is True else "*")] if path else []
    else:
        names = strings(request.get("name"), limit=1)
    who = actor(e)
    return [Step(who, value=name) for name in dict.fromkeys(names) if name] or None
