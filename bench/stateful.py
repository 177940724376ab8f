"""Stateful stage: facts/s through the keyed state, and resident bytes per tracked key.

`run()` prints (1) the rate at which stage 2 applies generated facts for every built-in stateful
rule, in batches as the KCL hands records over; (2) for 100,000 and 1,000,000 tracked resources
(creations, half of them tagged a minute later, all still tracked), the growth of the resident set
of a fresh subprocess divided by the keys held, with the snapshot's size and the CPU seconds to write it
and to restore it into a fresh state: EC2 instances alone, and beside them a mixed population of every
type of the tag table (a quarter EC2 instances, the rest of resource-missing-required-tags' 17 types,
keyed account:region:type:id, with longer ids). BENCH_KEYS (e.g. "100000" or "100000,1000000") chooses
the populations' sizes.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500
KEYS = tuple(int(n) for n in os.environ.get("BENCH_KEYS", "100000,1000000").split(",") if n.strip())


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _state():
    from pipeline.config import Config
    from pipeline.rules import builtin_rules
    from pipeline.stateful.kinds import StatefulRule
    from pipeline.stateful.state import KeyedState
    from pipeline.stateful.synthetic import FAST

    rules = [r for r in builtin_rules() if isinstance(r, StatefulRule)]
    return KeyedState.for_rules(rules, Config.from_dict({"rules": FAST}))


def throughput(n: int = 200_000) -> dict[str, float]:
    from pipeline.stateful.synthetic import mixed_facts

    facts = mixed_facts(n, seed=1)
    state = _state()
    findings = 0
    start = time.perf_counter()
    for i in range(0, len(facts), BATCH):
        findings += len(state.add(facts[i : i + BATCH]))
    findings += len(state.flush())
    elapsed = time.perf_counter() - start
    return {"facts": len(facts), "seconds": elapsed, "facts_per_s": len(facts) / elapsed, "findings": findings}


def _child(n: int, population: str = "ec2") -> None:
    """In a fresh process: track `n` resources ("ec2": instances; "mixed": every type of the tag
    table), report the resident-set growth per key."""
    from pipeline.stateful import snapshot
    from pipeline.stateful.synthetic import instance_facts, resource_facts

    state = _state()
    facts = (
        instance_facts(n, seed=2, rate=50.0, tagged=0.5)
        if population == "ec2"
        else resource_facts(n, seed=2, rate=50.0, tagged=0.5)
    )
    gc.collect()
    base = _rss()
    start = time.perf_counter()
    batch = []
    for fact in facts:
        batch.append(fact)
        if len(batch) >= BATCH:
            state.add(batch)
            batch = []
    state.add(batch)
    del batch
    elapsed = time.perf_counter() - start
    gc.collect()
    grown = _rss() - base
    keys = state.keys()
    t0 = time.process_time()
    data = snapshot.dumps(state)
    dump_s = time.process_time() - t0
    t0 = time.process_time()
    restored = snapshot.load_into(_state(), data)
    load_s = time.process_time() - t0
    if restored.keys() != keys:
        raise SystemExit(f"the restore holds {restored.keys()} keys, the state {keys}")
    print(
        json.dumps(
            {
                "instances": n,
                "keys": keys,
                "pending": len(state.pending),
                "seen": len(state.seen),
                "bytes_per_key": grown / max(keys, 1),
                "rss_growth": grown,
                "fill_s": elapsed,
                "snapshot_bytes_per_key": len(data) / max(keys, 1),
                "snapshot_s": dump_s,
                "restore_s": load_s,
            }
        )
    )


def memory(n: int, population: str = "ec2") -> dict[str, float]:
    code = f"from bench.stateful import _child; _child({n}, {population!r})"
    out = subprocess.run(  # noqa: S603 (fixed argv: this interpreter and our own code)
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> None:
    t = throughput()
    print("stateful stage (stage 2, every built-in stateful rule, generated facts, one core)")
    print(
        f"  {t['facts']:,} facts in {t['seconds']:.2f} s: {t['facts_per_s']:,.0f} facts/s ({t['findings']:,} findings)"
    )
    for n in KEYS:
        for population, what in (("ec2", "EC2 instances"), ("mixed", "resources of 18 types")):
            m = memory(n, population)
            print(
                f"  {m['keys']:,} tracked {what}: {m['bytes_per_key']:,.0f} resident bytes per key "
                f"({m['rss_growth'] / 2**20:,.0f} MiB, {m['seen']:,} seen-fact ids, filled in {m['fill_s']:.1f} s); "
                f"snapshot {m['snapshot_bytes_per_key']:.0f} bytes per key, written in {m['snapshot_s']:.2f} s, "
                f"restored in {m['restore_s']:.2f} s (CPU)"
            )


if __name__ == "__main__":
    run()
