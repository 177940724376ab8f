"""The LocalStack smoke (`make test` and `make test-localstack`; slow): the stack up on LocalStack (Kinesis, Logs,
SNS, SQS, S3, Firehose) with the embedded emulator beside it (DynamoDB), one scenario through both KCL daemons,
its findings checked on SNS -> SQS and in Firehose -> S3, and the stack down, every process stopped by its pid.

The scenario is tests/e2e/test_live_pipeline.py's first. `make test` asks for this file by its path (a plain
`pytest` leaves the LocalStack folder out). LocalStack comes from `make localstack` (a prerequisite of both
targets); without it this fails saying to run that.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.e2e.test_live_pipeline as on_the_emulator
from consumers.launcher import children
from infra import emulator as emu
from infra import localstack
from infra.processes import alive
from tests.support.live import Live, config_file, stack_on

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.LocalStackPair]:
    running = localstack.start_pair(tmp_path_factory.mktemp("localstack-smoke"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack(pair: localstack.LocalStackPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp("live-localstack-smoke")
    with stack_on(pair.target(), directory, config_file(directory, on_the_emulator.GRACE)) as running:
        running.wait_for_processors()
        yield running


def test_the_stack_runs_across_localstack_and_the_emulator(pair: localstack.LocalStackPair, stack: Live):
    assert stack.target.url_for("kinesis") == pair.localstack.endpoint
    assert stack.target.url_for("dynamodb") == pair.emulator.endpoint
    assert (localstack.health(pair.localstack.endpoint) or {}).get("services", {}).get("kinesis") == "running"
    assert stack.outputs["DedupeTableName"] in stack.target.client("dynamodb").list_tables()["TableNames"]


test_untagged_instance_reported_once_after_grace_and_tagged_one_not = (
    on_the_emulator.test_untagged_instance_reported_once_after_grace_and_tagged_one_not
)


def test_stack_down_stops_every_process_it_started(pair: localstack.LocalStackPair, stack: Live):
    daemons = list(stack.pipeline.daemons.values())
    pids = [d.pid for d in daemons] + [p for d in daemons for p in d.processors()]
    pids += [pair.localstack.pid, *_descendants(pair.localstack.pid), pair.emulator.pid]
    assert len(pids) >= 7  # two daemons, a processor each at least, LocalStack, kinesis-mock, the emulator

    stack.pipeline.stop()
    pair.stop()

    assert [pid for pid in pids if alive(pid)] == []
    assert emu.port_free(emu.DEFAULT_HOST, pair.localstack.port)
    assert emu.port_free(emu.DEFAULT_HOST, pair.emulator.port)


def _descendants(pid: int) -> list[int]:
    return [p for child in children(pid) for p in (child, *_descendants(child))]
