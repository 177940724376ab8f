"""`python -m bench.compare --base REV`: this checkout's figures against another commit's, in one run.

The commit is exported with `git archive` under build/bench-base/ and both trees run the same
measurements with this virtualenv's interpreter, alternating base and head each round so that a busier
or quieter machine shifts both alike:

  engine     `python -m bench engine`: the engine's b/a (decode + every match rule against the decode
             floor) and its events/s (with --same-rules, the head keeps only the base's rule ids);
  stateful   `bench.stateful.throughput()`: stage 2 facts/s for every built-in stateful rule;
  live       `python -m bench.live --json`: alert latency p50/p99 through both KCL daemons on an
             emulator of its own (minutes per round).

Printed per figure: the median of each side, head/base, and whether head is within the tolerance
(default 5%) of base in the direction that matters (throughput not lower, latency not higher).
Nothing fails on a number; the exit status is 0 unless a side could not be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASES = ROOT / "build" / "bench-base"


def _engine(out: str) -> dict[str, float]:
    ba = re.search(r"b/a = ([0-9.]+)", out)
    rate = re.search(r"\(b\) engine[^\n]*?\s([0-9,]+)\s+[0-9.]+\s+[0-9.]+\n", out)
    if not ba or not rate:
        raise ValueError(f"no b/a or (b) line in the engine bench's output:\n{out[-2000:]}")
    return {"engine b/a": float(ba.group(1)), "engine events/s": float(rate.group(1).replace(",", ""))}


def _stateful(out: str) -> dict[str, float]:
    result = json.loads(out.strip().splitlines()[-1])
    return {"stage 2 facts/s": float(result["facts_per_s"]), "stage 2 rules": float(result["rules"])}


def _live(out: str) -> dict[str, float]:
    result = json.loads(out[out.index("{") :])
    latency = result["latency"]
    return {"live p50 s": float(latency["p50_s"]), "live p99 s": float(latency["p99_s"])}


# Runs on both trees: only the names every version since the refactor has. BENCH_RULES restricts the stateful
# rules to the ids both sides have, so that a rule added since the base does not count against the head.
STATEFUL_CODE = """
import json, os, time
from pipeline.config import Config
from pipeline.rules import builtin_rules
from pipeline.stateful.state import KeyedState
from pipeline.stateful.synthetic import FAST, mixed_facts
try:
    from pipeline.stateful.rule import StatefulRule
except ImportError:
    from pipeline.stateful.kinds import StatefulRule
only = set(filter(None, os.environ.get("BENCH_RULES", "").split(",")))
rules = [r for r in builtin_rules() if isinstance(r, StatefulRule) and (not only or r.id in only)]
facts = mixed_facts(200_000, seed=1)
best = None
for _ in range(3):
    state = KeyedState.for_rules(rules, Config.from_dict({"rules": FAST}))
    start = time.process_time()
    for i in range(0, len(facts), 500):
        state.add(facts[i : i + 500])
    state.flush()
    took = time.process_time() - start
    best = took if best is None else min(best, took)
print(json.dumps({"rules": len(rules), "facts_per_s": len(facts) / best}))
"""

RULE_IDS_CODE = """
from pipeline.rules import builtin_rules
print(",".join(sorted(r.id for r in builtin_rules())))
"""

MEASUREMENTS: dict[str, tuple[list[str], Callable[[str], dict[str, float]]]] = {
    "engine": (["-m", "bench", "engine"], _engine),
    "stateful": (["-c", STATEFUL_CODE], _stateful),
    "live": (["-m", "bench.live", "--json"], _live),
}

HIGHER_IS_BETTER = {  # which way each figure improves
    "engine b/a": True,
    "engine events/s": True,
    "stage 2 facts/s": True,
    "live p50 s": False,
    "live p99 s": False,
    "stage 2 rules": True,
}


def export(rev: str) -> tuple[Path, str]:
    """The tree of `rev` under build/bench-base/<sha>, exported once."""
    try:
        sha = subprocess.run(  # noqa: S603 (argv built here: git rev-parse of the revision asked for)
            ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],  # noqa: S607 (git from PATH, as a developer runs it)
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"bench.compare: {rev!r} is not a commit of this repository ({exc.stderr.strip()})") from exc
    tree = BASES / sha
    if not (tree / ".exported").exists():
        tree.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as archive:
            subprocess.run(  # noqa: S603 (argv built here: git archive of a resolved commit)
                ["git", "archive", "--format=tar", sha],  # noqa: S607 (git from PATH, as a developer runs it)
                cwd=ROOT,
                stdout=archive,
                check=True,
            )
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(tree, filter="data")
        (tree / ".exported").touch()
    return tree, sha


def measure(tree: Path, name: str, env: dict[str, str]) -> dict[str, float]:
    """One run of measurement `name` on the code of `tree`, with this interpreter."""
    args, parse = MEASUREMENTS[name]
    # The tree first on the path: its `pipeline`, `consumers` and `bench` shadow the editable install's.
    run_env = {**os.environ, **env, "PYTHONPATH": str(tree)}
    done = subprocess.run(  # noqa: S603 (argv built here: this interpreter and a fixed measurement)
        [sys.executable, *args], cwd=tree, env=run_env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} on {tree} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return parse(done.stdout)


def rule_ids(tree: Path) -> set[str]:
    """The ids of the built-in rules of the code in `tree`."""
    done = subprocess.run(  # noqa: S603 (argv built here: this interpreter and fixed code)
        [sys.executable, "-c", RULE_IDS_CODE],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.strip().split(","))


def verdict(higher_is_better: bool, base: float, head: float, tolerance: float) -> str:
    ratio = head / base if base else float("inf")
    ok = ratio >= 1 - tolerance if higher_is_better else ratio <= 1 + tolerance
    return "within" if ok else "OUTSIDE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against (any git revision)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of each measurement, base and head alternating (default 3)"
    )
    parser.add_argument("--tolerance", type=float, default=0.05, help="accepted change against base (default 0.05)")
    parser.add_argument(
        "--events", type=int, default=60_000, help="events of each engine run (BENCH_EVENTS; default 60,000)"
    )
    parser.add_argument(
        "--same-rules",
        action="store_true",
        help="the head runs only the rules both commits have (a rule added since the base would cost the head)",
    )
    parser.add_argument(
        "measurements",
        nargs="*",
        default=["engine", "stateful"],
        choices=sorted(MEASUREMENTS),
        help="what to measure (default: engine stateful; live takes minutes per round)",
    )
    args = parser.parse_args(argv)
    base_tree, sha = export(args.base)
    sides = {"base": base_tree, "head": ROOT}
    env = {"BENCH_EVENTS": str(args.events)}
    if args.same_rules:
        shared = rule_ids(base_tree) & rule_ids(ROOT)
        env["BENCH_RULES"] = ",".join(sorted(shared))
        print(f"head: only the {len(shared)} built-in rule ids both sides have", file=sys.stderr)
    print(f"base {sha[:12]} ({args.base}) against head {ROOT}; {args.rounds} rounds, alternating", file=sys.stderr)
    figures: dict[str, dict[str, list[float]]] = {}
    for name in args.measurements:
        for r in range(args.rounds):
            order = ("base", "head") if r % 2 == 0 else ("head", "base")
            for side in order:
                print(f"  {name} round {r + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
                measured = measure(sides[side], name, env)
                print(f"    {measured}", file=sys.stderr, flush=True)
                for key, value in measured.items():
                    figures.setdefault(key, {}).setdefault(side, []).append(value)
    print(f"{'figure':<18}{'base':>12}{'head':>12}{'head/base':>11}  {int(args.tolerance * 100)}%")
    for key, sided in figures.items():
        base, head = statistics.median(sided["base"]), statistics.median(sided["head"])
        ratio = head / base if base else float("inf")
        said = verdict(HIGHER_IS_BETTER[key], base, head, args.tolerance)
        print(f"{key:<18}{base:>12,.3f}{head:>12,.3f}{ratio:>11.3f}  {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
