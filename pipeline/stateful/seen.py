"""`SeenIds`: the set of applied-fact digests (signed 64-bit ints) in about 8 bytes each.

A Python set of ints costs some 60 bytes per digest (the int object and the table slot); stage 2 keeps
one or more per tracked key. Here the digests live in one sorted `array("q")`, looked up by binary
search, and the newest in a small set that is merged into the array once it holds a 32nd as many (a set
costs some 70 bytes per digest: a larger share would cost more than the array it sits beside).
It is a set to its users: `in`, `add`, `update`, `difference_update`, `len`, iteration, equality, `|`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import chain, filterfalse

_MIN_FRESH = 4096


class SeenIds:
    """A compact set of signed 64-bit ints (see the module docstring)."""

    __slots__ = ("_fresh", "_sorted")

    def __init__(self, values: Iterable[int] = ()) -> None:
        self._sorted = array("q")
        self._fresh: set[int] = set()
        self.update(values)

    def __contains__(self, value: object) -> bool:
        if value in self._fresh:
            return True
        if type(value) is not int:
            return False
        ordered = self._sorted
        i = bisect_left(ordered, value)
        return i < len(ordered) and ordered[i] == value

    def add(self, value: int) -> None:
        if value in self:
            return
        self._fresh.add(value)
        if len(self._fresh) >= max(_MIN_FRESH, len(self._sorted) >> 5):
            self._merge()

    def update(self, values: Iterable[int]) -> None:
        if isinstance(values, array | list) and len(values) >= _MIN_FRESH:  # a restore: merge all at once
            if self._sorted or self._fresh:
                self._sorted = array("q", sorted(set(chain(self._sorted, self._fresh, values))))
                self._fresh = set()
            else:  # a snapshot's digests are distinct (each fact's in one bucket): no set needed
                self._sorted = array("q", sorted(values))
            return
        for value in values:
            self.add(value)

    def difference_update(self, values: Iterable[int]) -> None:
        gone = set(values)
        if not gone:
            return
        self._fresh -= gone
        self._sorted = array("q", filterfalse(gone.__contains__, self._sorted))

    def _merge(self) -> None:
        self._sorted = array("q", sorted(chain(self._sorted, self._fresh)))
        self._fresh = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._fresh)

    def __iter__(self) -> Iterator[int]:
        return chain(self._sorted, self._fresh)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SeenIds | set | frozenset):
            return set(self) == set(other)
        return NotImplemented

    def __or__(self, other: Iterable[int]) -> set[int]:
        """The union, as a plain set (for inspection and tests; state never needs it)."""
        return set(self).union(other)

    __ror__ = __or__
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SeenIds({len(self)} digests)"
