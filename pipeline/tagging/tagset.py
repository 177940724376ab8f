"""`TagSet`: what stage 2 keeps per watched resource, its values of its schema's required tags.

A TagSet is small and immutable: the schema (shared), a tuple of values aligned with the schema's keys
(None where the tag is absent) and the creator's ARN (interned by the fact that carried it). Equal
tag sets are one object (`tag_set`), so a million resources created by a few pipelines with a few
sets of tags cost a pointer each. It reads as a mapping of the tags present.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pipeline.tagging.schema import Schema

_SHARED_LIMIT = 1 << 16  # distinct tag sets kept shared; past it (attacker-chosen values) each is its own


class TagSet(Mapping[str, str]):
    """A resource's required tags (a mapping of those present), its schema and who created it."""

    __slots__ = ("creator", "schema", "tag_values")

    def __init__(self, schema: Schema, values: tuple[str | None, ...], creator: str = "") -> None:
        self.schema = schema
        self.tag_values = values
        self.creator = creator

    def __getitem__(self, key: str) -> str:
        i = self.schema.index.get(key)
        value = None if i is None else self.tag_values[i]
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in zip(self.schema.keys, self.tag_values, strict=True) if v is not None)

    def __len__(self) -> int:
        return sum(v is not None for v in self.tag_values)

    def __repr__(self) -> str:
        return f"TagSet({self.schema.type}, {dict(self)}, by {self.creator or '?'})"


_shared: dict[tuple[Schema, tuple[str | None, ...], str], TagSet] = {}


def tag_set(schema: Schema, values: tuple[str | None, ...], creator: str) -> TagSet:
    """The TagSet of these values: the one already made, when there is one."""
    key = (schema, values, creator)
    found = _shared.get(key)
    if found is None:
        found = TagSet(schema, values, creator)
        if len(_shared) < _SHARED_LIMIT:
            _shared[key] = found
    return found


def aligned(schema: Schema, tags: Mapping[str, object]) -> tuple[str | None, ...]:
    """`tags`' values of the schema's keys, in the schema's order (None where absent)."""
    return tuple(v if type(v := tags.get(k)) is str else None for k in schema.keys)
