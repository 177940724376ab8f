"""Shared fixtures: an emulator on a free port for the whole session (never :4566, so a developer's
running stack is untouched), started and stopped by pid; `aws_target` resets it before each test.

Set TRAILWARDEN_TEST_ENDPOINT to run the same tests against another endpoint (e.g. LocalStack);
then nothing is started and nothing is reset.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from infra import aws
from infra import emulator as emu

# A shell without job control starts a background job (`make test &`) with Ctrl-C ignored, and every process
# the suite starts would inherit that: the tests that press Ctrl-C on a command would see it run on. A handled
# signal is reset to its default in the programs the suite starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def emulator_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of the session's emulator (or of TRAILWARDEN_TEST_ENDPOINT)."""
    given = os.environ.get("TRAILWARDEN_TEST_ENDPOINT", "").strip()
    if given:
        yield given.rstrip("/")
        return
    state = tmp_path_factory.mktemp("emulator")
    handle = emu.start(emu.free_port(), pid_file=state / "emulator.pid", log_file=state / "emulator.log")
    try:
        yield handle.endpoint
    finally:
        handle.stop()


def fresh_target(endpoint: str) -> aws.Target:
    """A target on `endpoint`; the session's own emulator is emptied first (moto reset), an external one is not."""
    if os.environ.get("TRAILWARDEN_TEST_ENDPOINT", "").strip():
        return aws.resolve(endpoint)
    emu.reset(endpoint)
    return aws.emulator(endpoint)


@pytest.fixture
def aws_target(emulator_endpoint: str) -> aws.Target:
    """A target on the session's emulator, emptied first so each test starts clean."""
    return fresh_target(emulator_endpoint)


@pytest.fixture(scope="module")
def module_target(emulator_endpoint: str) -> aws.Target:
    """Like `aws_target`, emptied once per module (for tests sharing provisioned resources)."""
    return fresh_target(emulator_endpoint)
