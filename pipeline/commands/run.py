"""`trailwarden run`: the live pipeline on the local AWS, end to end, with a simulated organization.

Brings the stack up (the embedded emulator unless another endpoint is given), starts both KCL
daemons, plays a scenario's CloudTrail into the trail log group, prints each finding as it reaches
the findings topic (through an SQS queue subscribed to it), then compares them with the findings
the scenario expects: those the alert policy ([alerts] in the configuration) alerts are looked for
on the topic, those it only archives in the Firehose archive. A daemon that exits (its record
processor died, or it was killed) is restarted, after 1, 2, 4... seconds while it keeps exiting soon
after its start, and given up after 8 such restarts in a row; each restart is printed and counted in
the summary. The destinations' deliverer is a child process too (`trailwarden deliver`), restarted the same
way when it exits. Ctrl-C stops everything this command started.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from consumers.sinks.base import encode
from consumers.sinks.sns import printable
from infra import aws, emulator, provision
from infra.trail_player import Player
from pipeline.alerting import ALERTED, ARCHIVED, AlertPolicy, rule_routes
from pipeline.commands import sigterm_interrupts, uninterrupted
from pipeline.commands.stack import ensure_emulator
from pipeline.config import Config
from pipeline.finding import Finding, iso_time
from pipeline.pack import bind_pack
from pipeline.routing import Routing
from pipeline.scenario import Comparison, build, compare, resolve_attacks
from pipeline.settings import environment

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
        "run",
        help="the live pipeline locally: stack, both KCL daemons, a simulated scenario, findings as they come",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        dest="attacks",
        default="all",
        metavar="NAME[,NAME...]",
        help='attacks to inject: "all" (default), "none", or names (trailwarden simulate --help)',
    )
    parser.add_argument("--events", type=int, default=3000, help="events in the scenario (default 3000)")
    parser.add_argument("--seed", type=int, default=None, help="scenario seed (default: a new one each run)")
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        metavar="EPS",
        help="events per second (default 500: log streams interleave in time as CloudTrail's do)",
    )
    parser.add_argument("--config", default=None, help="trailwarden configuration file for the consumers")
    parser.add_argument(
        "--wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the expected findings after the scenario is sent (default 120)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the pipeline running after the summary, until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print findings as JSON lines")
    parser.add_argument(
        "--no-metrics", action="store_true", help="no metric lines (EMF) from the record processors in the daemon logs"
    )
    parser.add_argument(
        "--no-destinations",
        dest="destinations",
        action="store_false",
        help="deliver to no destination; by default the configured ones ([destinations.<name>]), "
        "or, if none is configured, local receivers standing in for Slack, PagerDuty and a "
        "webhook, each printing what it got",
    )
    aws.add_arguments(parser)
    parser.set_defaults(func=run)


def _line(alert: Any, as_json: bool) -> str:
    f = alert.finding
    if as_json:
        return encode(f, 1 << 20).decode("utf-8", "replace")
    resources = printable(",".join(f.resources), 80)
    summary = printable(f.summary or f.title, 100)
    stamp = time.strftime("%H:%M:%S", time.localtime(alert.received))
    account = printable(f.account, 12) or "-"
    status = printable(f.status, 8)
    if f.status == "resolved":
        summary = printable(f"[{f.resolution}] ", 40) + summary
    elif f.occurrences > 1:
        status = f"x{f.occurrences}"  # a digest: the finding counted this many times so far
    return (
        f"{stamp}  {printable(f.severity, 8):8} {status:8} {printable(f.rule_id, 60):42} {account:12}  "
        f"{resources}  {summary}"
    )


def _say(message: str) -> None:
    print(f"trailwarden run: {message}", file=sys.stderr, flush=True)


def live_scenario(events: int, seed: int, attacks: list[str], config: Any, *, now: float) -> Any:
    """The scenario `run` plays: it ends by `now`, as late as its attacks' time conditions allow (an
    IAM user created after hours, in `config`'s business hours and time zone), so it reads as recent
    activity and never as activity from the future."""
    return build(events, seed, attacks, end=now, config=config)


def run(args: argparse.Namespace) -> int:
    target = aws.from_args(args)
    if not target.local:
        _say("runs on a local endpoint only (the embedded emulator or LocalStack); on AWS, deploy the template")
        return 2
    attacks = resolve_attacks(args.attacks.split(",") if "," in args.attacks else args.attacks)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    config = Config.load(args.config)
    policy = AlertPolicy.from_config(config)
    routes = rule_routes(bind_pack(config).rules, config)
    stack = LiveStack(target)
    with sigterm_interrupts():
        try:
            stack.start()
            scenario = live_scenario(args.events, seed, attacks, config, now=time.time())
            stack.start_pipeline(scenario.overrides, args.config, metrics=not args.no_metrics)
            if args.destinations:
                stack.start_destinations(config)
            on_topic = [e for e in scenario.expected if routes.get(e.rule_id) == ALERTED]
            in_archive = [e for e in scenario.expected if routes.get(e.rule_id) == ARCHIVED]
            wanted = [e for e in on_topic + in_archive if e.present]
            names = f"all {len(attacks)}" if args.attacks == "all" else ", ".join(attacks) or "none"
            _say(
                f"sending {len(scenario.events):,} CloudTrail events from {iso_time(scenario.start)} to "
                f"{iso_time(scenario.end)} (seed {seed}, attacks: {names}); expecting {len(wanted)} findings, "
                f"{sum(e.stateful for e in wanted)} of them stateful, {sum(e.present for e in on_topic)} alerted "
                f"({policy.describe()}) and the rest only archived"
            )
            feeder = Feeder(stack.player(args.rate), scenario.events)
            watch = Watch(stack, args.json)
            if not watch.until_found(on_topic, in_archive, feeder, args.wait):
                _say(f"sending failed: {feeder.error}")
                return 1
            rule_ids = set(routes)
            alerted = compare(on_topic, [a.finding for a in watch.alerts], rule_ids)
            archived = compare(in_archive, watch.archive, rule_ids)
            not_kept = [e for e in scenario.expected if e.rule_id in routes and e not in on_topic + in_archive]
            unknown = [e for e in scenario.expected if e.rule_id not in routes]
            result = Comparison(
                found=alerted.found + archived.found,
                missing=alerted.missing + archived.missing,
                no_rule=unknown,
                unwanted=alerted.unwanted + archived.unwanted,
            )
            _summary(
                alerted,
                archived,
                policy.describe(),
                not_kept,
                unknown,
                watch.alerts,
                watch.first_at,
                feeder.stats,
                stack.pipeline.supervisor,
                stack.delivered(),
                stack.deliverer_supervisor,
            )
            if not result.ok and not stack.own_emulator:
                _say(
                    "this stack was already running: findings it alerted before (same rule, key and window) are "
                    "not alerted again (dedupe table); `trailwarden stack down` gives a fresh one"
                )
            if args.keep:
                _say("still running; Ctrl-C stops everything")
                watch.forever()
            return 0 if result.ok else 1
        except KeyboardInterrupt:
            _say("interrupted; stopping what this run started")
            return 130
        except Exception as exc:  # an endpoint that is down, a daemon that cannot start: say what, then clean up
            log.debug("run failed", exc_info=True)
            _say(f"failed: {type(exc).__name__}: {exc}")
            return 1
        finally:
            with uninterrupted():
                stack.stop()


class LiveStack:
    """What `run` starts, and stops again: the emulator (if none was running), the provisioned stack, a
    findings queue, both KCL daemons."""

    def __init__(self, target: aws.Target) -> None:
        self.target = target
        self.own_emulator: Any = None
        self.outputs: dict[str, str] = {}
        self.queue: tuple[str, str] | None = None
        self.pipeline: Any = None
        self.started = 0.0
        self.local_destinations: Any = None
        self.routing: Routing | None = None
        self.delivering: dict[str, Any] = {}  # "deliverer" -> its process, restarted by deliverer_supervisor
        self.deliverer_supervisor: Any = None
        self.deliverer_lock = threading.RLock()

    def start(self) -> None:
        """The emulator if needed, the stack's resources, and a queue subscribed to the findings topic."""
        from consumers import live  # here, not at the top: ~40 ms the other commands do not need

        before = emulator.running()
        handle = ensure_emulator(self.target)
        if handle is not None and before is None:
            self.own_emulator = handle
        _say("provisioning the stack from infra/template.yaml ...")
        self.outputs = provision.provision(self.target)
        self.queue = live.findings_queue(
            self.target, self.outputs["FindingsTopicArn"], name=f"trailwarden-run-{os.getpid()}"
        )

    def start_pipeline(self, overrides: dict[str, dict[str, Any]], config: str | None, metrics: bool = True) -> None:
        """Both KCL daemons, with the scenario's parameter overrides and the configuration file, under a supervisor
        that restarts a daemon that exits (each restart said on stderr)."""
        from consumers import live  # here, not at the top: ~40 ms the other commands do not need

        directory = emulator.state_dir() / "kcl"
        self.started = time.monotonic()
        self.pipeline = live.LivePipeline.start(
            self.target,
            self.outputs,
            directory,
            say=_say,
            env=environment(overrides=overrides, config=config, metrics=None if metrics else False),
        )
        _say(
            f"KCL daemons: router pid {self.pipeline.router.pid}, stateful pid {self.pipeline.stateful.pid} "
            f"(logs in {directory})"
        )

    def start_destinations(self, config: Config) -> None:
        """The deliverer (`trailwarden deliver`, a child process under a supervisor that restarts it when it
        exits) for the configured destinations, or for local receivers standing in for Slack, PagerDuty and a
        webhook when none is configured; a ConfigError (a bad destination, an unreadable secret) stops the run
        before the deliverer starts."""
        from consumers import local_destinations  # here: only runs with destinations load them
        from consumers.destinations.build import build_all  # (the same reason)

        routing = Routing.from_config(config)
        env = environment(resources=self.outputs)
        if routing.destinations and config.path is not None:
            build_all(routing, self.target)  # every destination checked, every secret read, here first
            self.routing, config_file = routing, config.path
            _say(f"delivering to {routing.describe()}")
        else:
            self.local_destinations = local_destinations.LocalDestinations(lambda line: print(line, flush=True))
            config_file, local_env = self.local_destinations.start(self.target, self.outputs, emulator.state_dir())
            self.routing = self.local_destinations.routing()
            env.update(local_env)
            _say(
                "no [destinations] configured: local receivers on 127.0.0.1 stand in for Slack, PagerDuty (high "
                "and critical) and a signed webhook, and print what they get"
            )
        self._deliverer_start(config_file, env)

    def _deliverer_start(self, config_file: Path, env: dict[str, str]) -> None:
        from consumers import deliverer_process  # here: only runs with destinations start it
        from consumers.supervisor import Supervisor  # (the same reason)

        directory = emulator.state_dir() / "deliver"

        def start(name: str) -> Any:
            process = deliverer_process.start(self.target, Path(config_file), directory, env)
            self.delivering[name] = process
            return process

        first = start(deliverer_process.NAME)
        self.deliverer_supervisor = Supervisor(self.delivering, start, self.deliverer_lock, say=_say).start()
        _say(f"deliverer: pid {first.pid} (log in {first.log_file})")

    def delivered(self, settle: float = 20.0) -> str:
        """What the destinations got, in words (empty without destinations), once their queues are empty or
        `settle` seconds have passed: the local receivers' counts, or each configured destination's pending
        and dead-lettered findings."""
        from infra import destination_queues  # here: only runs with destinations read the queues

        if self.routing is None:
            return ""
        topic = self.outputs["FindingsTopicArn"]
        queues = {name: destination_queues.ensure(self.target, topic, name) for name in self.routing.destinations}
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and any(
            destination_queues.depth(self.target, q.url) for q in queues.values()
        ):
            time.sleep(0.5)
        if self.local_destinations is not None:
            return self.local_destinations.counts()
        return (
            "everything but what is pending ("
            + "; ".join(
                f"{name}: {destination_queues.depth(self.target, q.url)} pending, "
                f"{destination_queues.depth(self.target, q.dlq_url)} dead-lettered"
                for name, q in sorted(queues.items())
            )
            + ")"
        )

    def player(self, rate: float) -> Any:
        return Player(self.target.client("logs"), self.outputs["TrailLogGroupName"], rate=rate)

    def alerts(self) -> Iterator[Any]:
        """The alerts now in the findings queue (one long poll of a second, then drained)."""
        from consumers import live  # here, not at the top: ~40 ms the other commands do not need

        assert self.queue is not None  # noqa: S101 (narrows the type: set by the start above)
        return live.receive(self.target.client("sqs"), self.queue[0], wait=1)

    def archived(self, read: set[str]) -> list[Finding]:
        """The findings written to the Firehose archive since the last call (`read`: the objects read)."""
        from consumers import live  # here, not at the top: ~40 ms the other commands do not need

        return [Finding.from_dict(d) for d in live.archived(self.target, self.outputs["FindingsBucketName"], read)]

    def stop(self) -> None:
        """Everything this run started, in reverse order; what it found running is left running."""
        from consumers import live  # here, not at the top: ~40 ms the other commands do not need

        if self.deliverer_supervisor is not None:
            self.deliverer_supervisor.stop()
        for process in self.delivering.values():
            process.stop()
        if self.local_destinations is not None:
            self.local_destinations.stop()
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.queue is not None:
            with contextlib.suppress(Exception):
                live.remove_findings_queue(self.target, *self.queue)
        if self.own_emulator is not None:
            self.own_emulator.stop()


class Feeder:
    """The scenario's CloudTrail played into the trail log group from a thread; `error` if that failed."""

    def __init__(self, player: Any, events: list[dict[str, Any]]) -> None:
        self.stats: Any = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._play, args=(player, events), daemon=True)
        self.thread.start()

    def _play(self, player: Any, events: list[dict[str, Any]]) -> None:
        try:
            self.stats = player.play(events)
        except Exception as exc:  # reported by the caller; the watcher keeps going meanwhile
            self.error = exc

    def done(self) -> bool:
        return not self.thread.is_alive()


class Watch:
    """The alerts as they reach the findings queue, printed as they come; the archive, read when asked."""

    ARCHIVE_EVERY = 3.0  # seconds between reads of the archive bucket

    def __init__(self, stack: LiveStack, as_json: bool) -> None:
        self.stack = stack
        self.as_json = as_json
        self.alerts: list[Any] = []
        self.archive: list[Finding] = []
        self.first_at: float | None = None  # seconds from the daemons' start to the first alert
        self._read: set[str] = set()
        self._next_archive_read = 0.0

    def read_archive(self) -> None:
        self.archive += self.stack.archived(self._read)
        self._next_archive_read = time.monotonic() + self.ARCHIVE_EVERY

    def poll(self) -> None:
        for alert in self.stack.alerts():
            self.alerts.append(alert)
            if self.first_at is None:
                self.first_at = time.monotonic() - self.stack.started
            print(_line(alert, self.as_json), flush=True)

    def until_found(self, on_topic: list[Any], in_archive: list[Any], feeder: Feeder, wait: float) -> bool:
        """Until every expected finding arrived (alerted ones on the topic, archived-only ones in the archive),
        or `wait` seconds after the feeder finished; False if it failed."""
        deadline: float | None = None
        while True:
            self.poll()
            if in_archive and time.monotonic() >= self._next_archive_read:
                self.read_archive()
            if deadline is None and feeder.done():
                if feeder.error is not None:
                    return False
                deadline = time.monotonic() + wait
            found = all(any(e.matches(a.finding) for a in self.alerts) for e in on_topic if e.present) and all(
                any(e.matches(f) for f in self.archive) for e in in_archive if e.present
            )
            if deadline is not None and (found or time.monotonic() > deadline):
                if in_archive:
                    self.read_archive()
                return True

    def forever(self) -> None:
        while True:
            self.poll()


def _summary(
    alerted: Any,
    archived: Any,
    policy: str,
    not_kept: list[Any],
    no_rule: list[Any],
    alerts: list[Any],
    first_at: float | None,
    stats: Any,
    supervisor: Any = None,
    delivered: str = "",
    deliverer_supervisor: Any = None,
) -> None:
    """What arrived against what the scenario expects: the expectations the alert policy alerts were looked
    for on the topic, those it only archives in the Firehose archive."""
    out = sys.stderr
    out.write("\nsummary\n")
    if stats is not None:
        out.write(f"  sent: {stats.events:,} events in {stats.calls:,} PutLogEvents calls\n")
    out.write(f"  alerts received: {len(alerts)}" + (f" (first after {first_at:.1f} s)\n" if first_at else "\n"))
    out.write(f"  alert policy: {policy}\n")
    if supervisor is not None:
        out.write(f"  {supervisor.report()}\n")
    if delivered:
        out.write(f"  destinations received: {delivered}\n")
    if deliverer_supervisor is not None:
        gave_up = "".join(f"; {reason}, given up" for reason in deliverer_supervisor.gave_up.values())
        out.write(f"  deliverer restarts: {sum(deliverer_supervisor.restarts.values())}{gave_up}\n")
    for where, result in (("alerted, on the topic", alerted), ("archived only, in the Firehose archive", archived)):
        present = len(result.found) + len(result.missing)
        out.write(f"  expected findings {where}: {len(result.found)}/{present} found\n")
        resolutions = sum(exp.status == "resolved" for exp, _ in result.found)
        if resolutions:
            out.write(f"    of which resolutions (same id, resolved later): {resolutions}\n")
        for exp in result.missing:
            facts = " ".join(f"{k}={v}" for k, v in sorted(exp.facts.items()))
            resolved = " (its resolution)" if exp.status == "resolved" else ""
            out.write(f"    MISSING {exp.rule_id}{resolved} ({exp.attack}) account={exp.account or '-'} {facts}\n")
        for exp, finding in result.unwanted:
            out.write(f"    UNWANTED {exp.rule_id} ({exp.attack}): {finding.id}\n")
    if not_kept:
        out.write(f"  expectations the policy neither alerts nor archives (not looked for): {len(not_kept)}\n")
    if no_rule:
        out.write(f"  expectations for rules not in the pack: {len(no_rule)}\n")
    ok = alerted.ok and archived.ok
    out.write("  result: " + ("OK\n" if ok else "INCOMPLETE\n"))
    out.flush()
