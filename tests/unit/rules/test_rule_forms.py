"""Every rule finds the same in the other forms of its positive cases: the calls made in the console by
the same identity, and made by CloudFormation for a stack of the same identity. Who acted is
`userIdentity`; a rule that skips the console or a stack lets an attacker act unseen.

The tests run over the whole pack, so a rule added later is held to the same standard.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.cases import SIGN_IN, USER_AGENT, call, iam_user, role_session, service_linked, via_service
from pipeline.event import Event
from pipeline.rule import Case, Hit, MatchRule, Rule, metadata
from pipeline.rules import builtin_rules
from pipeline.rules.attack_common import from_console
from pipeline.ruletest import (
    CONSOLE_FORM,
    FORMS,
    STACK_FORM,
    cloudformation_form,
    complete_record,
    console_form,
    run_form,
    run_rules,
)

POSITIVE = [(rule, case) for rule in builtin_rules() for case in rule.cases if case.expect > 0]
IDS = [f"{rule.id}::{case.name}" for rule, case in POSITIVE]


def _ignoring_exemption(case: Case, form: str) -> Case:
    return Case(case.name, case.events, case.expect, case.params, {k: v for k, v in case.no_form.items() if k != form})


@pytest.mark.parametrize(("rule", "case"), POSITIVE, ids=IDS)
def test_the_console_form_finds_the_same(rule: Rule, case: Case) -> None:
    result = run_form(rule, case, CONSOLE_FORM)
    if result is None:
        assert case.no_form.get(CONSOLE_FORM, "").strip(), "an exemption says why"
        if dict(case.no_form) == USER_AGENT:
            # The rule judges the client's user agent: the exemption is needed, the console form is quiet.
            stale = run_form(rule, _ignoring_exemption(case, CONSOLE_FORM), CONSOLE_FORM)
            assert stale is not None and not stale.passed, "the exemption is no longer needed: remove it"
            return
        # The exemption hides nothing: no call of the case has a console form at all.
        assert all(console_form(p, i, case.name) is None for i, p in enumerate(case.events))
        return
    assert result.error == "" and result.got == case.expect, (result.got, result.error)


@pytest.mark.parametrize(("rule", "case"), POSITIVE, ids=IDS)
def test_the_cloudformation_form_finds_the_same(rule: Rule, case: Case) -> None:
    result = run_form(rule, case, STACK_FORM)
    if result is None:
        if STACK_FORM in case.no_form:
            assert case.no_form[STACK_FORM].strip(), "an exemption says why"
            # The exemption is needed: without it the form finds something else.
            stale = run_form(rule, _ignoring_exemption(case, STACK_FORM), STACK_FORM)
            assert stale is not None and not stale.passed, "the exemption is no longer needed: remove it"
        else:  # no call of the case is one a stack makes (reads, sign-ins)
            assert all(cloudformation_form(p, i, case.name) is None for i, p in enumerate(case.events))
        return
    assert result.error == "" and result.got == case.expect, (result.got, result.error)


def test_exemptions_are_few() -> None:
    """Exceptions are for cases that genuinely have no such form: besides console sign-ins (which have no
    other form at all), they stay a small share of the pack's positive cases."""
    assert {form for _, c in POSITIVE for form in c.no_form} <= set(FORMS)
    others = [(r.id, c.name, dict(c.no_form)) for r, c in POSITIVE if c.no_form and dict(c.no_form) != SIGN_IN]
    assert len(others) <= max(3, len(POSITIVE) // 20), others


def test_both_forms_cover_most_of_the_pack() -> None:
    console = [run_form(r, c, CONSOLE_FORM) for r, c in POSITIVE]
    stack = [run_form(r, c, STACK_FORM) for r, c in POSITIVE]
    assert sum(x is not None for x in console) >= 0.75 * len(POSITIVE)
    assert sum(x is not None for x in stack) >= 0.4 * len(POSITIVE)


# --- the forms themselves ---------------------------------------------------------------------------------


def _event(partial: dict[str, Any]) -> Event:
    event = Event.from_record(complete_record(partial))
    assert not isinstance(event, str)
    return event


def test_console_form_is_cloudtrails_console_shape_with_the_same_identity() -> None:
    plain = call("iam.amazonaws.com", "UpdateLoginProfile", {"userName": "bob"}, userIdentity=iam_user())
    made = console_form(plain)
    assert made is not None
    event = _event(made)
    assert event.source_ip == event.user_agent == "AWS Internal" and from_console(event)
    assert event.identity == iam_user()
    through_stack = {**plain, **via_service("cloudformation")}
    assert _event(console_form(through_stack) or {}).identity == iam_user()  # the person, no longer via a stack


@pytest.mark.parametrize(
    "partial",
    [
        call("signin.amazonaws.com", "ConsoleLogin", response={"ConsoleLogin": "Success"}),
        call("ec2.amazonaws.com", "RunInstances", userIdentity=service_linked()),
        call("ec2.amazonaws.com", "CreateSnapshot", **via_service("backup", role_session("backup-role"))),
        call(
            "ec2.amazonaws.com", "RunInstances", userIdentity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}
        ),
    ],
    ids=["sign-in", "service-linked role", "AWS Backup", "service principal"],
)
def test_calls_aws_made_and_sign_ins_have_no_console_or_stack_form(partial: dict[str, Any]) -> None:
    assert console_form(partial) is None
    assert cloudformation_form(partial) is None


def test_cloudformation_form_is_a_write_or_a_reference_a_stack_resolves() -> None:
    write = cloudformation_form(call("iam.amazonaws.com", "CreateRole", {"roleName": "r"}))
    assert write is not None
    event = _event(write)
    assert event.identity["invokedBy"] == event.source_ip == "cloudformation.amazonaws.com"
    assert cloudformation_form(call("ssm.amazonaws.com", "GetParameters", {"names": ["/a"]})) is not None
    assert cloudformation_form(call("ec2.amazonaws.com", "GetPasswordData", {"instanceId": "i-1"})) is None
    in_console = cloudformation_form(call("iam.amazonaws.com", "CreateRole", sessionCredentialFromConsole="true"))
    assert in_console is not None and "sessionCredentialFromConsole" not in in_console


def _rule(check: Any, cases: list[Case]) -> MatchRule:
    return MatchRule(
        **metadata(
            id="forms-probe",
            title="t",
            severity="low",
            attack="T1078",
            events={"iam.amazonaws.com": ["CreateRole"]},
            params={},
            dedup="1h",
            runbook="",
            cases=cases,
            fn=check,
        ),
        check=check,
    )


CREATE = call("iam.amazonaws.com", "CreateRole", {"roleName": "r"})
DENIED = {**CREATE, "errorCode": "AccessDenied"}


def _succeeded(e: Event, p: Any) -> Hit | None:
    return Hit() if e.succeeded else None


def test_a_rule_that_skips_the_console_or_a_stack_fails_its_forms() -> None:
    def skips_console(e: Event, p: Any) -> Hit | None:
        return None if e.source_ip == "AWS Internal" else _succeeded(e, p)

    def skips_stacks(e: Event, p: Any) -> Hit | None:
        return None if e.text("userIdentity", "invokedBy") else _succeeded(e, p)

    cases = [Case("hit", CREATE, 1), Case("miss", DENIED, 0)]
    for check, form in ((skips_console, CONSOLE_FORM), (skips_stacks, STACK_FORM)):
        report = run_rules([_rule(check, cases)])
        assert [r.case for r in report.failures] == [f"hit [{form} form]"]


def test_a_case_with_no_console_form_must_say_why() -> None:
    service_only = call("iam.amazonaws.com", "CreateRole", {"roleName": "r"}, userIdentity=service_linked())
    silent = _rule(_succeeded, [Case("service", service_only, 1), Case("none", DENIED, 0)])
    failures = run_rules([silent]).failures
    assert len(failures) == 1 and "no_form" in failures[0].error
    declared = _rule(
        _succeeded, [Case("service", service_only, 1, no_form={"console": "a service call"}), Case("none", DENIED, 0)]
    )
    assert run_rules([declared]).ok
