"""The steps a fact plays in its stateful rule, and their order among facts of the same event time."""

from __future__ import annotations

from enum import StrEnum


class StepName(StrEnum):
    """The steps the rule kinds understand. A fact with no step ("") simply counts (threshold, first
    seen); an absence rule with its own `fold` may use steps of its own (e.g. "tags")."""

    START = "start"  # absence: start watching the key
    SATISFY = "satisfy"  # absence: the condition is met
    UNSATISFY = "unsatisfy"  # absence: the condition is lost again
    END = "end"  # absence: forget the key
    FIRST = "first"  # sequence: the first step
    THEN = "then"  # sequence: the step that completes it


START, SATISFY, UNSATISFY, END, FIRST, THEN = StepName

# At equal event times facts apply in this order (a launch before its tags, a key's creation before
# its use, an end last); steps not listed, "" included, rank 1.
STEP_RANK: dict[str, int] = {START: 0, FIRST: 0, SATISFY: 1, UNSATISFY: 1, THEN: 2, END: 3}
