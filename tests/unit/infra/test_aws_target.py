"""Endpoint resolution (infra.aws): one order of precedence for every command and child process."""

from __future__ import annotations

import argparse

import pytest

from infra import aws


def test_local_commands_default_to_the_embedded_emulator() -> None:
    target = aws.resolve(env={})
    assert (target.kind, target.endpoint_url, target.region) == ("emulator", aws.EMULATOR_ENDPOINT, "us-east-1")
    assert (target.access_key, target.secret_key) == ("test", "test")
    assert aws.resolve(env={}, local=False).kind == "aws"


def test_aws_endpoint_url_and_localstack_host_pick_another_endpoint() -> None:
    env = {"AWS_ENDPOINT_URL": "http://localstack:4566/", "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AK"}
    target = aws.resolve(env=env)
    assert (target.kind, target.endpoint_url, target.region, target.access_key) == (
        "endpoint",
        "http://localstack:4566",
        "eu-west-1",
        "AK",
    )
    # Through localstack-client: host:port, and the edge port when only a host is given.
    assert aws.resolve(env={"LOCALSTACK_HOST": "ls.internal:4599"}).endpoint_url == "http://ls.internal:4599"
    assert aws.resolve(env={"LOCALSTACK_HOST": "ls.internal"}).endpoint_url == "http://ls.internal:4566"
    assert aws.resolve(env={"LOCALSTACK_HOST": "ls.internal"}, local=False).kind == "endpoint"


def test_without_the_local_extra_aws_endpoint_url_still_works_and_localstack_host_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "localstack_client", None)  # as if `trailwarden[local]` were not installed
    assert aws.resolve(env={"AWS_ENDPOINT_URL": "http://ls:4566/"}).endpoint_url == "http://ls:4566"
    with pytest.raises(ValueError, match=r"pip install 'trailwarden\[local\]'"):
        aws.resolve(env={"LOCALSTACK_HOST": "ls.internal:4599"})


def test_explicit_choice_and_trailwarden_target_win() -> None:
    env = {"AWS_ENDPOINT_URL": "http://localstack:4566", "TRAILWARDEN_TARGET": "aws"}
    assert aws.resolve(env=env).kind == "aws"
    assert aws.resolve("local", env=env).kind == "emulator"
    assert aws.resolve("http://127.0.0.1:5000", env=env).endpoint_url == "http://127.0.0.1:5000"
    with pytest.raises(ValueError):
        aws.resolve("ftp://nowhere", env={})


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    aws.add_arguments(parser)
    assert aws.from_args(parser.parse_args(["--aws"])).kind == "aws"
    assert aws.from_args(parser.parse_args(["--endpoint-url", "http://h:1"])).endpoint_url == "http://h:1"
    with pytest.raises(SystemExit):
        parser.parse_args(["--aws", "--endpoint-url", "http://h:1"])


def test_child_environment_resolves_to_the_same_target() -> None:
    local = aws.emulator("http://127.0.0.1:4999")
    env = local.env({"AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "x", "PATH": "/bin"})
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env and env["PATH"] == "/bin"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999" and env["AWS_REGION"] == "us-east-1"
    assert aws.resolve(env=env).endpoint_url == "http://127.0.0.1:4999"
    real = aws.aws().env({"AWS_ENDPOINT_URL": "http://stale:4566"})
    assert "AWS_ENDPOINT_URL" not in real and aws.resolve(env=real).kind == "aws"


def test_real_aws_clients_ignore_a_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    client = aws.aws("us-east-1").client("kinesis")
    assert client.meta.endpoint_url == "https://kinesis.us-east-1.amazonaws.com"
    local = aws.emulator("http://127.0.0.1:4999").client("kinesis")
    assert local.meta.endpoint_url == "http://127.0.0.1:4999"


def test_per_service_endpoints_reach_clients_children_and_the_kcl() -> None:
    from consumers import launcher

    env = {
        "TRAILWARDEN_TARGET": "http://127.0.0.1:4599",
        "TRAILWARDEN_ENDPOINTS": "DynamoDB=http://127.0.0.1:4600/,kinesis=http://127.0.0.1:4601",
    }
    target = aws.resolve(env=env)
    assert target.url_for("dynamodb") == "http://127.0.0.1:4600"
    assert target.url_for("kinesis") == "http://127.0.0.1:4601"
    assert target.url_for("sns") == "http://127.0.0.1:4599"
    assert target.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4600"
    assert target.client("kinesis").meta.endpoint_url == "http://127.0.0.1:4601"
    assert aws.resolve(env=target.env({})) == target  # a record processor resolves the same split
    props = launcher.properties(launcher.AppSpec("app", "trail", "consumers.router"), target)
    assert props["kinesisClient.endpointOverride"] == "http://127.0.0.1:4601"
    assert props["dynamoDbClient.endpointOverride"] == "http://127.0.0.1:4600"
    assert props["cloudWatchClient.endpointOverride"] == "http://127.0.0.1:4599"
    assert "TRAILWARDEN_ENDPOINTS" not in aws.emulator().env(env)  # a stale split does not leak into a child
    real = aws.resolve("aws", env=env)
    assert real.endpoints == () and real.url_for("dynamodb") is None


def test_a_malformed_endpoints_variable_names_itself() -> None:
    with pytest.raises(ValueError, match=r"TRAILWARDEN_ENDPOINTS.*dynamodb=http"):
        aws.resolve(env={"TRAILWARDEN_ENDPOINTS": "dynamodb:4600"})
