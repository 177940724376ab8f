"""The rule kinds' typed options (checked when configuration is loaded, errors naming the rule and the
key) and their per-key state (slotted, written to and read back from a snapshot row unchanged)."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from pipeline.config import Config, ConfigError
from pipeline.rule import Kind, Params
from pipeline.stateful import absence, first_seen, sequence, threshold
from pipeline.stateful.facts import Fact
from pipeline.stateful.kinds import END, START, StepName
from pipeline.stateful.state import KeyedState
from pipeline.stateful.synthetic import mixed_facts
from tests.support.stateful import fresh, run, stateful_rules

BRUTE = "console-login-brute-force"


def _bind(rule_id: str, **section: object) -> KeyedState:
    return KeyedState.for_rules(stateful_rules(), Config.from_dict({"rules": {rule_id: section}}))


@pytest.mark.parametrize(
    ("rule_id", "section", "message"),
    [
        (BRUTE, {"window": "5x"}, f'rules.{BRUTE}.window: "5x" is not a duration; use e.g. "10m"'),
        (BRUTE, {"window": "0s"}, f'rules.{BRUTE}.window: "0s" must be a duration above 0'),
        (BRUTE, {"failures": 0}, f"rules.{BRUTE}.failures: 0 must be 1 or more"),
        (BRUTE, {"failures": 2.5}, f"rules.{BRUTE}.failures: 2.5 is not a whole number"),
        (
            "ec2-instance-missing-required-tags",
            {"grace": "soon"},
            'rules.ec2-instance-missing-required-tags.grace: "soon" is not a duration',
        ),
        (
            "first-seen-region",
            {"warmup": "-1d"},
            'rules.first-seen-region.warmup: "-1d" must be a duration of 0 or more',
        ),
    ],
)
def test_a_bad_configured_option_is_refused_at_load_naming_the_rule_and_the_key(rule_id, section, message):
    with pytest.raises(ConfigError) as raised:
        _bind(rule_id, **section)
    assert message in str(raised.value)
    assert str(raised.value).startswith("built-in defaults: rules.")  # where the value came from, then the key


def test_configured_options_reach_the_logic_typed():
    state = _bind(BRUTE, window="2m", failures=3)
    options = state.logics[BRUTE].options
    assert isinstance(options, threshold.Options)
    assert (options.window, options.threshold, options.distinct) == (120.0, 3, False)
    assert _bind("first-seen-region", warmup="0s").logics["first-seen-region"].warmup == 0.0


def test_a_bad_declared_option_fails_at_import_naming_the_rule():
    with pytest.raises(ConfigError, match=r'rule no-such-rule: window: "ten minutes" is not a duration'):

        @threshold.threshold(
            id="no-such-rule",
            title="t",
            severity="low",
            attack=(),
            events={"*": "*"},
            window="ten minutes",
            threshold=3,
        )
        def rule(e, p):
            return None


def test_rules_carry_kind_enums_and_options_of_their_kind():
    kinds = {r.id: r.kind for r in stateful_rules()}
    assert set(kinds.values()) == {Kind.ABSENCE, Kind.THRESHOLD, Kind.SEQUENCE, Kind.FIRST_SEEN}
    for rule in stateful_rules():
        module = {
            Kind.ABSENCE: absence,
            Kind.THRESHOLD: threshold,
            Kind.SEQUENCE: sequence,
            Kind.FIRST_SEEN: first_seen,
        }[rule.kind]
        assert type(rule.options) is module.Options
        assert type(rule.logic(Params(rule.params))) is module.Logic


def test_a_step_name_travels_as_its_plain_string():
    fact = Fact("r", "k", "e", 1.0, StepName.START)
    assert type(fact.step) is str and fact.step == START == "start"
    assert Fact.from_bytes(fact.to_bytes()).step == START
    assert {START: 0}.get(Fact("r", "k", "e", 1.0, "start").step) == 0 and END == "end"


def test_every_kind_keeps_slotted_state_that_a_snapshot_row_gives_back_unchanged():
    state = fresh()
    run(state, mixed_facts(1500, seed=3)[:1200])  # stop before the end: keys of every kind still held
    seen_types = set()
    for rule_id, states in state.states.items():
        logic = state.logics[rule_id]
        for s in states.values():
            seen_types.add(type(s))
            assert not hasattr(s, "__dict__")
            row = logic.dump(s)
            assert len(row) == len(logic.state_fields)
            if dataclasses.is_dataclass(s):
                assert [f.name for f in dataclasses.fields(s)] == list(logic.state_fields)
            else:  # a hand-packed State (absence) reads each snapshot field by name
                assert all(hasattr(s, name) for name in logic.state_fields)
            for i, name in enumerate(logic.state_fields):
                if name in logic.shared_fields:  # a snapshot holds it once, in a table
                    row[i] = logic.load_shared(name, orjson.loads(orjson.dumps(logic.dump_shared(name, row[i]))))
                else:
                    row[i] = orjson.loads(orjson.dumps(row[i]))  # as a snapshot's JSON holds it
            assert logic.load(row) == s
    assert seen_types == {
        absence.State,
        threshold.CountState,
        threshold.DistinctState,
        sequence.State,
        first_seen.State,
    }
