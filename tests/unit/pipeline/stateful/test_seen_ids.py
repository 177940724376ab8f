"""`SeenIds` behaves as the set of ints it replaces, across merges of its fresh part and removals."""

from __future__ import annotations

import random

from pipeline.stateful.seen import SeenIds


def test_seen_ids_agree_with_a_set_through_adds_merges_and_removals() -> None:
    rng = random.Random(5)
    seen, expected = SeenIds(), set()
    batches: list[list[int]] = []
    for _ in range(12):
        batch = [rng.randrange(-(2**63), 2**63) for _ in range(3000)]
        batch += rng.sample(sorted(expected), min(50, len(expected)))  # repeats are not added twice
        for value in batch:
            assert (value in seen) == (value in expected)
            seen.add(value)
            expected.add(value)
        batches.append(batch)
        if len(batches) > 4:
            gone = batches.pop(0)
            seen.difference_update(gone)
            expected.difference_update(gone)
        assert len(seen) == len(expected) and seen == expected
    assert len(seen._sorted) > len(seen._fresh) > 0  # both parts were exercised
    absent = [rng.randrange(-(2**63), 2**63) for _ in range(2000)]
    assert [v in seen for v in absent] == [v in expected for v in absent]
    assert SeenIds(expected) == expected and SeenIds() == set() and SeenIds([1]) != {2}
    assert SeenIds([1, 2]) | SeenIds([2, 3]) == {1, 2, 3} == {3} | SeenIds([1, 2])
