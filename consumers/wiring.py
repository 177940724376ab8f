"""What a record processor process is built from, read once from its settings (`pipeline.settings`).

Live and replay processors are the same two classes; the settings choose their strategies here: which
records stage 1 takes (all, or the replay's range), how stage 2's event time moves (the wall clock, or the
replay's markers), where findings go (the publisher, or the replay's findings file and then the publisher),
and how progress is told (the log, or the replay's progress file).
"""

from __future__ import annotations

from dataclasses import dataclass

from consumers import shards
from consumers.intake import AllRecords, ArrivalRange, Intake
from consumers.metrics import StageMetrics
from consumers.publishing import Alerts, FindingsOut, ReplayedFindings
from consumers.reports import KeyedProgress, LogReport, ProgressFile, Report
from consumers.sinks import Publisher
from consumers.sinks.build import build_publisher
from consumers.sinks.deadletter import S3DeadLetters
from consumers.sinks.kinesis import KinesisWriter
from consumers.watermarks import ReplayMarkers, RouterProgress, Watermark
from infra import aws
from infra.resources import Resources
from pipeline.alerting import AlertPolicy
from pipeline.config import Config
from pipeline.ocsf import archive_format
from pipeline.pack import Pack, bind_pack
from pipeline.settings import ReplaySettings, Settings
from pipeline.stages import Stage


@dataclass
class Wiring:
    settings: Settings
    target: aws.Target
    resources: Resources
    pack: Pack
    publisher: Publisher

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Wiring:
        settings = settings or Settings()
        target = aws.resolve()
        given = settings.resources
        if given is None:
            # Here, not at the top: the template reader (yaml) costs start-up time that processors launched with
            # TRAILWARDEN_RESOURCES (all of ours) do not pay.
            from infra.outputs import outputs

            given = outputs(target)
        resources = Resources(given)
        replay = settings.replay
        config = Config.load()
        pack = bind_pack(config, replay.rules if replay else None, overrides=settings.overrides)
        publisher = build_publisher(
            target,
            resources,
            settings.sinks,
            settings.dedupe,
            settings.findings_file,
            AlertPolicy.from_config(config),
            digests=replay is None,
            archive_format=archive_format(config),
        )
        return cls(settings, target, resources, pack, publisher)

    @property
    def replay(self) -> ReplaySettings | None:
        return self.settings.replay

    def intake(self) -> Intake:
        return ArrivalRange(self.replay.start, self.replay.end) if self.replay else AllRecords()

    def watermark(self) -> Watermark:
        if self.replay:
            return ReplayMarkers(self.replay.run_id)
        kinesis, trail = self.target.client("kinesis"), self.resources.stream(Stage.ROUTER)
        return RouterProgress(lambda: shards.shards(kinesis, trail))

    def findings_out(self) -> FindingsOut:
        return ReplayedFindings(self.publisher, self.replay.directory) if self.replay else Alerts(self.publisher)

    def report(self, stage: Stage) -> Report:
        if self.replay:
            return ProgressFile(self.replay.directory)
        if stage is Stage.ROUTER:  # live: each router shard tells every keyed shard how far it has read
            return KeyedProgress(KinesisWriter(self.target.client("kinesis"), self.resources.stream(Stage.STATEFUL)))
        return LogReport()

    def dead_letters(self, stage: Stage) -> S3DeadLetters:
        """Dead letters under `dead-letters/<application>/` in the state bucket."""
        return S3DeadLetters(self.target.client("s3"), self.resources["StateBucketName"], self.resources.app(stage))

    def metrics(self, stage: Stage) -> StageMetrics:
        """The processor's EMF lines on stderr (TRAILWARDEN_METRICS, TRAILWARDEN_METRICS_SECONDS)."""
        return StageMetrics(
            self.resources.app(stage), stage, interval=self.settings.metrics_seconds, enabled=self.settings.metrics
        ).follow_waits()
