"""`python -m bench [NAME...]`: run the benches (every bench/*.py module with a `run()`), engine first."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from pipeline.runtime import tune_gc

FIRST = ("engine",)


def discover() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (n not in FIRST, FIRST.index(n) if n in FIRST else 0, n))


def main(argv: list[str]) -> int:
    tune_gc()  # as every trailwarden process runs; the baselines of each bench get the same setting
    names = argv or discover()
    unknown = [n for n in names if n not in discover()]
    if unknown:
        print(f"bench: unknown bench(es) {unknown}; available: {discover()}", file=sys.stderr)
        return 2
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if not callable(run):
            continue
        print(f"== bench.{name}", flush=True)
        started = time.perf_counter()
        run()
        print(f"   ({time.perf_counter() - started:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
