"""Stage 1 of a replay, run by the replay's router daemon: `python -m consumers.replay_router`."""

from consumers.replay_processors import build_router, main

if __name__ == "__main__":
    main(build_router)
