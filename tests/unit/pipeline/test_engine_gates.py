"""Rule gates (`pipeline.rule.Gate`): the engine's index skips a gated rule only for events it cannot match.

Three checks: the compiled gate function of the index agrees with each gate's reference reading
(`Gate.admits`) on odd records; no rule of the default pack ever matches an event of its own cases
(and their console and CloudFormation forms) that its gates keep from it; and the engine's findings are
those of every rule tried on every event, in the pack's order.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from pipeline.config import Config, enabled_rules
from pipeline.engine import MatchEngine, bind
from pipeline.event import Event
from pipeline.rule import ANY, Case, Gate, Hit, MatchRule, Params, Rule
from pipeline.rules import rule_pack
from pipeline.ruletest import cloudformation_form, complete_record, console_form

GATES = [
    Gate.of("userIdentity.type", equals=["Root"]),
    Gate.of("userIdentity.type", equals=["root", "iamuser"], fold=True),
    Gate.of("errorCode"),
    Gate.of("userIdentity.principalId", contains=":i-"),
    Gate.of("userAgent", contains="trufflehog", fold=True),
    Gate.of("userIdentity.sessionContext.ec2RoleDelivery"),
]
ODD_VALUES: list[Any] = [None, "", "Root", "ROOT", "iamUser", "x:i-0abc", "TruffleHog/3.0", 1, True, [], ["Root"], {}]


def _records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{}, {"userIdentity": None}, {"userIdentity": []}, {"userIdentity": "Root"}]
    for value in ODD_VALUES:
        out += [
            {"errorCode": value, "userAgent": value},
            {"userIdentity": {"type": value, "principalId": value}},
            {"userIdentity": {"sessionContext": {"ec2RoleDelivery": value}}},
            {"userIdentity": {"sessionContext": value}},
            {"userIdentity": [{"type": value}]},
        ]
    return out


def _rule(n: int, gates: tuple[Gate, ...], check: Any = lambda e, p: True) -> MatchRule:
    """A match rule outside the registry (the pack stays as it is)."""
    return MatchRule(
        id=f"gated-{n}",
        title="t",
        severity="low",
        attack=(),
        description="",
        runbook="",
        events={ANY: None},
        params={},
        dedup=3600.0,
        cases=(),
        check=check,
        gates=gates,
    )


def test_the_compiled_gates_read_each_record_as_the_gates_do() -> None:
    rules = [_rule(i, (g,)) for i, g in enumerate(GATES)]
    rules.append(_rule(len(rules), (GATES[3], GATES[5])))  # either of two fields admits
    engine = MatchEngine([bind(r, Config.from_dict()) for r in rules])
    plain, admit = engine.index.route("s3.amazonaws.com", "GetObject")
    assert plain == () and admit is not None
    for raw in _records():
        got = sorted(br.rule.id for br in admit(raw))
        want = sorted(r.id for r in rules if any(g.admits(raw) for g in r.gates))
        assert got == want, raw
        assert len(got) == len(set(got))


def test_gate_reference_reading() -> None:
    root = Gate.of("userIdentity.type", equals=["Root"])
    assert root.admits({"userIdentity": {"type": "Root"}})
    assert not root.admits({"userIdentity": {"type": "AssumedRole"}})
    assert not root.admits({"userIdentity": {"type": None}})
    assert not root.admits({"userIdentity": None})
    assert not root.admits({})
    assert root.admits({"userIdentity": {"type": 7}})  # not a string: the rule decides
    assert root.admits({"userIdentity": [{"type": "Root"}]})  # an array on the way: the rule decides
    present = Gate.of("errorCode")
    assert present.admits({"errorCode": None}) and present.admits({"errorCode": ""})
    assert not present.admits({"errorMessage": "x"})
    folded = Gate.of("userAgent", contains="trufflehog", fold=True)
    assert folded.admits({"userAgent": "TruffleHog v3"}) and not folded.admits({"userAgent": "aws-cli"})


def _pack() -> list[MatchRule]:
    config = Config.from_dict()
    return [r for r in enabled_rules(rule_pack(config), config) if isinstance(r, MatchRule)]


def _gated_cases() -> list[tuple[Rule, Case]]:
    config = Config.from_dict()
    return [(r, c) for r in enabled_rules(rule_pack(config), config) if r.gates for c in r.cases]


def test_the_match_rules_that_watch_every_event_are_gated() -> None:
    everything = [r for r in _pack() if r.events == {ANY: None}]
    assert everything and all(r.gates for r in everything), [r.id for r in everything if not r.gates]


@pytest.mark.parametrize(("rule", "case"), _gated_cases(), ids=lambda x: getattr(x, "id", None) or x.name)
def test_a_gate_never_hides_a_match_of_its_rule(rule: Rule, case: Case) -> None:
    """A match rule's check, or a stateful rule's extractor, is true only for events its gates admit."""
    config = Config.from_dict()
    params = config.params(rule, dict(case.params))
    asks = rule.check if isinstance(rule, MatchRule) else rule.extract  # type: ignore[attr-defined]
    checked = 0
    for index, partial in enumerate(case.events):
        for form in (partial, console_form(partial, index, case.name), cloudformation_form(partial, index, case.name)):
            if form is None:
                continue
            event = Event.from_record(complete_record(form, index, case.name))
            assert isinstance(event, Event)
            if asks(event, params):
                checked += 1
                assert any(g.admits(event.raw) for g in rule.gates), (rule.id, case.name, form)
    if case.expect:
        assert checked, f"{rule.id}: the case {case.name!r} expects findings but no event matched"


def test_findings_stay_in_the_pack_order_and_match_the_rules_tried_alone() -> None:
    config = Config.from_dict()
    root_acted = _rule(0, (GATES[0],), lambda e, p: Hit(key="root") if e.identity_type == "Root" else None)
    any_call = _rule(1, ())
    engine = MatchEngine([bind(r, config) for r in (root_acted, any_call)])
    call = {"eventSource": "iam.amazonaws.com", "eventName": "ListUsers"}
    root = Event.from_record(complete_record({**call, "userIdentity": {"type": "Root", "arn": "arn:aws:iam::1:root"}}))
    other = Event.from_record(complete_record(call))
    assert isinstance(root, Event) and isinstance(other, Event)
    assert [f.rule_id for f in engine.process(root)] == ["gated-0", "gated-1"]
    assert [f.rule_id for f in engine.process(other)] == ["gated-1"]
    for rule, event in itertools.product((root_acted, any_call), (root, other)):
        alone = MatchEngine([bind(rule, config)]).process(event)
        assert bool(alone) == bool(rule.check(event, Params())), (rule.id, event)
