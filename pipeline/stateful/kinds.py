"""What a stateful rule file imports: the four kinds' decorators, the step names and `StatefulRule`.

A stateful rule is a function `(e: Event, p: Params) -> Step | list[Step] | None` that runs in
stage 1 and says which entity key the event concerns and what step it plays; stage 2 keeps the
per-key state and decides. Each decorator declares, besides the metadata every rule has:

- `events`: what stage 1 indexes the rule by (only those events reach the extractor);
- `fields`: the only fields a fact may carry to stage 2;
- `window` (and `threshold`, `history`, ...): a duration or count, or the name of a parameter
  holding one, so configuration can change it;
- `ttl`: how long a key's state lives after its last fact (each kind has a safe default);
- `dedup`: the period within which findings for the same key share one finding id;
- `hit`: optionally, `hit(key, context, params) -> Hit`, what a finding says (resources, summary).

Stage 2 applies facts in event-time order as the watermark passes them, so the outcome does not
depend on arrival order within the allowed lateness; at equal event times steps are ordered by
`STEP_RANK` (a launch before its tags, a key's creation before its use).
"""

from pipeline.stateful.absence import absence
from pipeline.stateful.first_seen import first_seen
from pipeline.stateful.rule import StatefulRule
from pipeline.stateful.sequence import sequence
from pipeline.stateful.steps import END, FIRST, SATISFY, START, STEP_RANK, THEN, UNSATISFY, StepName
from pipeline.stateful.threshold import threshold

__all__ = [
    "END",
    "FIRST",
    "SATISFY",
    "START",
    "STEP_RANK",
    "THEN",
    "UNSATISFY",
    "StatefulRule",
    "StepName",
    "absence",
    "first_seen",
    "sequence",
    "threshold",
]
