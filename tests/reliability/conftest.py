"""The reliability suite's frame: the `reliability` marker, a `reliability_row` fixture that records a row
and prints its figure, and the table at the end of the session.

Tests in this directory run only when asked for (`-m reliability`, or a path inside this directory on the
command line), so a plain `pytest` (`make test`) leaves them out. Rows go to the results file
(TRAILWARDEN_RELIABILITY_RESULTS, default build/reliability/results.jsonl).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.opt_in import keep_apart

from .results import Row, load, record, results_path, table

HERE = Path(__file__).resolve().parent
MARKER = "reliability: the reliability suite (make reliability); long, left out of a plain pytest run"
_STARTED = time.time()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep_apart(config, items, HERE, "reliability")


@pytest.fixture
def reliability_row(request: pytest.FixtureRequest) -> Callable[[Row], Row]:
    """Record a row (and print its figure on the terminal, even with output captured)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def save(row: Row) -> Row:
        record(row)
        if reporter is not None:
            counts = (
                ""
                if row.expected is None
                else (
                    f", findings {row.expected:,} expected / {row.delivered or 0:,} delivered / "
                    f"{row.duplicated or 0:,} duplicated"
                )
            )
            reporter.write_line(
                f"\n[reliability] {row.test}: {row.runs:,} runs, {row.inputs or 0:,} inputs{counts}"
                f"{'; ' + row.figure if row.figure else ''} -> {row.result}"
            )
        return row

    return save


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = load(since=_STARTED)
    if rows:
        terminalreporter.write_sep("=", f"reliability ({results_path()})")
        terminalreporter.write_line(table(rows))
