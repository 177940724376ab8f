"""The LocalStack suite's frame (`make test-localstack`): the `localstack` marker and a LocalStack with the
embedded emulator beside it (DynamoDB), started once for the session on free ports and stopped by pid.

Tests in this directory run only when asked for (`-m localstack`, or a path inside this directory on the
command line), so a plain `pytest` (`make test`) leaves them out. Asked for without LocalStack installed
(`make localstack`), they fail with the error that says so, rather than being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import localstack
from tests.support.opt_in import keep_apart

HERE = Path(__file__).resolve().parent
MARKER = "localstack: end to end on LocalStack + the embedded emulator (make test-localstack); left out of plain pytest"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep_apart(config, items, HERE, "localstack", pytest.mark.slow)


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.LocalStackPair]:
    """LocalStack (Kinesis, Logs, SNS, SQS, S3, Firehose, CloudWatch, ...) and the embedded emulator (DynamoDB)."""
    running = localstack.start_pair(tmp_path_factory.mktemp("localstack"))
    try:
        yield running
    finally:
        running.stop()
