"""Worker processes for the core's parallel work: `RouterPool` runs stage 1 on whole files for `backfill`
(`pipeline.routed`)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from pipeline.pack import Pack
from pipeline.routed import RoutedFile, route_file, start_worker

# What the fork server imports once before it forks the workers: every rule module and the bundled Sigma
# rules, parsed (`pipeline.routed` loads them), so a worker starts in a fraction of a fresh interpreter's time.
PRELOAD = ["pipeline.routed_preload"]


class RouterPool:
    """`processes` worker processes running stage 1 of `pack` on whole files (a `pipeline.routed.Router`).

    The processes come from a fork server (started clean, not forked from this process, whose download
    threads hold locks a fork would copy) and are all started at once, while this process lists the archive.
    """

    def __init__(self, pack: Pack, processes: int, sigma: Sequence[str] = ()) -> None:
        only = [rule.id for rule in pack.rules]
        overrides = {k: dict(v) for k, v in pack.overrides.items()}
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self.pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=context,
            initializer=start_worker,
            initargs=(pack.config, only, overrides, list(sigma)),
        )
        for _ in range(processes):  # start them now: they bind the pack while the archive is listed
            self.pool.submit(int)

    def submit(self, data: bytes, origin: str, start: float, end: float, max_size: int) -> Future[RoutedFile]:
        return self.pool.submit(route_file, data, origin, start, end, max_size)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
