"""The bundled Sigma rules through the engine's index, against the same rules evaluated one by one on
every event, on the same events, one core, in the same run.

  (b) indexed: the engine (`pipeline.engine.MatchEngine`) holding the bundled Sigma match rules: each event
      meets only the rules indexed under its eventSource and eventName (and those no equality on
      either narrows), and raises their findings;
  (c) one by one: every compiled Sigma predicate run on every event, no index, a finding made for each
      match: what a straightforward per-event Sigma matcher does with the same compiled rules.

Both run on the same decoded events (the scenario builder's organization with every attack, plus the
Stratus Red Team detonations, so that the rules have something to find), with the garbage-collector
setting every trailwarden process uses. Figures are the best CPU time of BENCH_REPEAT rounds (default
3), the two run in turn within each round; BENCH_EVENTS sets the volume (default 150,000). The ratio c/b
(target >= 5) is printed with PASS or "below target"; both must find the same matches.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.engine import interleaved, pin_one_core, verdict
from pipeline.config import Config, enabled_rules
from pipeline.engine import MatchEngine, bind, make_finding
from pipeline.event import Event
from pipeline.rule import Hit, MatchRule
from pipeline.scenario import build
from pipeline.sigma import bundled

TARGET = 5.0


def indexed(engine: MatchEngine, events: list[Event]) -> int:
    process = engine.process
    return sum(len(process(e)) for e in events)


def one_by_one(rules: list[tuple[MatchRule, Any]], events: list[Event]) -> int:
    found = 0
    for e in events:
        raw = e.raw
        for rule, predicate in rules:
            if predicate(raw):
                make_finding(rule, e, Hit())
                found += 1
    return found


def stratus_events() -> list[dict[str, Any]]:
    """The Stratus Red Team detonations of tests/fixtures (the bench reads only the repository)."""
    import json
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stratus-red-team" / "detonation-logs"
    return [r for path in sorted(folder.glob("*.json")) for r in json.loads(path.read_text())]


def run() -> None:
    n_events = int(os.environ.get("BENCH_EVENTS", "150000"))
    repeat = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
    where = pin_one_core()
    t0 = time.perf_counter()
    records = build(n_events, seed=42).events + stratus_events()
    events = [e for r in records if isinstance(e := Event.from_record(r), Event)]
    loaded = bundled()
    rules = [r for r in enabled_rules(loaded.rules, Config.from_dict()) if isinstance(r, MatchRule)]
    predicates = {d.rule_id: d.predicate for d in loaded.detections.values()}
    pairs = [(r, predicates[r.id]) for r in rules]
    engine = MatchEngine([bind(r, Config.from_dict()) for r in rules])
    unindexed = sum(1 for r in rules if "*" in r.events and r.events["*"] is None)
    print(
        f"{len(events):,} events (scenario and Stratus Red Team), built in {time.perf_counter() - t0:.1f} s; "
        f"the {len(rules)} bundled Sigma match rules enabled by default ({unindexed} with no eventSource or "
        f"eventName equality, so met by every event); {where}; best CPU time of {repeat} rounds"
    )
    indexed(engine, events[:5000])
    one_by_one(pairs, events[:5000])
    took, result = interleaved({"b": lambda: indexed(engine, events), "c": lambda: one_by_one(pairs, events)}, repeat)
    if result["b"] != result["c"]:
        raise RuntimeError(f"the indexed and one-by-one evaluations disagree: {result}")
    b_s, c_s = took["b"], took["c"]
    print(f"  {'stage':<52}{'events/s':>12}{'us/event':>10}")
    for label, secs in (
        ("(b) indexed: the engine's index, then predicates", b_s),
        ("(c) one by one: every predicate on every event", c_s),
    ):
        print(f"  {label:<52}{len(events) / secs:>12,.0f}{secs / len(events) * 1e6:>10.2f}")
    ratio = c_s / b_s
    print(f"  c/b = {ratio:.1f} (target >= {TARGET}): {verdict(ratio, TARGET)}; both raised {result['b']:,} findings")


if __name__ == "__main__":
    run()
