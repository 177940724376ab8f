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

HERE = Path(__file__).resolve().parent
MARKER = "localstack: end to end on LocalStack + the embedded emulator (make test-localstack); left out of plain pytest"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def _asked_for(config: pytest.Config) -> bool:
    if "localstack" in (config.option.markexpr or ""):
        return True
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    for item in mine:
        item.add_marker(pytest.mark.localstack)
        item.add_marker(pytest.mark.slow)
    if mine and not _asked_for(config):
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.LocalStackPair]:
    """LocalStack (Kinesis, Logs, SNS, SQS, S3, Firehose, IAM, STS) and the embedded emulator (DynamoDB)."""
    running = localstack.start_pair(tmp_path_factory.mktemp("localstack"))
    try:
        yield running
    finally:
        running.stop()
