"""The rule pack as a process runs it: the rules chosen and bound to their configuration, once.

`bind_pack` is the one place that decides which rules run and with what parameters; `scan`, `backfill`,
`rules test`, both stages of the live pipeline and a replay's all start from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.config import Config, enabled_rules
from pipeline.engine import BoundRule, bind
from pipeline.rule import Rule
from pipeline.rules import rule_pack
from pipeline.stateful.kinds import StatefulRule
from pipeline.stateful.state import KeyedState


@dataclass(frozen=True)
class Pack:
    """The chosen rules, each with its parameters and allowlist: match rules and stateful rules apart."""

    config: Config
    overrides: Mapping[str, Mapping[str, Any]]
    rules: tuple[Rule, ...]  # every chosen rule, in the pack's order
    match: tuple[BoundRule, ...]
    stateful: tuple[BoundRule, ...]

    def new_state(self) -> KeyedState:
        """Stage 2's keyed state for the stateful rules (one per shard, or one for a whole file)."""
        return KeyedState.for_rules(
            [br.rule for br in self.stateful],  # type: ignore[misc]
            self.config,
            {k: dict(v) for k, v in self.overrides.items()},
        )


def bind_pack(
    config: Config | None = None,
    only: Iterable[str] | None = None,
    *,
    rules: Iterable[Rule] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    sigma: Iterable[str] = (),
) -> Pack:
    """The rules to run: of the configured pack (built-in rules, bundled Sigma rules, the Sigma folders of
    `[sigma]` and `sigma`; see `pipeline.rules.rule_pack`) or of `rules`, those `config` enables, or the ids in
    `only` whether enabled or not (`--rules`); each bound to its parameters (the configuration's, then
    `overrides`, e.g. a scenario's shortened periods) and its allowlist. Raises ConfigError for unknown ids
    and bad parameters."""
    config = config or Config.from_dict()
    if rules is None:
        rules = rule_pack(config, sigma)
    overrides = overrides or {}
    chosen = enabled_rules(rules, config, only)
    bound = [bind(r, config, dict(overrides.get(r.id) or {})) for r in chosen]
    return Pack(
        config,
        overrides,
        tuple(chosen),
        tuple(b for b in bound if not isinstance(b.rule, StatefulRule)),
        tuple(b for b in bound if isinstance(b.rule, StatefulRule)),
    )
