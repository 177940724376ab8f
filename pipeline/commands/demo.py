"""`trailwarden demo`: what `make run` shows until the live pipeline runs. Builds a scenario (an
organization's benign CloudTrail with attacks injected), sends it through a transport's encoding
and the decoder, scans it with both stages of the rule pack in one process, prints the findings,
then compares them with what the attacks must raise. Exits 1 if an expected finding is missing."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

from pipeline.alerting import ALERTED, AlertPolicy, rule_routes
from pipeline.commands.scenario import add_scenario_arguments, build_from_args
from pipeline.config import Config
from pipeline.decode import DeadLetter, DecodeStats, decode
from pipeline.detector import Detector
from pipeline.encode import FORMATS, encode
from pipeline.event import Event
from pipeline.finding import RESOLVED, Finding, iso_time
from pipeline.output import FORMATS as OUTPUT_FORMATS
from pipeline.output import make_writer, safe
from pipeline.pack import bind_pack
from pipeline.scenario import Comparison, compare


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate a scenario with attacks, scan it, and check every expected finding is raised",
        description="Generate an organization's CloudTrail with attacks injected, decode it from a transport, "
        "scan it with the rule pack (both stages, in one process), print the findings and compare "
        "them with the findings the attacks must raise. Exit status 1 if one is missing.",
    )
    add_scenario_arguments(parser, events=3000)
    parser.add_argument(
        "--transport",
        choices=(*FORMATS, "none"),
        default="cwl",
        help="encode and decode the records as this transport first (default cwl; none: in memory)",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default=None,
        help="findings as a table (default on a terminal) or JSON lines",
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="TOML configuration (default: built-in defaults, with the scenario's scaled periods)",
    )
    parser.add_argument(
        "--sigma",
        action="append",
        default=[],
        metavar="PATH",
        help="also run the Sigma rules of a folder or file (repeatable; besides [sigma] folders "
        "of the configuration; one rule that cannot be loaded stops the command)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="only the expected-vs-found summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    config = Config.load(args.config) if args.config else Config.from_dict()
    try:
        scenario = build_from_args(args, config)
    except ValueError as exc:
        print(f"trailwarden demo: {exc}", file=sys.stderr)
        return 2
    detector = Detector(bind_pack(config, overrides=scenario.overrides, sigma=args.sigma))
    events, stats = _events(scenario.events, args.transport, args.seed)
    findings: list[Finding] = []
    for event in events:
        findings.extend(detector.process(event))
    findings.extend(detector.finish())
    elapsed = time.monotonic() - started

    # Once per delivery, as the dedupe table does: the first alert of an id, then its resolution.
    unique = list({f.delivery_key: f for f in findings}.values())
    if not args.quiet:
        fmt = args.format or ("table" if sys.stdout.isatty() else "json")
        writer = make_writer(fmt, sys.stdout.buffer)
        for finding in unique:
            writer.write(finding)
        writer.close()
    result = compare(scenario.expected, unique, [r.id for r in detector.rules])
    routes = rule_routes(detector.rules, config)
    policy = AlertPolicy.from_config(config).describe()
    print(
        _report(scenario, result, unique, len(events), stats, elapsed, args.transport, routes, policy), file=sys.stderr
    )
    return 0 if result.ok else 1


def _events(records: list[dict[str, Any]], transport: str, seed: int) -> tuple[list[Event], DecodeStats]:
    """The records as the consumers would see them after `transport`, merged back into event-time order."""
    stats = DecodeStats()
    if transport == "none":
        return [e for r in records if isinstance(e := Event.from_record(r, "scenario"), Event)], stats
    out: list[Event] = []
    for name, blob in encode(records, transport, seed=seed):
        out.extend(item for item in decode(blob, name, stats) if not isinstance(item, DeadLetter))
    out.sort(key=lambda e: e.time)  # stable: per-stream order is kept within a second
    return out, stats


def _report(
    scenario: Any,
    result: Comparison,
    findings: list[Finding],
    events: int,
    stats: DecodeStats,
    elapsed: float,
    transport: str,
    routes: dict[str, str],
    policy: str,
) -> str:
    lines = [
        "",
        f"scenario: seed {scenario.seed}, {len(scenario.events):,} records over {len(scenario.accounts)} accounts, "
        f"{iso_time(scenario.start)} to {iso_time(scenario.end)}, {len(scenario.attacks)} attacks",
        f"transport: {transport}; {events:,} events decoded"
        + (
            f", {sum(stats.dead_letters.values()):,} dead letters ({', '.join(stats.dead_letters)})"
            if stats.dead_letters
            else ""
        ),
        "rule periods scaled to the scenario: "
        + "; ".join(
            f"{rule} {', '.join(f'{k}={v}' for k, v in params.items())}" for rule, params in scenario.overrides.items()
        ),
        f"findings: {len(findings):,} from {len(Counter(f.rule_id for f in findings))} rules in {elapsed:.1f} s; "
        f"{sum(routes.get(f.rule_id) == ALERTED for f in findings):,} of them alerted ({policy}), the rest archived",
        "",
        "expected vs found:",
    ]
    width = max((len(e.attack) for e in scenario.expected), default=10)
    for exp, finding in result.found:
        tag = "alerted" if routes.get(exp.rule_id) == ALERTED else "archived"
        summary = f"resolved: {finding.resolution}" if finding.status == RESOLVED else finding.summary
        lines.append(f"  found     {exp.attack:<{width}}  {exp.rule_id} [{tag}]  ({safe(summary, 90)})")
    for exp in result.missing:
        resolved = " (its resolution)" if exp.status == RESOLVED else ""
        lines.append(f"  MISSING   {exp.attack:<{width}}  {exp.rule_id}{resolved}  {_facts(exp.facts)}")
    for exp, finding in result.unwanted:
        lines.append(f"  UNWANTED  {exp.attack:<{width}}  {exp.rule_id}  ({safe(finding.summary, 90)})")
    quiet = [
        e
        for e in scenario.expected
        if not e.present
        and e.rule_id not in {x.rule_id for x in result.no_rule}
        and all(e is not u for u, _ in result.unwanted)
    ]
    for exp in quiet:
        lines.append(f"  quiet     {exp.attack:<{width}}  {exp.rule_id}  {_facts(exp.facts)} (benign, as expected)")
    for exp in result.no_rule:
        lines.append(f"  no rule   {exp.attack:<{width}}  {exp.rule_id}  (not run: not in the pack, or disabled)")
    wanted = sum(e.present for e in scenario.expected if e not in result.no_rule)
    lines += [
        "",
        f"result: {len(result.found)}/{wanted} expected findings raised, {len(result.missing)} missing, "
        f"{len(result.unwanted)} raised on benign lookalikes"
        + (f", {len(result.no_rule)} without a rule" if result.no_rule else "")
        + (" - OK" if result.ok else " - FAILED"),
    ]
    return "\n".join(lines)


def _facts(facts: dict[str, str]) -> str:
    return " ".join(f"{k}={safe(v, 60)}" for k, v in facts.items())
