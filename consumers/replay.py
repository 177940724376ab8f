"""Replay: a time range of the trail stream through both stages, beside the live applications.

    job = Replay(target, outputs, start, end, rules=["some-rule"], alert=False)
    job.start()                 # keyed stream and both daemons of its own
    while not job.poll(): ...   # progress (job.status()), new findings (job.findings())
    job.close()                 # daemons stopped; tables, keyed stream, snapshots and run directory removed

The run owns, named after its id (`infra.resources.Resources.for_replay`), two KCL applications (their lease,
coordinator and worker-metrics tables), a keyed stream, the snapshots under its stateful application's prefix
in the state bucket, and a local run directory with the processors' progress and findings files. Its
processors are the live ones (`consumers.router`, `consumers.stateful`) with the replay's settings. While they
run, this job puts the watermark and end markers on its keyed stream (`consumers.markers`). How a replay moves
event time, and why: docs/architecture.md, "Replay".
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers import launcher, markers, shards
from consumers.progress import Progress, read_progress
from consumers.sinks.build import past_findings
from infra import aws
from infra.resources import Resources
from pipeline.finding import Finding, iso_time
from pipeline.settings import ReplaySettings, environment
from pipeline.stages import Stage

log = logging.getLogger(__name__)

KCL_TABLE_SUFFIXES = ("", "-CoordinatorState", "-WorkerMetricStats")
WATERMARK_EVERY = 1.0  # seconds between watermark markers on the keyed stream, while the watermark moves
# On AWS a shard serves five GetRecords calls a second to all its readers: the replay polls once a
# second per shard, leaving the rest to the live router.
AWS_SETTINGS = {"idleTimeBetweenReadsInMillis": "1000"}


class ReplayError(RuntimeError):
    pass


def new_run_id(now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dt%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Names:
    """Everything a replay run owns, by name."""

    run_id: str
    resources: Resources  # the stack's outputs as the run's processors see them: its applications and keyed stream

    @classmethod
    def for_run(cls, outputs: Mapping[str, str], run_id: str) -> Names:
        return cls(run_id, Resources(outputs).for_replay(run_id))

    @property
    def router_app(self) -> str:
        return self.resources.app(Stage.ROUTER)

    @property
    def stateful_app(self) -> str:
        return self.resources.app(Stage.STATEFUL)

    @property
    def keyed_stream(self) -> str:
        return self.resources.stream(Stage.STATEFUL)

    def tables(self) -> list[str]:
        return [app + suffix for app in (self.router_app, self.stateful_app) for suffix in KCL_TABLE_SUFFIXES]


@dataclass
class Status:
    """Progress of both stages as the processors last reported it."""

    end: float
    router_shards: list[str]
    router: dict[str, Progress] = field(default_factory=dict)
    stateful_shards: list[str] = field(default_factory=list)
    stateful: dict[str, Progress] = field(default_factory=dict)
    marked: bool = False  # end markers put on the keyed stream

    def router_done(self) -> bool:
        return all(self.router.get(s) is not None and self.router[s].done for s in self.shards(Stage.ROUTER))

    def stateful_done(self) -> bool:
        return self.marked and all(
            self.stateful.get(s) is not None and self.stateful[s].done for s in self.shards(Stage.STATEFUL)
        )

    def shards(self, stage: Stage) -> list[str]:
        """The shards expected (open at the start) and any other that reported (a closed parent)."""
        expected = self.router_shards if stage == Stage.ROUTER else self.stateful_shards
        reported = self.router if stage == Stage.ROUTER else self.stateful
        return list(dict.fromkeys([*expected, *sorted(reported)]))

    def event_time(self) -> float | None:
        """The largest event time any router shard saw."""
        times = [p.last_event_time for p in self.router.values() if p.last_event_time is not None]
        return max(times) if times else None

    def low_mark(self) -> float | None:
        """The event time every router shard still reading has reached (the smallest of their largest event
        times); None until each has reported one. Done shards send nothing more, so they do not count."""
        reading = [s for s in self.shards(Stage.ROUTER) if not (self.router.get(s) and self.router[s].done)]
        times = [self.router[s].last_event_time if s in self.router else None for s in reading]
        if not reading or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def events(self) -> int:
        return sum(p.events for p in self.router.values())

    def behind(self, shard: str) -> float | None:
        """Seconds of arrival time between the shard's last replayed record and the end of the range;
        None if it has not started or is done."""
        progress = self.router.get(shard)
        if progress is None or progress.done:
            return None
        if progress.last_arrival is None:
            return None
        return max(0.0, self.end - progress.last_arrival)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for progress in [*self.router.values(), *self.stateful.values()]:
            for name in ("records", "events", "facts", "findings", "published", "already_alerted", "dead_letters"):
                out[name] = out.get(name, 0) + int(getattr(progress, name) or 0)
        return out


class FindingsTail:
    """New lines of the processors' findings files, as findings (partial last lines left for later)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}

    def read(self) -> list[Finding]:
        found: list[Finding] = []
        for path in sorted((self.directory / "findings").glob("*.jsonl")):
            offset = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            complete = data.rfind(b"\n") + 1
            self.offsets[path] = offset + complete
            for line in data[:complete].splitlines():
                try:
                    found.append(Finding.from_dict(json.loads(line)))
                except (ValueError, TypeError, KeyError) as exc:
                    log.warning("unreadable finding in %s: %s", path.name, exc)
        return found


class Replay:
    def __init__(
        self,
        target: aws.Target,
        outputs: Mapping[str, str],
        start: float,
        end: float,
        *,
        rules: Iterable[str] | None = None,
        alert: bool = False,
        config: str | Path | None = None,
        directory: Path | None = None,
        run_id: str | None = None,
        keyed_shards: int | None = None,
        settings: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if end < start:
            raise ValueError("the end of the range is before its start")
        self.target = target
        self.outputs = dict(outputs)
        self.start_time, self.end_time = start, end
        self.rules = list(rules or [])
        self.alert = alert
        self.config = Path(config).resolve() if config else None
        self.names = Names.for_run(self.outputs, run_id or new_run_id())
        self._check_names()
        self.directory = (directory or launcher.state_dir().parent / "replay") / self.names.run_id
        self.keyed_shards = keyed_shards
        self.settings = dict(settings if settings is not None else ({} if target.local else AWS_SETTINGS))
        self.env = dict(env or {})
        self.daemons: dict[str, launcher.Daemon] = {}
        self.created_stream = False
        self.status_: Status | None = None
        self.tail = FindingsTail(self.directory)
        self.started = 0.0
        self._watermark: float | None = None
        self._watermark_at = 0.0
        self._keyed_shards: list[dict[str, Any]] | None = None

    def _check_names(self) -> None:
        live = Resources(self.outputs)
        if {live.app(Stage.ROUTER), live.app(Stage.STATEFUL), live.stream(Stage.STATEFUL)} & {
            self.names.router_app,
            self.names.stateful_app,
            self.names.keyed_stream,
        }:
            raise ValueError("a replay's names must differ from the live applications' and keyed stream's")

    # --- start -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the keyed stream, then start the stateful and the router daemons. On failure, what was
        started is left for `close()`."""
        self.started = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        kinesis = self.target.client("kinesis")
        trail = self.outputs["TrailStreamName"]
        router_shards = [s["ShardId"] for s in shards.open_shards(kinesis, trail)]
        self._create_keyed_stream(kinesis)
        keyed_shards = [s["ShardId"] for s in shards.shards(kinesis, self.names.keyed_stream)]
        self.status_ = Status(self.end_time, router_shards, stateful_shards=keyed_shards)
        stateful_spec, router_spec = self.specs()
        for stage, spec in ((Stage.STATEFUL, stateful_spec), (Stage.ROUTER, router_spec)):
            launcher.prepare_local(spec, self.target)
            self.daemons[stage] = launcher.start(spec, self.target, directory=self.directory / "kcl")
        log.info(
            "replay %s: %d trail shards from %s to %s",
            self.names.run_id,
            len(router_shards),
            iso_time(self.start_time),
            iso_time(self.end_time),
        )

    def _create_keyed_stream(self, kinesis: Any) -> None:
        live = kinesis.describe_stream_summary(StreamName=self.outputs["KeyedStreamName"])["StreamDescriptionSummary"]
        count = self.keyed_shards or int(live.get("OpenShardCount") or 1)
        kwargs: dict[str, Any] = {"StreamName": self.names.keyed_stream, "ShardCount": count}
        mode = (live.get("StreamModeDetails") or {}).get("StreamMode")
        if mode == "ON_DEMAND" and not self.keyed_shards:
            kwargs = {"StreamName": self.names.keyed_stream, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}
        kinesis.create_stream(**kwargs)
        self.created_stream = True
        kinesis.get_waiter("stream_exists").wait(
            StreamName=self.names.keyed_stream, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        if live.get("EncryptionType") == "KMS" and live.get("KeyId"):
            # the facts carry CloudTrail content: encrypted at rest like the live keyed stream
            with contextlib.suppress(Exception):
                kinesis.start_stream_encryption(
                    StreamName=self.names.keyed_stream, EncryptionType="KMS", KeyId=live["KeyId"]
                )
                kinesis.get_waiter("stream_exists").wait(
                    StreamName=self.names.keyed_stream, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
                )

    def specs(self) -> tuple[launcher.AppSpec, launcher.AppSpec]:
        """(stateful, router) application specs."""
        sinks, dedupe = past_findings(self.alert)
        replay = ReplaySettings(self.names.run_id, self.directory, self.start_time, self.end_time, tuple(self.rules))
        env = {
            **environment(
                resources=self.names.resources, sinks=sinks, dedupe=dedupe, config=self.config, replay=replay
            ),
            **self.env,
        }
        stateful = launcher.AppSpec(
            self.names.stateful_app,
            self.names.keyed_stream,
            launcher.PROCESSORS[Stage.STATEFUL],
            env=env,
            settings=self.settings,
        )
        router = launcher.AppSpec(
            self.names.router_app,
            self.outputs["TrailStreamName"],
            launcher.PROCESSORS[Stage.ROUTER],
            initial_position="AT_TIMESTAMP",
            initial_timestamp=self.start_time,
            empty_batches=True,
            env=env,
            settings=self.settings,
        )
        return stateful, router

    # --- while it runs -----------------------------------------------------------------------------

    def status(self) -> Status:
        if self.status_ is None:
            raise ReplayError("not started")
        found = read_progress(self.directory)
        self.status_.router, self.status_.stateful = found[Stage.ROUTER], found[Stage.STATEFUL]
        return self.status_

    def poll(self) -> bool:
        """Check the daemons, put the end markers once stage 1 is done; True when both stages are done."""
        status = self.status()
        for stage, daemon in self.daemons.items():
            if not daemon.alive():
                raise ReplayError(f"the {stage} daemon (pid {daemon.pid}) exited; its log: {daemon.log_file}")
        if not status.marked and status.router_done():
            self._put_marker(markers.Kind.END, status.event_time())
            status.marked = True
        elif not status.marked:
            self._move_watermark(status)
        return status.stateful_done()

    def _move_watermark(self, status: Status) -> None:
        low = status.low_mark()
        now = time.monotonic()
        if (
            low is None
            or (self._watermark is not None and low <= self._watermark)
            or now - self._watermark_at < WATERMARK_EVERY
        ):
            return
        self._put_marker(markers.Kind.WATERMARK, low)
        self._watermark, self._watermark_at = low, now

    def _put_marker(self, kind: markers.Kind, event_time: float | None) -> None:
        """One marker per keyed shard, placed by explicit hash key. A router shard reports its progress only
        after its facts were acknowledged, so each marker follows every fact it speaks of."""
        kinesis = self.target.client("kinesis")
        data = markers.encode(self.names.run_id, kind, event_time)
        if self._keyed_shards is None:
            self._keyed_shards = shards.open_shards(kinesis, self.names.keyed_stream)
        for shard in self._keyed_shards:
            kinesis.put_record(
                StreamName=self.names.keyed_stream,
                Data=data,
                PartitionKey=f"replay-{kind.value}",
                ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"],
            )

    def findings(self) -> list[Finding]:
        """Findings the processors reported since the last call (repeats included)."""
        return self.tail.read()

    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0

    def wait(self, timeout: float | None = None, interval: float = 0.25, on_poll: Any = None) -> bool:
        """Poll until done; False on timeout. `on_poll(job)` is called after each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = self.poll()
            if on_poll is not None:
                on_poll(self)
            if done:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(interval)

    # --- the end -----------------------------------------------------------------------------------

    def stop(self, graceful: bool = False) -> None:
        """Stop both daemons: SIGTERM (processors checkpoint) if `graceful`, else SIGKILL, which is safe once every
        shard is done (nothing is in flight)."""
        launcher.stop_all(self.daemons.values(), graceful)

    def close(self, graceful: bool = False, keep_directory: bool = False) -> list[str]:
        """Stop the daemons and remove everything the run created; returns what could not be removed."""
        self.stop(graceful)
        problems: list[str] = []
        problems += self._delete_tables()
        if self.created_stream:
            problems += self._delete_stream()
        problems += self._delete_snapshots()
        if not keep_directory and not problems:
            shutil.rmtree(self.directory, ignore_errors=True)
        return problems

    def _delete_tables(self) -> list[str]:
        ddb = self.target.client("dynamodb")
        problems = []
        for table in self.names.tables():
            try:
                ddb.delete_table(TableName=table)
            except ddb.exceptions.ResourceNotFoundException:
                pass
            except Exception as exc:
                problems.append(f"table {table}: {exc}")
        return problems

    def _delete_stream(self) -> list[str]:
        kinesis = self.target.client("kinesis")
        try:
            kinesis.delete_stream(StreamName=self.names.keyed_stream, EnforceConsumerDeletion=True)
        except kinesis.exceptions.ResourceNotFoundException:
            pass
        except Exception as exc:
            return [f"stream {self.names.keyed_stream}: {exc}"]
        return []

    def _delete_snapshots(self) -> list[str]:
        s3, bucket = self.target.client("s3"), self.outputs["StateBucketName"]
        prefix = f"{self.names.stateful_app}/"
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                for i in range(0, len(keys), 1000):
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
        except Exception as exc:
            return [f"snapshots s3://{bucket}/{prefix}: {exc}"]
        return []
