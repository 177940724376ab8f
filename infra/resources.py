"""The names of the stack's resources as processes use them: the template's outputs, with the application
names' defaults filled in, and the names a replay run gives its own applications and keyed stream."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from pipeline.stages import Stage

# The template's defaults of its RouterAppName and StatefulAppName parameters.
DEFAULT_APPS = {Stage.ROUTER: "trailwarden-router", Stage.STATEFUL: "trailwarden-stateful"}
APP_OUTPUT = {Stage.ROUTER: "RouterAppName", Stage.STATEFUL: "StatefulAppName"}
STREAM_OUTPUT = {Stage.ROUTER: "TrailStreamName", Stage.STATEFUL: "KeyedStreamName"}  # what each stage reads


@dataclass(frozen=True)
class Resources(Mapping[str, str]):
    """The stack's outputs (`infra.outputs.outputs`), read like the dict they are."""

    outputs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        filled = dict(self.outputs)
        for stage, key in APP_OUTPUT.items():
            filled.setdefault(key, DEFAULT_APPS[stage])
        object.__setattr__(self, "outputs", filled)

    def __getitem__(self, key: str) -> str:
        return self.outputs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def app(self, stage: Stage) -> str:
        """The KCL application of a stage (its lease table, and the prefix of its snapshots and dead letters)."""
        return self.outputs[APP_OUTPUT[stage]]

    def stream(self, stage: Stage) -> str:
        """The stream a stage reads: the trail stream for the router, the keyed stream for the stateful stage."""
        return self.outputs[STREAM_OUTPUT[stage]]

    def for_replay(self, run_id: str) -> Resources:
        """A replay run's names: `<app>-replay-<run>` for both applications, `<keyed>-replay-<run>` for its keyed
        stream; the trail stream, sinks, table and bucket are the live ones."""
        suffix = f"-replay-{run_id}"
        return Resources(
            {
                **self.outputs,
                APP_OUTPUT[Stage.ROUTER]: self.app(Stage.ROUTER) + suffix,
                APP_OUTPUT[Stage.STATEFUL]: self.app(Stage.STATEFUL) + suffix,
                STREAM_OUTPUT[Stage.STATEFUL]: self.stream(Stage.STATEFUL) + suffix,
            }
        )
