"""Stage 1 of a replay, run by the replay's router daemon: `python -m consumers.replay_router`."""

from consumers.common import run_processor
from consumers.replay_processors import build_router

if __name__ == "__main__":
    run_processor(build_router)
