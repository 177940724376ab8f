"""Split a sequence into batches within a service's count and byte limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def batches(items: Sequence[T], max_count: int, max_bytes: int, size: Callable[[T], int]) -> Iterator[list[T]]:
    """Consecutive batches of at most `max_count` items and `max_bytes` bytes, in input order.

    An item larger than `max_bytes` on its own travels alone (the caller shrinks it beforehand if
    the service would refuse it).
    """
    batch: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if batch and (len(batch) >= max_count or total + n > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += n
    if batch:
        yield batch
