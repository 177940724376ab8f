"""`StatefulRule`: a rule whose decision needs more than one event, and `declare`, which each kind's
decorator uses to build and register one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.event import Event
from pipeline.rule import Hit, Params, Rule, register
from pipeline.stateful import options as opts
from pipeline.stateful.facts import Step
from pipeline.stateful.logic import KindLogic
from pipeline.stateful.options import KindOptions

Extractor = Callable[[Event, Params], "Step | Iterable[Step] | None"]
# What a rule says about one of its findings, from the key, the finding's context (with the key's
# state under "state") and the parameters: resources, a summary and more context.
HitFor = Callable[[str, dict[str, Any], Params], Hit]


def _no_facts(e: Event, p: Params) -> None:
    return None


@dataclass
class StatefulRule(Rule):
    """Stage 1 runs `extract` on the events the rule declared and sends the facts it returns, carrying
    only `fields`, keyed to stage 2; there the kind's logic (`logic_type`) keeps per-key state.

    `options` are the kind's typed options with the declared defaults; `option_params` says which of
    them a parameter sets (option -> parameter), so `options_for(params)` applies configuration."""

    extract: Extractor = _no_facts
    fields: frozenset[str] = frozenset()
    options: KindOptions = field(default_factory=KindOptions)
    option_params: Mapping[str, str] = field(default_factory=dict)
    hit: HitFor | None = None
    logic_type: type[KindLogic[Any, Any]] = KindLogic
    # The steps an allowlist drops (None: every step). An absence rule's allowlist drops only its
    # `start`: known automation tagging someone else's instance must still satisfy the watch.
    allowlist_steps: frozenset[str] | None = None

    def options_for(self, params: Params) -> Any:
        """The options with the configured parameters applied; ConfigError names the rule and the key."""
        return opts.with_params(self.options, self.option_params, self.id, params)

    def logic(self, params: Params) -> KindLogic[Any, Any]:
        """The stage-2 behaviour of this rule with `params`."""
        return self.logic_type(self, params)


def declare(
    logic_type: type[KindLogic[Any, Any]],
    metadata: dict[str, Any],
    *,
    extract: Extractor,
    fields: Iterable[str],
    options: Mapping[str, Any],
    hit: HitFor | None,
    allowlist_steps: Iterable[str] | None = None,
    validate: Callable[[Params], None] | None = None,
) -> StatefulRule:
    """Build and register a stateful rule of `logic_type`'s kind. A declared option that is not a
    valid value, or names a parameter whose default is not one, fails here, at import. Configured
    values are checked by the options and then by `validate`, if given."""
    typed, sources = opts.from_declaration(logic_type.options_type, metadata["id"], metadata["params"], options)
    rule = StatefulRule(
        **{**metadata, "validate": None},
        kind=logic_type.kind,
        extract=extract,
        fields=frozenset(fields),
        options=typed,
        option_params=sources,
        hit=hit,
        logic_type=logic_type,
        allowlist_steps=None if allowlist_steps is None else frozenset(allowlist_steps),
    )

    def check(params: Params) -> None:  # Config.params checks configured values with it
        rule.options_for(params)
        if validate is not None:
            validate(params)

    rule.validate = check
    register(rule)
    return rule
