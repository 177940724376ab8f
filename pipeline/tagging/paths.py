"""Field paths into a CloudTrail record, as the resource table writes them.

    requestParameters.tagSpecificationSet.items[resourceType=volume].tags[]
    responseElements.loadBalancers[].loadBalancerArn
    item.resourceId

A path starts at a part of the record (`requestParameters`, `responseElements`,
`additionalEventData`) or, inside an operation that walks a list of items, at `item`.
Each further step names a field; `name[]` goes into each element of the list the field holds (an
object stands for a list of one, as S3 writes a single XML element), and `name[field=value]` into
each element whose `field` is `value`. Reading never raises: a step that finds nothing gives nothing.
"""

from __future__ import annotations

import re
from typing import Any

ROOTS = ("requestParameters", "responseElements", "additionalEventData")
ITEM = "item"
_STEP = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?:(?P<field>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\]]+))?\])?")


class PathError(ValueError):
    """A path that is not written as the table's paths are (the message says why)."""


class Path:
    """A compiled path: its steps (field, whether it goes into a list, the filter on the elements)."""

    __slots__ = ("root", "steps", "text")

    def __init__(self, text: str, root: str, steps: tuple[tuple[str, bool, str, str], ...]) -> None:
        self.text = text
        self.root = root
        self.steps = steps

    def read(self, record: dict[str, Any], item: Any = None) -> list[Any]:
        """Every value the path reaches in `record` (or, for an `item.` path, in `item`)."""
        values: list[Any] = [item if self.root == ITEM else record.get(self.root)]
        for name, each, field, wanted in self.steps:
            found: list[Any] = []
            for value in values:
                if type(value) is not dict:
                    continue
                value = value.get(name)
                if not each:
                    if value is not None:
                        found.append(value)
                    continue
                for element in value if type(value) is list else (value,) if type(value) is dict else ():
                    if not field or (type(element) is dict and element.get(field) == wanted):
                        found.append(element)
            values = found
            if not values:
                break
        return [v for v in values if v is not None]

    def __repr__(self) -> str:
        return f"Path({self.text!r})"


def parse(text: Any, items: bool = False) -> Path:
    """The compiled path for `text`; `items` allows paths from `item`. Raises PathError."""
    if not isinstance(text, str) or not text.strip():
        raise PathError(f'{text!r} is not a path; write e.g. "requestParameters.bucketName"')
    parts = text.split(".")
    root = parts[0]
    roots = (*ROOTS, ITEM) if items else ROOTS
    if root not in roots:
        where = "" if items or root != ITEM else " (`item` needs the operation's `each`)"
        raise PathError(f"{text!r} starts at {root!r}{where}; a path starts at one of {', '.join(roots)}")
    steps = []
    for part in parts[1:]:
        if not part:
            raise PathError(f"{text!r} has an empty step (two dots, or a dot at an end)")
        step = _STEP.fullmatch(part)
        if step is None:
            raise PathError(f"{text!r}: step {part!r} is not a field name, `name[]` or `name[field=value]`")
        each = part.endswith("]")
        steps.append((step["name"], each, step["field"] or "", step["value"] or ""))
    if root == ITEM and not steps:
        return Path(text, root, ())
    if not steps:
        raise PathError(f"{text!r} names no field under {root}")
    return Path(text, root, tuple(steps))
