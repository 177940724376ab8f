"""`trailwarden rules list|test|show`: the rule pack, its own tests, and one rule in full."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pipeline.commands.config import param_docs
from pipeline.config import Config, ConfigError
from pipeline.rule import ANY, REGISTRY, Rule, format_duration
from pipeline.rules import rule_pack
from pipeline.ruletest import run_rules


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rules",
        help="list, test and describe the detection rules",
        description="List, test and describe the detection rules.",
    )
    parser.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="PATH",
        help="also load rules from a Python file or a directory of them (repeatable)",
    )
    parser.add_argument(
        "--sigma",
        action="append",
        default=[],
        metavar="PATH",
        help="also load the Sigma rules of a folder or file (repeatable; all must load)",
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="TOML configuration: its [sigma] settings choose the Sigma rules (default: built-in "
        "defaults, the bundled SigmaHQ rules included)",
    )
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION")

    listing = sub.add_parser("list", help="one line per rule: id, source, kind, severity, ATT&CK, title")
    listing.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="markdown writes the tables of docs/rules.md",
    )
    listing.add_argument(
        "--source",
        choices=("builtin", "sigma"),
        default=None,
        help="only the built-in rules, or only the Sigma rules (default: both)",
    )
    listing.set_defaults(func=list_rules)

    testing = sub.add_parser("test", help="run the rules' own test cases; exit 1 on any mismatch")
    testing.add_argument("ids", nargs="*", metavar="ID", help="rules to test (default: all)")
    testing.add_argument("-q", "--quiet", action="store_true", help="print failures and the summary only")
    testing.set_defaults(func=test_rules)

    show = sub.add_parser("show", help="a rule's metadata, description, runbook and parameters")
    show.add_argument("id", metavar="ID")
    show.set_defaults(func=show_rule)

    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def load_rule_files(paths: Iterable[str]) -> None:
    """Import rule modules from files or directories so their decorators register the rules."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file():
            files = [path]
        else:
            raise ConfigError(f"--load {raw}: no such file or directory")
        for file in files:
            name = f"trailwarden_user_rules.{file.stem}_{abs(hash(file.resolve())) % 10**8}"
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise ConfigError(f"--load {file}: not a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise ConfigError(f"--load {file}: {type(exc).__name__}: {exc}") from exc


def all_rules(args: argparse.Namespace) -> list[Rule]:
    """The pack (built-in rules, the Sigma rules the configuration and --sigma choose) plus any Python rules
    loaded with --load, sorted by id."""
    config = Config.load(args.config) if getattr(args, "config", None) else Config.from_dict()
    pack = {r.id: r for r in rule_pack(config, getattr(args, "sigma", []))}
    load_rule_files(getattr(args, "load", []))
    pack.update((rule_id, rule) for rule_id, rule in REGISTRY.items() if rule_id not in pack)
    return sorted(pack.values(), key=lambda r: r.id)


def pick(rules: Sequence[Rule], ids: Sequence[str]) -> list[Rule]:
    if not ids:
        return list(rules)
    known = {r.id: r for r in rules}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"unknown rule id(s) {unknown}; `trailwarden rules list` shows them")
    return [known[i] for i in dict.fromkeys(ids)]


def events_text(rule: Rule) -> list[str]:
    lines = []
    for source, names in sorted(rule.events.items()):
        where = "any source" if source == ANY else source
        lines.append(f"{where}: {'every event' if names is None else ', '.join(sorted(names))}")
    return lines


def summary(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "source": rule.origin,
        "upstream": dict(rule.upstream),
        "kind": rule.kind,
        "severity": rule.severity,
        "attack": list(rule.attack),
        "title": rule.title,
        "events": {src: None if names is None else sorted(names) for src, names in rule.events.items()},
        "params": rule.params,
        "dedup_seconds": rule.dedup,
        "cases": len(rule.cases),
    }


def list_rules(args: argparse.Namespace) -> int:
    rules = [r for r in all_rules(args) if args.source is None or r.origin == args.source]
    if args.format == "json":
        json.dump([summary(r) for r in rules], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    if args.format == "markdown":
        sys.stdout.write(markdown(rules))
        return 0
    rows = [("ID", "SOURCE", "KIND", "SEVERITY", "ATT&CK", "TITLE")]
    rows += [(r.id, r.origin, r.kind, r.severity, ", ".join(r.attack), r.title) for r in rules]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    by_origin = ", ".join(f"{n} {origin}" for origin, n in sorted(Counter(r.origin for r in rules).items()))
    print(f"\n{len(rules)} rules ({by_origin})", file=sys.stderr)
    return 0


def first_sentence(text: str) -> str:
    """The description's first sentence, on one line ("e.g." and "i.e." do not end it)."""
    flat = " ".join(text.split()).replace("e.g.", "e\x00g\x00").replace("i.e.", "i\x00e\x00")
    found = re.search(r"^(.+?[.!?])(\s+[A-Z`(\"]|$)", flat)
    return (found.group(1) if found else flat).replace("\x00", ".")


def markdown(rules: Sequence[Rule]) -> str:
    """The rule pack as a Markdown table: id, kind, severity, ATT&CK, and what the rule asks."""

    def cell(value: str) -> str:
        return value.replace("|", "\\|")

    lines = [
        "| ID | Kind | Severity | ATT&CK | Title | What it asks |",
        "|----|------|----------|--------|-------|--------------|",
    ]
    for r in rules:
        lines.append(
            f"| `{r.id}` | {r.kind} | {r.severity} | {', '.join(r.attack)} | {cell(r.title)} "
            f"| {cell(first_sentence(r.description))} |"
        )
    return "\n".join(lines) + "\n"


def test_rules(args: argparse.Namespace) -> int:
    rules = pick(all_rules(args), args.ids)
    report = run_rules(rules)
    for result in report.results:
        if result.passed and args.quiet:
            continue
        status = "PASS" if result.passed else "FAIL"
        line = f"{status}  {result.rule_id} :: {result.case}"
        if not result.passed:
            line += f"  (expected {result.expected} finding(s), got {result.got})"
            if result.error:
                line += f"  error: {result.error}"
        print(line)
    for problem in report.problems:
        print(f"FAIL  {problem}")
    failed = len(report.failures)
    passed = len(report.results) - failed
    print(
        f"\n{len(rules)} rules, {len(report.results)} cases: {passed} passed, {failed} failed"
        + (f", {len(report.problems)} rule problem(s)" if report.problems else "")
    )
    return 0 if report.ok else 1


def show_rule(args: argparse.Namespace) -> int:
    rule = pick(all_rules(args), [args.id])[0]
    out = [
        f"{rule.id}: {rule.title}",
        f"  source:    {rule.origin}" + "".join(f", {k} {v}" for k, v in rule.upstream.items() if v),
        f"  kind:      {rule.kind}",
        f"  severity:  {rule.severity}",
        f"  ATT&CK:    {', '.join(rule.attack) or '-'}",
        f"  dedup:     {format_duration(rule.dedup)} per key",
        "  events:    " + "\n             ".join(events_text(rule)),
        "",
        "Description:",
        _indent(rule.description or "(none)"),
        "",
        "Runbook:",
        _indent(rule.runbook or "(none)"),
        "",
        "Parameters (set them under [rules." + rule.id + "]; `trailwarden config` prints them all):",
    ]
    if rule.params:
        docs = param_docs(rule)
        for name, value in rule.params.items():
            out.append(f"  {name} = {json.dumps(value)}" + (f"\n      {docs[name]}" if docs.get(name) else ""))
    else:
        out.append("  (none)")
    out += ["", f"Test cases: {len(rule.cases)}"]
    out += [f"  - {c.name} (expects {c.expect})" for c in rule.cases]
    print("\n".join(out))
    return 0


def _indent(text: str) -> str:
    return "\n".join(
        textwrap.fill(
            p, width=100, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False, break_long_words=False
        )
        for p in text.split("\n\n")
    )
