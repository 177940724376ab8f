"""`KindLogic`: the stage-2 behaviour of one stateful rule bound to its parameters, the base each kind
extends; `Out`, what that behaviour may do while it applies a fact or fires a timer."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pipeline.finding import Finding
from pipeline.rule import Kind, Params
from pipeline.stateful.facts import Fact
from pipeline.stateful.findings import NO_META, Meta, stateful_finding
from pipeline.stateful.options import KindOptions

if TYPE_CHECKING:
    from pipeline.stateful.rule import StatefulRule

OptionsT = TypeVar("OptionsT", bound=KindOptions)
StateT = TypeVar("StateT")


class Out(Protocol):
    """What a kind may do while applying a fact: schedule a timer for its key, raise a finding."""

    def timer(self, deadline: float, key: str) -> None: ...

    def emit(self, finding: Finding) -> None: ...


def load_meta(m: Any) -> Meta:
    """A fact's finding metadata read back from a snapshot (the repeated strings interned)."""
    if not isinstance(m, list | tuple) or len(m) != 6:
        return NO_META
    return tuple(sys.intern(str(x)) if i else str(x) for i, x in enumerate(m))  # type: ignore[return-value]


def field_names(state_type: type) -> tuple[str, ...]:
    """A State dataclass's field names, in order: the layout of its snapshot rows."""
    return tuple(f.name for f in dataclasses.fields(state_type))


class KindLogic(Generic[OptionsT, StateT]):
    """One rule's stage-2 behaviour: how a key's state (a small slotted `State`, with a `last` fact
    time) changes with each fact, when its timer is due, and how it is written to a snapshot.

    `ttl` is how long a key's state lives after its last fact. `state_fields` names the values of
    `dump(state)` in order; a snapshot records them, so a later release can map them by name."""

    kind: ClassVar[Kind]
    options_type: ClassVar[type[KindOptions]]
    state_fields: tuple[str, ...] = ()
    # Fields whose values many keys share (one object): `dump` and `load` pass them as they are, and a
    # snapshot writes each distinct value once (`dump_shared`) and reads it back once (`load_shared`).
    shared_fields: tuple[str, ...] = ()
    ttl: float = 0.0

    def __init__(self, rule: StatefulRule, params: Params) -> None:
        self.rule = rule
        self.params = params
        self.dedup = rule.dedup
        self.options: OptionsT = rule.options_for(params)

    def apply(self, state: StateT | None, fact: Fact, out: Out) -> StateT | None:
        """The key's new state after `fact` (None forgets the key)."""
        raise NotImplementedError

    def fire(self, state: StateT, key: str, deadline: float, out: Out) -> StateT | None:
        """The key's timer for `deadline` is due."""
        return state

    def deadline(self, state: StateT) -> float | None:
        """When the key's open timer is due (None: none is open)."""
        return None

    def is_open(self, state: StateT) -> bool:
        return self.deadline(state) is not None

    def dump(self, state: StateT) -> list[Any]:
        """The state's values in `state_fields` order, as JSON can hold them."""
        raise NotImplementedError

    def load(self, row: list[Any]) -> StateT:
        """The state `dump` wrote (raises TypeError, ValueError or IndexError on a malformed row)."""
        raise NotImplementedError

    def dump_shared(self, name: str, value: Any) -> Any:
        """A shared field's value as JSON can hold it."""
        return value

    def load_shared(self, name: str, raw: Any) -> Any:
        """A shared field's value read back from `dump_shared`'s JSON (raises as `load` does)."""
        return raw

    def finding(
        self,
        key: str,
        meta: Meta,
        *,
        event_ids: Iterable[str],
        event_time: float,
        window: int,
        summary: str,
        context: dict[str, Any],
        dedup_key: str = "",
    ) -> Finding:
        """A finding of this rule for `key`; the rule's `hit` (if any) sees `context["state"]`, the finding does not."""
        hit = self.rule.hit(key, context, self.params) if self.rule.hit else None
        context.pop("state", None)
        return stateful_finding(
            self.rule,
            key,
            meta,
            event_ids=tuple(event_ids),
            event_time=event_time,
            window=window,
            summary=summary,
            context=context,
            hit=hit,
            dedup_key=dedup_key,
        )
