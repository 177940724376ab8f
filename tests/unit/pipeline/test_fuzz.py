"""Bounded-time fuzzing of the decoders and the rule engine (tests/reliability/fuzz.py), part of `make test`.

The budget is TRAILWARDEN_FUZZ_SECONDS (default 30); the seed is TRAILWARDEN_FUZZ_SEED, or a new one each
run, named in any failure together with the input's index, so `TRAILWARDEN_FUZZ_SEED=<seed>` replays it.
`make reliability` runs the same target for longer and records its row.
"""

from __future__ import annotations

import gzip
import os
import random

import pytest

from tests.reliability import fuzz

SECONDS = float(os.environ.get("TRAILWARDEN_FUZZ_SECONDS", "30"))
SEED = int(os.environ.get("TRAILWARDEN_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))


@pytest.mark.timeout(int(SECONDS) + 120)
def test_fuzz_decoders_and_rules_for_a_time_budget() -> None:
    tally = fuzz.run(SECONDS, SEED)
    assert tally.inputs >= 100, f"only {tally.inputs} inputs in {SECONDS}s"
    # Every mutator ran, and the mutations reach both outcomes: events for the rules and dead letters.
    assert set(tally.by_mutator) == set(fuzz.MUTATORS)
    assert tally.events and tally.dead_letters and tally.findings


def test_a_fixed_seed_covers_every_mutator_the_same_way_each_time() -> None:
    first, second = fuzz.run(60, seed=0, limit=140), fuzz.run(60, seed=0, limit=140)
    assert first.inputs == second.inputs == 140
    assert (first.events, first.dead_letters, first.findings) == (second.events, second.dead_letters, second.findings)
    assert all(first.by_mutator[name] == 20 for name in fuzz.MUTATORS)


def test_the_target_fails_on_a_lost_record() -> None:
    target = fuzz.Target()
    records = fuzz.corpus_records()[:3] or fuzz.rule_records(target.detector)[:3]
    data = fuzz.wrap(records, "cwl")
    target.check(data, len(records))
    with pytest.raises(fuzz.FuzzFailure, match="records in"):
        target.check(data, len(records) + 1)  # one record more than came out: an input went missing


def test_the_target_counts_a_corrupt_gzip_as_one_dead_letter() -> None:
    target = fuzz.Target()
    blob = bytearray(gzip.compress(b'{"Records": []}' * 50))
    blob[len(blob) // 2] ^= 0xFF
    target.check(bytes(blob), 1)
    assert target.tally.dead_letters == 1


def test_rules_take_events_at_the_ends_of_time_without_error() -> None:
    from pipeline.event import Event

    target = fuzz.Target()
    for record in fuzz.bases(target.detector):
        for when in ("9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
            event = Event.from_record({**record, "eventTime": when}, "edge")
            if isinstance(event, Event):
                target.detector.process(event)
    assert not target.detector.stats.rule_errors, target.detector.stats.last_errors[:2]
