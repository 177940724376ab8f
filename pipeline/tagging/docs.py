"""The resource table as docs/rules.md shows it: per type, the calls read and the fields read in each."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.tagging.table import KINDS, Operation, ResourceType


def _code(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _operation(op: Operation) -> str:
    parts = [f"ids {_code([p.text for p in op.ids])}" + (" (a URL)" if op.id_form == "url" else "")]
    if op.each is not None:
        parts.insert(0, f"each `{op.each.text}`")
    if op.tags or op.tag_maps:
        parts.append(f"tags {_code([p.text for p in (*op.tags, *op.tag_maps)])}")
    if op.keys:
        parts.append(f"keys {_code([p.text for p in op.keys])}")
    flags = [name for name in ("replace", "all", "all_when_empty", "match_value") if getattr(op, name)]
    flags += [f"not when {p.text}" for p in op.unless]
    if flags:
        parts.append(", ".join(flags))
    return f"{_code(list(op.events))}: {'; '.join(parts)}"


def markdown(table: Mapping[str, ResourceType]) -> str:
    """A markdown table of every type: its rule, and per kind of call the events and fields read."""
    kinds = " | ".join(k.capitalize() for k in KINDS)
    lines = [f"| Type | Rule | {kinds} | Not confirmed against a real record |", "|" + "---|" * (len(KINDS) + 3)]
    for rtype in table.values():
        rule = (
            "ec2-instance-missing-required-tags" if rtype.name == "ec2-instance" else "resource-missing-required-tags"
        )
        cells = [f"`{rtype.name}` ({rtype.title}, `{rtype.source}`)", f"`{rule}`"]
        for kind in KINDS:
            cells.append("<br>".join(_operation(op) for op in rtype.operations if op.kind == kind) or "-")
        cells.append(rtype.unconfirmed or "-")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
