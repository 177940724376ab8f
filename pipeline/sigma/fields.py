"""How a Sigma field name reads a CloudTrail record, and the text a value is matched as.

- A field name is a dotted path into the record (`requestParameters.userName`); a step into an array
  looks into each of its elements, so a path can give several values and a condition on it holds when
  one of them matches (`not` holds when none does).
- Values are matched as text: strings as they are, numbers as JSON spells them, booleans as `true` and
  `false`. An object (or an array inside an array) reads as its compact JSON with the strings inside it
  written as they are, unescaped: `{"policyDocument":"{"Statement":[...]}"}`. So
  `requestParameters|contains: Suspended` finds a versioning status anywhere in the request, and
  `requestParameters|contains: '"s3:GetObject"'` finds the action in the policy document (a JSON string)
  the request carries, as the rule's author read it.
- JSON null and a missing key are the same: no value (`field: null` matches, `|exists: true` does not).

Every function here takes attacker-controlled records and never raises.
"""

from __future__ import annotations

from typing import Any

Path = tuple[str, ...]


def split(field: str) -> Path:
    """The path of a Sigma field name."""
    return tuple(field.split("."))


def text(value: Any) -> str:
    """The text a non-null JSON value is matched as."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)  # JSON's spelling of a finite float (Python's json module writes the same)
    out: list[str] = []
    try:
        _render(value, out)
    except RecursionError:
        return ""
    return "".join(out)


def _render(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is dict:
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(f'{"," if i else ""}"{key}":')
            _render(item, out)
        out.append("}")
    elif kind is list:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _render(item, out)
        out.append("]")
    elif kind is str:
        out.append(f'"{value}"')
    elif value is None:
        out.append("null")
    else:
        out.append(text(value))


def values(record: Any, path: Path) -> list[Any]:
    """Every non-null value at `path`, looking into each element of the arrays on the way and at the end
    (without recursion: a record may nest arrays thousands deep)."""
    out: list[Any] = []
    stack: list[tuple[Any, int]] = [(record, 0)]
    end = len(path)
    while stack:
        value, at = stack.pop()
        while at < end and type(value) is dict:
            value = value.get(path[at])
            at += 1
        if type(value) is list:
            if at < end:
                stack.extend((item, at) for item in reversed(value))
            else:
                out.extend(v for v in value if v is not None)
        elif at == end and value is not None:
            out.append(value)
    return out


def texts(record: Any, path: Path) -> list[str]:
    """The texts of the values at `path` (see `values`)."""
    return [text(v) for v in values(record, path)]
