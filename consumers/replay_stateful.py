"""Stage 2 of a replay, run by the replay's stateful daemon: `python -m consumers.replay_stateful`."""

from consumers.common import run_processor
from consumers.replay_processors import build_stateful

if __name__ == "__main__":
    run_processor(build_stateful)
