"""`trailwarden run`: the live pipeline on the local AWS, end to end, with a simulated organization.

Brings the stack up (the embedded emulator unless another endpoint is given), starts both KCL
daemons, plays a scenario's CloudTrail into the trail log group, prints each finding as it reaches
the findings topic (through an SQS queue subscribed to it), then compares them with the findings
the scenario expects: those the alert policy ([alerts] in the configuration) alerts are looked for
on the topic, those it only archives in the Firehose archive. Ctrl-C stops everything this command
started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipeline import aws

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  trailwarden run                                   # 3,000 events, every attack, fresh seed
  trailwarden run --scenario root_usage,brute_force --events 1000 --seed 7
  trailwarden run --keep                            # keep running (and printing findings) until Ctrl-C
  trailwarden run --endpoint-url http://localhost:4566   # e.g. LocalStack instead of the embedded emulator

Daemon logs and properties: ~/.local/state/trailwarden/kcl/ ($TRAILWARDEN_STATE_DIR/kcl/ if set).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="the live pipeline locally: stack, both KCL daemons, a simulated scenario, findings as they come",
        description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", dest="attacks", default="all", metavar="NAME[,NAME...]",
                        help='attacks to inject: "all" (default), "none", or names (trailwarden simulate --help)')
    parser.add_argument("--events", type=int, default=3000, help="events in the scenario (default 3000)")
    parser.add_argument("--seed", type=int, default=None, help="scenario seed (default: a new one each run)")
    parser.add_argument("--rate", type=float, default=500.0, metavar="EPS",
                        help="events per second (default 500: log streams interleave in time as CloudTrail's do)")
    parser.add_argument("--config", default=None, help="trailwarden configuration file for the consumers")
    parser.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                        help="how long to wait for the expected findings after the scenario is sent (default 120)")
    parser.add_argument("--keep", action="store_true", help="keep the pipeline running after the summary, until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print findings as JSON lines")
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def _line(alert: Any, as_json: bool) -> str:
    from pipeline.sinks.sns import printable

    f = alert.finding
    if as_json:
        from pipeline.sinks.base import encode

        return encode(f, 1 << 20).decode("utf-8", "replace")
    resources = printable(",".join(f.resources), 80)
    summary = printable(f.summary or f.title, 100)
    stamp = time.strftime("%H:%M:%S", time.localtime(alert.received))
    account = printable(f.account, 12) or "-"
    return f"{stamp}  {printable(f.severity, 8):8} {printable(f.rule_id, 60):42} {account:12}  {resources}  {summary}"


def _say(message: str) -> None:
    print(f"trailwarden run: {message}", file=sys.stderr, flush=True)


def live_scenario(events: int, seed: int, attacks: list[str], config: Any, *, now: float) -> Any:
    """The scenario `run` plays: it ends by `now`, as late as its attacks' time conditions allow (an
    IAM user created after hours, in `config`'s business hours and time zone), so it reads as recent
    activity and never as activity from the future."""
    from pipeline.scenario import build

    return build(events, seed, attacks, end=now, config=config)


def run(args: argparse.Namespace) -> int:
    from consumers import live
    from infra import emulator, provision
    from infra.trail_player import Player
    from pipeline.alerting import ALERTED, ARCHIVED, AlertPolicy, rule_routes
    from pipeline.commands.stack import ensure_emulator
    from pipeline.config import Config, enabled_rules
    from pipeline.finding import Finding, iso_time
    from pipeline.rules import rule_pack
    from pipeline.scenario import Comparison, compare, resolve_attacks

    target = aws.from_args(args)
    if not target.local:
        _say("runs on a local endpoint only (the embedded emulator or LocalStack); on AWS, deploy the template")
        return 2
    attacks = resolve_attacks(args.attacks.split(",") if "," in args.attacks else args.attacks)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    config_path = args.config
    config = Config.load(config_path)
    policy = AlertPolicy.from_config(config)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    started_emulator = None
    pipeline = None
    queue: tuple[str, str] | None = None
    feeder = None
    try:
        before = emulator.running()
        handle = ensure_emulator(target)
        if handle is not None and before is None:
            started_emulator = handle
        _say("provisioning the stack from infra/template.yaml ...")
        outputs = provision.provision(target)
        queue = live.findings_queue(target, outputs["FindingsTopicArn"], name=f"trailwarden-run-{os.getpid()}")
        queue_url = queue[0]

        scenario = live_scenario(args.events, seed, attacks, config, now=time.time())
        env = {"TRAILWARDEN_OVERRIDES": json.dumps(scenario.overrides)}
        if config_path:
            env["TRAILWARDEN_CONFIG"] = str(Path(config_path).resolve())
        directory = emulator.state_dir() / "kcl"
        t0 = time.monotonic()
        pipeline = live.LivePipeline.start(target, outputs, directory, env=env)
        _say(f"KCL daemons: router pid {pipeline.router.pid}, stateful pid {pipeline.stateful.pid} "
             f"(logs in {directory})")

        sent: dict[str, Any] = {}

        def feed() -> None:
            try:
                player = Player(target.client("logs"), outputs["TrailLogGroupName"], rate=args.rate)
                sent["stats"] = player.play(scenario.events)
            except Exception as exc:  # reported below; the watcher keeps going
                sent["error"] = exc

        routes = rule_routes(enabled_rules(rule_pack(config), config), config)
        on_topic = [e for e in scenario.expected if routes.get(e.rule_id) == ALERTED]
        in_archive = [e for e in scenario.expected if routes.get(e.rule_id) == ARCHIVED]
        wanted = [e for e in on_topic + in_archive if e.present]
        names = f"all {len(attacks)}" if args.attacks == "all" else ", ".join(attacks) or "none"
        _say(f"sending {len(scenario.events):,} CloudTrail events from {iso_time(scenario.start)} to "
             f"{iso_time(scenario.end)} (seed {seed}, attacks: {names}); expecting {len(wanted)} findings, "
             f"{sum(e.stateful for e in wanted)} of them stateful, {sum(e.present for e in on_topic)} alerted "
             f"({policy.describe()}) and the rest only archived")
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()

        sqs = target.client("sqs")
        alerts: list[Any] = []
        archive: list[Finding] = []
        read_keys: set[str] = set()
        next_archive_read = 0.0
        first_at: float | None = None
        deadline: float | None = None
        while True:
            for alert in live.receive(sqs, queue_url, wait=1):
                alerts.append(alert)
                if first_at is None:
                    first_at = time.monotonic() - t0
                print(_line(alert, args.json), flush=True)
            if in_archive and time.monotonic() >= next_archive_read:
                next_archive_read = time.monotonic() + 3
                archive += [Finding.from_dict(d) for d in live.archived(target, outputs["FindingsBucketName"],
                                                                        read_keys)]
            if deadline is None and not feeder.is_alive():
                if "error" in sent:
                    _say(f"sending failed: {sent['error']}")
                    return 1
                deadline = time.monotonic() + args.wait
            done = all(any(e.matches(a.finding) for a in alerts) for e in on_topic if e.present) and \
                all(any(e.matches(f) for f in archive) for e in in_archive if e.present)
            if deadline is not None and (done or time.monotonic() > deadline):
                break

        if in_archive:
            archive += [Finding.from_dict(d) for d in live.archived(target, outputs["FindingsBucketName"], read_keys)]
        rule_ids = set(routes)
        alerted = compare(on_topic, [a.finding for a in alerts], rule_ids)
        archived = compare(in_archive, archive, rule_ids)
        not_kept = [e for e in scenario.expected if e.rule_id in routes and e not in on_topic + in_archive]
        unknown = [e for e in scenario.expected if e.rule_id not in routes]
        result = Comparison(found=alerted.found + archived.found, missing=alerted.missing + archived.missing,
                            no_rule=unknown, unwanted=alerted.unwanted + archived.unwanted)
        _summary(alerted, archived, policy.describe(), not_kept, unknown, alerts, first_at, sent.get("stats"))
        if not result.ok and started_emulator is None:
            _say("this stack was already running: findings it alerted before (same rule, key and window) are not "
                 "alerted again (dedupe table); `trailwarden stack down` gives a fresh one")
        if args.keep:
            _say("still running; Ctrl-C stops everything")
            while True:
                for alert in live.receive(sqs, queue_url, wait=1):
                    print(_line(alert, args.json), flush=True)
        return 0 if result.ok else 1
    except KeyboardInterrupt:
        _say("interrupted; stopping what this run started")
        return 130
    except Exception as exc:  # an endpoint that is down, a daemon that cannot start: say what, then clean up
        log.debug("run failed", exc_info=True)
        _say(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        if pipeline is not None:
            pipeline.stop()
        if queue is not None:
            with contextlib.suppress(Exception):
                live.remove_findings_queue(target, *queue)
        if started_emulator is not None:
            started_emulator.stop()
        signal.signal(signal.SIGTERM, previous)


def _summary(alerted: Any, archived: Any, policy: str, not_kept: list[Any], no_rule: list[Any], alerts: list[Any],
             first_at: float | None, stats: Any) -> None:
    """What arrived against what the scenario expects: the expectations the alert policy alerts were looked
    for on the topic, those it only archives in the Firehose archive."""
    out = sys.stderr
    out.write("\nsummary\n")
    if stats is not None:
        out.write(f"  sent: {stats.events:,} events in {stats.calls:,} PutLogEvents calls\n")
    out.write(f"  alerts received: {len(alerts)}" + (f" (first after {first_at:.1f} s)\n" if first_at else "\n"))
    out.write(f"  alert policy: {policy}\n")
    for where, result in (("alerted, on the topic", alerted), ("archived only, in the Firehose archive", archived)):
        present = len(result.found) + len(result.missing)
        out.write(f"  expected findings {where}: {len(result.found)}/{present} found\n")
        for exp in result.missing:
            facts = " ".join(f"{k}={v}" for k, v in sorted(exp.facts.items()))
            out.write(f"    MISSING {exp.rule_id} ({exp.attack}) account={exp.account or '-'} {facts}\n")
        for exp, finding in result.unwanted:
            out.write(f"    UNWANTED {exp.rule_id} ({exp.attack}): {finding.id}\n")
    if not_kept:
        out.write(f"  expectations the policy neither alerts nor archives (not looked for): {len(not_kept)}\n")
    if no_rule:
        out.write(f"  expectations for rules not in the pack: {len(no_rule)}\n")
    ok = alerted.ok and archived.ok
    out.write("  result: " + ("OK\n" if ok else "INCOMPLETE\n"))
    out.flush()
