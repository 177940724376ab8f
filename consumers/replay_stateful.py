"""Stage 2 of a replay, run by the replay's stateful daemon: `python -m consumers.replay_stateful`."""

from consumers.replay_processors import build_stateful, main

if __name__ == "__main__":
    main(build_stateful)
