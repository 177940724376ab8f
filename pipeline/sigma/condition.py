"""A Sigma rule's condition as trailwarden evaluates it: a tree of `All`, `AnyOf`, `Not` and `Leaf`
(a field and its `Test`), built from pySigma's condition tree; the engine's index keys derived from
it; and the tree compiled to one predicate over a record.

Equality on `eventSource` and `eventName` becomes index keys: the rule only meets events of those
sources and names; a field every match needs (`userIdentity.type: Root`, `userAgent|contains: x`) becomes
its gate (`pipeline.rule.Gate`). Every condition stays in the predicate, so the index can only narrow,
never widen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import product
from typing import Any

from pipeline.rule import ANY, Gate
from pipeline.sigma.checks import MANY, FieldRef, Glob, Regex, Test
from pipeline.sigma.fields import Path, texts

Predicate = Callable[[dict[str, Any]], bool]
SOURCE, NAME = ("eventSource",), ("eventName",)
INDEXED = (SOURCE, NAME)
# Past this many (source, name) pairs the rule is indexed by what it is sure of: a coarser index, the same result.
_MAX_PAIRS = 4096


@dataclass(frozen=True)
class Leaf:
    field: str
    path: Path
    test: Test


@dataclass(frozen=True)
class All:
    args: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    arg: Node


Node = Leaf | All | AnyOf | Not


def leaves(node: Node) -> Iterable[Leaf]:
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from leaves(node.arg)
    else:
        for arg in node.args:
            yield from leaves(arg)


def fields_read(node: Node) -> set[str]:
    """Every field name the condition reads (a field reference's other field too)."""
    out = set()
    for leaf in leaves(node):
        out.add(leaf.field)
        if isinstance(leaf.test, FieldRef):
            out.add(".".join(leaf.test.other))
    return out


# --- the index -----------------------------------------------------------------------------------------

Pair = tuple[str | None, str | None]  # (eventSource, eventName); None: any


def _merge(a: Pair, b: Pair) -> Pair | None:
    out = []
    for x, y in zip(a, b, strict=True):
        if x is not None and y is not None and x != y:
            return None
        out.append(x if x is not None else y)
    return out[0], out[1]


def pairs(node: Node) -> set[Pair] | None:
    """The (eventSource, eventName) pairs an event must have for the condition to hold; None: any event."""
    if isinstance(node, Leaf):
        if node.path in INDEXED and isinstance(node.test, Glob) and node.test.exact:
            value = node.test.literal
            return {(value, None)} if node.path == SOURCE else {(None, value)}
        return None
    if isinstance(node, Not):
        return None
    found = [pairs(arg) for arg in node.args]
    if isinstance(node, AnyOf):
        if any(f is None for f in found):
            return None
        return set().union(*found)  # type: ignore[arg-type]
    known = [f for f in found if f is not None]
    if not known:
        return None
    acc = known[0]
    for other in known[1:]:
        if len(acc) * len(other) > _MAX_PAIRS:
            break
        acc = {m for a, b in product(acc, other) if (m := _merge(a, b)) is not None}
    return acc


def index_events(node: Node) -> dict[str, frozenset[str] | str] | None:
    """The rule's `events` declaration (see `pipeline.rule`); None when the condition can never hold."""
    found = pairs(node)
    if found is None or (None, None) in found:
        return {ANY: ANY}
    if not found:
        return None
    by_source: dict[str, set[str] | None] = {}
    for source, name in found:
        key = source if source is not None else ANY
        if name is None:
            by_source[key] = None
        elif by_source.get(key, set()) is not None:
            by_source.setdefault(key, set()).add(name)  # type: ignore[union-attr]
    return {src: ANY if names is None else frozenset(names) for src, names in by_source.items()}


def gates(node: Node) -> tuple[Gate, ...]:
    """A gate for the rule: one field test the condition cannot hold without (an equality rather than a
    substring), taken from the tests the condition joins with `and`; () when there is none."""
    found = [g for part in _required(node) if (g := _gate(part)) is not None]
    if not found:
        return ()
    return (min(found, key=lambda g: not g.equals),)


def _required(node: Node) -> Iterable[Node]:
    """The parts of the condition that must each hold for it to hold."""
    if isinstance(node, All):
        for arg in node.args:
            yield from _required(arg)
    elif not isinstance(node, Not):
        yield node


def _gate(node: Node) -> Gate | None:
    if isinstance(node, AnyOf):  # `field: [a, b, c]`, as `_equals_set` reads it
        if _equals_set(node) is None:
            return None
        leaf = node.args[0]
        assert isinstance(leaf, Leaf)  # noqa: S101 (what _equals_set checked)
        globs = [a.test for a in node.args if isinstance(a, Leaf) and isinstance(a.test, Glob)]
        if leaf.path in INDEXED:
            return None
        return Gate(leaf.path, frozenset(g.fold(g.literal or "") for g in globs), fold=not globs[0].exact)
    if not isinstance(node, Leaf) or node.path in INDEXED:
        return None
    test = node.test
    if isinstance(test, Glob):
        fold = not (test.cased or test.exact)
        literal = test.literal
        if literal is not None:
            return Gate(node.path, frozenset([test.fold(literal)]), fold=fold)
        pieces = test.pieces
        if len(pieces) == 3 and pieces[0] is MANY and pieces[2] is MANY and type(pieces[1]) is str and pieces[1]:
            return Gate(node.path, contains=test.fold(pieces[1]), fold=fold)
    if isinstance(test, Regex):
        needle, folded = test.needle
        if needle and not folded:
            return Gate(node.path, contains=needle)
    return None


# --- the predicate -------------------------------------------------------------------------------------


def compile_node(node: Node) -> Predicate:
    """One function of the record that is true when the condition holds. It never raises."""
    if isinstance(node, Leaf):
        return _leaf(node)
    if isinstance(node, Not):
        inner = compile_node(node.arg)
        return lambda r: not inner(r)
    if isinstance(node, AnyOf):
        merged = _equals_set(node)
        if merged is not None:
            return merged
    parts = tuple(compile_node(a) for a in node.args)
    if len(parts) == 1:
        return parts[0]
    # Plain short-circuiting calls rather than all()/any() over a generator: these run on every event the
    # index hands the rule, and a generator per call costs more than the tests it runs.
    if len(parts) == 2:
        first, second = parts
        if isinstance(node, All):
            return lambda r: first(r) and second(r)
        return lambda r: first(r) or second(r)
    if isinstance(node, All):

        def every(r: dict[str, Any]) -> bool:
            for part in parts:  # noqa: SIM110 (no generator per call: see above)
                if not part(r):
                    return False
            return True

        return every

    def some(r: dict[str, Any]) -> bool:
        for part in parts:  # noqa: SIM110 (no generator per call: see above)
            if part(r):
                return True
        return False

    return some


def _leaf(leaf: Leaf) -> Predicate:
    path, test = leaf.path, leaf.test
    if isinstance(test, FieldRef):
        other = test.other
        return lambda r: any(test.pair(a, b) for a in texts(r, path) for b in texts(r, other))
    if type(test).matches is Test.matches:  # a test of each text: none when the field has no value
        one = test.one
        if len(path) == 1:
            key = path[0]

            def top(r: dict[str, Any]) -> bool:
                value = r.get(key)
                if type(value) is str:  # the common case: a string
                    return one(value)
                return value is not None and test.matches(texts(r, path))

            return top

        def nested(r: dict[str, Any]) -> bool:
            value: Any = r
            for step in path:
                if type(value) is not dict:
                    return value is not None and test.matches(texts(r, path))  # an array on the way
                value = value.get(step)
            if type(value) is str:
                return one(value)
            return value is not None and test.matches(texts(r, path))

        return nested
    return lambda r: test.matches(texts(r, path))


def _equals_set(node: AnyOf) -> Predicate | None:
    """`field: [a, b, c]` (an OR of plain equalities on one field) as one set lookup."""
    tests = [a.test for a in node.args if isinstance(a, Leaf)]
    if len(tests) != len(node.args) or len({a.path for a in node.args}) != 1:  # type: ignore[union-attr]
        return None
    globs = [t for t in tests if isinstance(t, Glob) and t.literal is not None and not t.cased]
    if len(globs) != len(tests):
        return None
    exact = {t.exact for t in globs}
    if len(exact) != 1:
        return None
    path = node.args[0].path  # type: ignore[union-attr]
    wanted = frozenset(t.fold(literal) for t in globs if (literal := t.literal) is not None)
    if exact.pop():
        return lambda r: any(t in wanted for t in texts(r, path))
    return lambda r: any(t.lower() in wanted for t in texts(r, path))
