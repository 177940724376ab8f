"""What one Sigma detection item asks of a field's values: the value types pySigma produces after its
modifiers have run, each as a test over the field's texts (see `fields`).

Sigma strings compare case-insensitively (`|cased` keeps case); `*` and `?` are wildcards. A test is
built once per rule at load; `matches(texts)` runs per event, on attacker-controlled text, and never
raises or evaluates anything: wildcards are matched by searching literal pieces (linear), `?` and
`|re` patterns by RE2 (linear time, no backtracking), addresses by `ipaddress`.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import re._parser as sre  # the standard library's parser of regular expressions
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.policy.regex_engine import RE2RegexEngine
from sigma.types import SpecialChars

from pipeline.sigma.fields import Path

_RE2 = RE2RegexEngine()
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Test:
    """A test of one field: `matches` gets the texts of the field's values (empty when it has none)."""

    def matches(self, texts: Sequence[str]) -> bool:
        return any(self.one(t) for t in texts)

    def one(self, text: str) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Glob(Test):
    """A Sigma string: literal pieces and the wildcards between them, as pySigma holds it."""

    pieces: tuple[str | SpecialChars, ...]
    cased: bool = False
    exact: bool = False  # eventSource and eventName: compared as CloudTrail spells them (see the docs)
    _fn: Callable[[str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fn", self._compile())

    @property
    def literal(self) -> str | None:
        """The text when the string has no wildcard."""
        if all(type(p) is str for p in self.pieces):
            return "".join(self.pieces)  # type: ignore[arg-type]
        return None

    def fold(self, text: str) -> str:
        return text if self.cased or self.exact else text.lower()

    def _compile(self) -> Callable[[str], bool]:
        literal = self.literal
        fold = self.fold
        if literal is not None:
            want = fold(literal)
            if self.cased or self.exact:
                return lambda t: t == want
            return lambda t: t.lower() == want
        if ONE in self.pieces:
            pattern = "".join(".*" if p is MANY else "." if p is ONE else _re2_escape(p) for p in self.pieces)
            compiled = _RE2.compile("(?s" + ("" if self.cased else "i") + ")" + pattern)
            return lambda t: _search(compiled, t, full=True)
        # Only "*": literal segments that must appear in order, the first at the start unless the string
        # starts with "*", the last at the end unless it ends with "*".
        segments: list[str] = [""]
        for p in self.pieces:
            if p is MANY:
                segments.append("")
            elif isinstance(p, str):  # ONE cannot be here: a pattern with "?" took the branch above
                segments[-1] += fold(p)
        head, *middle, tail = segments
        middle = [m for m in middle if m]
        lower = not self.cased
        if not head and not tail and not middle:
            return lambda t: True  # "*": any value
        if not head and not tail and len(middle) == 1:
            needle = middle[0]
            return (lambda t: needle in t.lower()) if lower else (lambda t: needle in t)
        if not middle and not tail:
            return (lambda t: t.lower().startswith(head)) if lower else (lambda t: t.startswith(head))
        if not middle and not head:
            return (lambda t: t.lower().endswith(tail)) if lower else (lambda t: t.endswith(tail))

        def ordered(t: str) -> bool:
            t = fold(t)
            if len(t) < len(head) + len(tail) or not t.startswith(head) or not t.endswith(tail):
                return False
            at, end = len(head), len(t) - len(tail)
            for seg in middle:
                found = t.find(seg, at, end)
                if found < 0:
                    return False
                at = found + len(seg)
            return True

        return ordered

    def one(self, text: str) -> bool:
        return self._fn(text)


MANY, ONE = SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE


def _re2_escape(text: str | SpecialChars) -> str:
    return "".join("\\" + c if not (c.isalnum() or c == "_") and ord(c) < 128 else c for c in str(text))


def _search(compiled: Any, text: str, full: bool = False) -> bool:
    try:
        return (compiled.fullmatch(text) if full else compiled.search(text)) is not None
    except (UnicodeError, ValueError, TypeError):  # a lone surrogate cannot be handed to RE2
        return False


@dataclass(frozen=True)
class Regex(Test):
    """`|re` (with `|i`, `|m`, `|s`): found anywhere in the text, by RE2. A literal the pattern cannot match
    without (`:assumed-role/aws:` in `.+:assumed-role/aws:.+`) is looked for first, which rules most texts out
    at the cost of a substring search."""

    pattern: str
    flags: str = ""
    _compiled: Any = field(init=False, repr=False, compare=False)
    _needle: tuple[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = f"(?{self.flags})" if self.flags else ""
        object.__setattr__(self, "_compiled", _RE2.compile(prefix + self.pattern))
        object.__setattr__(self, "_needle", required_literal(prefix + self.pattern))

    @property
    def needle(self) -> tuple[str, bool]:
        """The literal every match contains, and whether it is case-folded (see `required_literal`)."""
        return self._needle

    def one(self, text: str) -> bool:
        needle, fold = self._needle
        if needle and needle not in (text.casefold() if fold else text):
            return False
        return _search(self._compiled, text)


def required_literal(pattern: str) -> tuple[str, bool]:
    """The longest run of literal characters at the top level of a pattern with no top-level alternation
    (every match contains it), case-folded when the pattern ignores case (then only an ASCII one, whose
    case-insensitive matches case-folding finds); "" when there is none or the pattern is beyond Python's
    parser (RE2 alone decides then)."""
    try:
        parsed = sre.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return "", False
    fold = bool(parsed.state.flags & re.IGNORECASE)
    runs, run = [], ""
    for op, arg in parsed:
        if str(op) == "LITERAL":
            run += chr(arg)
        elif str(op) == "BRANCH":
            return "", False
        else:
            runs.append(run)
            run = ""
    runs.append(run)
    best = max(runs, key=len)
    if fold and not best.isascii():
        return "", False
    return (best.casefold() if fold else best), fold


@dataclass(frozen=True)
class Cidr(Test):
    """`|cidr`: the text is an IP address inside the network (a text that is no address never is)."""

    network: Network

    def one(self, text: str) -> bool:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        return address.version == self.network.version and address in self.network


@dataclass(frozen=True)
class Number(Test):
    """A number in the rule: the value spelled the same way."""

    spelling: str

    def one(self, text: str) -> bool:
        return text == self.spelling


@dataclass(frozen=True)
class Boolean(Test):
    """true or false in the rule: the value is that boolean (or spelled as one: "True", 1, 0)."""

    value: bool

    def one(self, text: str) -> bool:
        return text.lower() in (("true", "1") if self.value else ("false", "0"))


_COMPARE = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}


@dataclass(frozen=True)
class Compare(Test):
    """`|lt`, `|lte`, `|gt`, `|gte`: the value read as a number compares so with `number`."""

    op: str
    number: float

    def one(self, text: str) -> bool:
        try:
            value = float(text)
        except ValueError:
            return False
        return value == value and _COMPARE[self.op](value, self.number)  # NaN never compares


@dataclass(frozen=True)
class Null(Test):
    """`field: null`: the field has no value."""

    def matches(self, texts: Sequence[str]) -> bool:
        return not texts


@dataclass(frozen=True)
class Exists(Test):
    """`|exists: true|false`."""

    exists: bool

    def matches(self, texts: Sequence[str]) -> bool:
        return bool(texts) == self.exists


@dataclass(frozen=True)
class FieldRef(Test):
    """`|fieldref` (and with `|startswith`, `|endswith`, `|contains`): compares with another field's values,
    ignoring case. Not a text test: `Leaf` reads both fields."""

    other: Path
    starts: bool = False
    ends: bool = False

    def pair(self, mine: str, theirs: str) -> bool:
        a, b = mine.lower(), theirs.lower()
        if self.starts and self.ends:
            return b in a
        if self.starts:
            return a.startswith(b)
        if self.ends:
            return a.endswith(b)
        return a == b
