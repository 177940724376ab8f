"""How infra/localstack.py starts LocalStack: its settings, readiness, and the message when it is not installed.
(The suite that runs it: tests/on_localstack, `make test-localstack`.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import aws, localstack
from infra import emulator as emu

REPO = Path(__file__).resolve().parents[3]


def test_localstack_listens_on_loopback_and_writes_only_under_build_and_the_run_folder(tmp_path: Path):
    env = localstack.environment(
        4599,
        tmp_path,
        base={"AWS_PROFILE": "prod", "TRAILWARDEN_TARGET": "aws", "LOCALSTACK_HOST": "elsewhere:1", "PATH": "/bin"},
    )
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:4599" and env["PATH"] == "/bin"
    assert "AWS_PROFILE" not in env and "TRAILWARDEN_TARGET" not in env
    assert env["LOCALSTACK_HOST"] == "127.0.0.1:4599"
    assert "dynamodb" not in env["SERVICES"].split(",") and "kinesis" in env["SERVICES"].split(",")
    assert env["OVERRIDE_IN_DOCKER"] == "0"  # else a container host sends its files to /var/lib/localstack
    assert Path(env["FILESYSTEM_ROOT"]).parent == tmp_path
    assert Path(env["LOCALSTACK_VOLUME_DIR"]).parent == tmp_path
    assert Path(env["npm_config_cache"]).parent == REPO / "build" / "localstack"  # kinesis-mock's npm install


def test_each_run_has_its_own_files_and_shares_the_installed_libraries(tmp_path: Path):
    shared = tmp_path / "lib"
    first, second = (localstack.filesystem(tmp_path / run, shared) for run in ("a", "b"))
    assert first != second
    for root in (first, second):
        assert (root / "var/lib/localstack/lib").resolve() == shared.resolve()
    assert localstack.filesystem(tmp_path / "a", shared) == first  # again: the link is kept
    assert localstack.LIBRARIES == REPO / "build" / "localstack" / "lib"


def test_ready_only_when_every_service_is_up():
    up = {"services": {s: "available" for s in localstack.SERVICES}}
    assert localstack.ready(up)
    assert not localstack.ready({"services": {**up["services"], "kinesis": "error"}})
    assert not localstack.ready(None)


def test_not_installed_says_how_to_install(tmp_path: Path):
    with pytest.raises(RuntimeError, match="make localstack"):
        localstack.start(tmp_path, venv=tmp_path / "no-venv")


def test_the_pair_sends_dynamodb_and_glue_to_the_emulator(tmp_path: Path):
    pair = localstack.LocalStackPair(localstack.LocalStack(1, 4599, tmp_path / "log"), emu.Emulator(2, port=4600))
    target = pair.target()
    assert target.url_for("kinesis") == "http://127.0.0.1:4599" and target.url_for("sqs") == "http://127.0.0.1:4599"
    assert target.url_for("dynamodb") == target.url_for("glue") == "http://127.0.0.1:4600"
    assert localstack.exports(target) == [
        "export TRAILWARDEN_TARGET=http://127.0.0.1:4599",
        "export TRAILWARDEN_ENDPOINTS=dynamodb=http://127.0.0.1:4600,glue=http://127.0.0.1:4600",
    ]
    assert aws.resolve(env=target.env({})) == target


def test_kinesis_mock_installs_into_a_library_folder_a_fresh_clone_does_not_have_yet(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    seen = tmp_path / "seen"
    fake = venv / "bin" / "python"
    # Stands in for LocalStack's interpreter: records where it ran and where its library folder points.
    fake.write_text(f'#!/bin/sh\npwd > "{seen}"\nreadlink filesystem/var/lib/localstack/lib >> "{seen}"\n')
    fake.chmod(0o755)
    libraries = tmp_path / "build" / "localstack" / "lib"

    localstack.install_kinesis_mock(venv, libraries)

    ran_in, linked = seen.read_text().split()
    assert Path(ran_in).parent == libraries.parent and Path(linked) == libraries
    assert libraries.is_dir() and not Path(ran_in).exists(), "the install folder is removed, the libraries kept"
