"""Worker processes for the core's parallel work: `RouterPool` runs stage 1 on whole files for `backfill`
(`pipeline.routed`)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

from pipeline.pack import Pack
from pipeline.routed import RoutedFile, route_file, start_worker


class RouterPool:
    """`processes` worker processes running stage 1 of `pack` on whole files (a `pipeline.routed.Router`)."""

    def __init__(self, pack: Pack, processes: int) -> None:
        only = [rule.id for rule in pack.rules]
        overrides = {k: dict(v) for k, v in pack.overrides.items()}
        # spawn, not fork: the parent already runs download threads, and a fork would copy the locks they hold.
        self.pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(pack.config, only, overrides),
        )

    def submit(self, data: bytes, origin: str, start: float, end: float, max_size: int) -> Future[RoutedFile]:
        return self.pool.submit(route_file, data, origin, start, end, max_size)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
