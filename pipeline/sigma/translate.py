"""pySigma's parsed condition (modifiers applied, `1 of` / `all of` resolved) to trailwarden's `Node` tree.

Whatever has no meaning over one CloudTrail record, or that trailwarden does not evaluate, raises
`Refused` naming the construct and the detection item it is in, so the loader can point at its line.
"""

from __future__ import annotations

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetectionItem
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
)

from pipeline.sigma.checks import Boolean, Cidr, Compare, Exists, FieldRef, Glob, Null, Number, Regex, Test
from pipeline.sigma.condition import INDEXED, All, AnyOf, Leaf, Node, Not
from pipeline.sigma.fields import split

_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_OPS = {CompareOperators.LT: "lt", CompareOperators.LTE: "lte", CompareOperators.GT: "gt", CompareOperators.GTE: "gte"}


class Refused(Exception):
    """A construct trailwarden does not evaluate: `construct` names it, `key` is the detection item's YAML
    key (`field|modifier|...`) when there is one, to find its line."""

    def __init__(self, construct: str, reason: str, key: str | None = None) -> None:
        super().__init__(f"{construct}: {reason}")
        self.construct = construct
        self.reason = reason
        self.key = key


def item_key(item: SigmaDetectionItem | None) -> str | None:
    """The YAML key a detection item was written as: `field|mod|mod`."""
    if item is None:
        return None
    mods = [reverse_modifier_mapping.get(m.__name__, m.__name__) for m in item.modifiers]
    return "|".join([item.field or "", *mods]) if item.field or mods else None


def _item(cond: object) -> SigmaDetectionItem | None:
    parent = getattr(cond, "parent", None)
    while parent is not None and not isinstance(parent, SigmaDetectionItem):
        parent = getattr(parent, "parent", None)
    return parent


def translate(cond: object) -> Node:
    """The Node tree of a parsed pySigma condition."""
    if isinstance(cond, ConditionAND):
        return All(tuple(translate(a) for a in cond.args))
    if isinstance(cond, ConditionOR):
        return AnyOf(tuple(translate(a) for a in cond.args))
    if isinstance(cond, ConditionNOT):
        return Not(translate(cond.args[0]))
    if isinstance(cond, ConditionFieldEqualsValueExpression):
        key = item_key(_item(cond))
        return _field(cond.field, cond.value, key)
    if isinstance(cond, ConditionValueExpression):
        raise Refused(
            "keyword search",
            "a value without a field (keyword search) is not evaluated; name the CloudTrail field it must be found in",
            item_key(_item(cond)),
        )
    raise Refused(type(cond).__name__, "this condition element is not evaluated")


def _field(name: str, value: SigmaType, key: str | None) -> Node:
    path = split(name)
    if isinstance(value, SigmaExpansion):  # |windash, |base64offset: alternatives, ORed
        return AnyOf(tuple(_field(name, v, key) for v in value.values))
    return Leaf(name, path, _test(value, path, key))


def _test(value: SigmaType, path: tuple[str, ...], key: str | None) -> Test:
    if isinstance(value, SigmaString):  # SigmaCasedString included
        for p in value.s:
            if isinstance(p, Placeholder):
                raise Refused("placeholder", f"%{p.name}% needs a processing pipeline to fill it (|expand)", key)
        pieces = tuple(p for p in value.s if not isinstance(p, Placeholder))
        glob = Glob(pieces, cased=isinstance(value, SigmaCasedString))
        if glob.literal is not None and path in INDEXED and not glob.cased:
            return Glob(pieces, exact=True)
        return glob
    if isinstance(value, SigmaRegularExpression):
        return Regex(str(value.regexp), "".join(sorted(_FLAGS[f] for f in value.flags)))
    if isinstance(value, SigmaCIDRExpression):
        return Cidr(value.network)
    if isinstance(value, SigmaNull):
        return Null()
    if isinstance(value, SigmaExists):
        return Exists(bool(value.exists))
    if isinstance(value, SigmaBool):
        return Boolean(bool(value.boolean))
    if isinstance(value, SigmaTimestampPart):
        raise Refused("time-part modifier", "|minute, |hour, |day, |week, |month and |year are not evaluated", key)
    if isinstance(value, SigmaNumber):
        number = value.number
        return Number(str(number) if isinstance(number, int) else repr(number))
    if isinstance(value, SigmaCompareExpression):
        if value.op not in _OPS:
            raise Refused("|neq", "not-equal comparison is not evaluated; write `not` with an equality", key)
        return Compare(_OPS[value.op], float(value.number.number))
    if isinstance(value, SigmaFieldReference):
        return FieldRef(split(value.field), value.starts_with, value.ends_with)
    raise Refused(type(value).__name__, "this value type is not evaluated", key)
