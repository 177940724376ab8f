"""Where AWS calls go: the one place that resolves endpoints, credentials and region.

Every boto3 client in trailwarden comes from `client(service)` (or `resolve(...).client(service)`),
and every child process that talks to AWS (the KCL daemons) gets `Target.env()`. The target is
chosen, first match wins, by:

1. an explicit choice, `resolve(choice)`: "aws", "local", or an endpoint URL. Commands take it from
   `--aws` / `--endpoint-url URL` (`add_arguments(parser)`, then `from_args(args)`);
2. `TRAILWARDEN_TARGET` in the environment: "aws", "local", or an endpoint URL;
3. `AWS_ENDPOINT_URL` or `LOCALSTACK_HOST` (read through localstack-client, so `LOCALSTACK_HOST=host:port`
   and `USE_SSL` mean what they mean for LocalStack's own clients): that endpoint, e.g. a real LocalStack.
   Without the `local` extra (no localstack-client), AWS_ENDPOINT_URL is taken as it is;
4. otherwise the default of the command: the embedded emulator at http://127.0.0.1:4566 for local
   commands (`local=True`, the default), real AWS for commands that run in an account (`local=False`).

Any local target may send some services elsewhere: `with_endpoints(target, {"dynamodb": url})`, or
`TRAILWARDEN_ENDPOINTS=dynamodb=URL[,service=URL...]` in the environment (e.g. LocalStack for everything but
DynamoDB, which comes from the embedded emulator). `Target.url_for(service)` is where a service's calls go.

Targets:
- "emulator": http://127.0.0.1:4566, dummy credentials (test/test), region us-east-1.
- "endpoint": the given URL; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY if set, else
  test/test; region from AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.
- "aws": boto3's usual credential chain and region. Endpoint URLs configured in the environment or
  the shared config are ignored, so a leftover AWS_ENDPOINT_URL cannot redirect a `--aws` run.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from pipeline.settings import Settings, Var

EMULATOR_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_REGION = "us-east-1"
DUMMY_KEY = "test"

_ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "LOCALSTACK_HOST")


@dataclass(frozen=True)
class Target:
    """One resolved destination for AWS calls."""

    kind: str  # "emulator" | "endpoint" | "aws"
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    endpoints: tuple[tuple[str, str], ...] = ()  # (service, url) over endpoint_url; local targets only

    @property
    def local(self) -> bool:
        """True for an emulator or LocalStack-style endpoint, False for real AWS."""
        return self.endpoint_url is not None

    def url_for(self, service: str) -> str | None:
        """The endpoint URL of `service`'s calls (its own if one is given, else the target's); None on AWS."""
        return dict(self.endpoints).get(service.lower(), self.endpoint_url) if self.local else None

    def label(self) -> str:
        """The target in a few words, for messages."""
        if self.kind == "aws":
            return f"real AWS (region {self.session().region_name or 'unset'})"
        others = "".join(f", {service} at {url}" for service, url in self.endpoints)
        return f"{self.kind} {self.endpoint_url}{others} (region {self.region})"

    def session(self) -> boto3.Session:
        return _session(self)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for `service` on this target; `kwargs` go to `Session.client` (e.g. `config`)."""
        config = _BASE_CONFIG if self.local else _AWS_CONFIG
        if "config" in kwargs:
            config = config.merge(kwargs.pop("config"))
        if self.local:
            kwargs.setdefault("endpoint_url", self.url_for(service))
        with _CLIENTS_LOCK:  # a boto3 Session is not safe to make clients from in two threads at once
            return self.session().client(service, config=config, **kwargs)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a child process (e.g. the KCL daemon) so it resolves to this same target."""
        env = dict(os.environ if base is None else base)
        env.pop(Var.ENDPOINTS, None)
        if not self.local:
            env[Var.TARGET] = "aws"
            for name in _ENDPOINT_ENV:
                env.pop(name, None)
            return env
        if self.endpoints:
            env[Var.ENDPOINTS] = ",".join(f"{service}={url}" for service, url in self.endpoints)
        assert self.endpoint_url and self.region and self.access_key and self.secret_key  # noqa: S101 (narrows the types: a resolved target has all four)
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        env.update(
            {
                Var.TARGET: self.endpoint_url,
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
            }
        )
        return env


_BASE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)
_AWS_CONFIG = _BASE_CONFIG.merge(Config(ignore_configured_endpoint_urls=True))


_CLIENTS_LOCK = threading.Lock()


@lru_cache(maxsize=16)
def _session(target: Target) -> boto3.Session:
    if not target.local:
        return boto3.Session(region_name=target.region) if target.region else boto3.Session()
    return boto3.Session(
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        region_name=target.region,
    )


def emulator(endpoint_url: str = EMULATOR_ENDPOINT) -> Target:
    """The embedded emulator (or one started by a test on another port)."""
    return Target("emulator", endpoint_url.rstrip("/"), LOCAL_REGION, DUMMY_KEY, DUMMY_KEY)


def endpoint(endpoint_url: str, env: Mapping[str, str] | None = None) -> Target:
    """A LocalStack-style endpoint: environment credentials if set, else dummy ones."""
    env = os.environ if env is None else env
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or LOCAL_REGION
    access = env.get("AWS_ACCESS_KEY_ID") or DUMMY_KEY
    secret = env.get("AWS_SECRET_ACCESS_KEY") or DUMMY_KEY
    return Target("endpoint", endpoint_url.rstrip("/"), region, access, secret)


def with_endpoints(target: Target, endpoints: Mapping[str, str]) -> Target:
    """`target` with these services' calls sent to their own URLs (over any it had); a local target only."""
    if not target.local:
        raise ValueError("per-service endpoints are for an emulator or endpoint target, not real AWS")
    merged = {**dict(target.endpoints), **{k.lower(): v.rstrip("/") for k, v in endpoints.items()}}
    return replace(target, endpoints=tuple(sorted(merged.items())))


def aws(region: str | None = None) -> Target:
    """Real AWS through boto3's credential chain."""
    return Target("aws", None, region)


def _from_choice(choice: str, env: Mapping[str, str]) -> Target:
    value = choice.strip()
    lowered = value.lower()
    if lowered == "aws":
        return aws()
    if lowered in ("local", "emulator"):
        return emulator()
    if lowered.startswith(("http://", "https://")):
        url = value.rstrip("/")
        return emulator(url) if url == EMULATOR_ENDPOINT else endpoint(url, env)
    raise ValueError(f"unknown AWS target {choice!r}: expected 'aws', 'local' or an http(s):// endpoint URL")


def resolve(choice: str | None = None, *, local: bool = True, env: Mapping[str, str] | None = None) -> Target:
    """The target for this run; see the module docstring for the order. Raises ValueError on a bad choice.
    A local target takes the per-service endpoints of TRAILWARDEN_ENDPOINTS."""
    env = os.environ if env is None else env
    target = _resolve(choice, local, env)
    endpoints = Settings(env).endpoints if target.local else {}
    return with_endpoints(target, endpoints) if endpoints else target


def _resolve(choice: str | None, local: bool, env: Mapping[str, str]) -> Target:
    if choice:
        return _from_choice(choice, env)
    chosen = Settings(env).target
    if chosen:
        return _from_choice(chosen, env)
    if any(env.get(name, "").strip() for name in _ENDPOINT_ENV):
        try:  # here, not at the top: localstack-client is optional (the `local` extra)
            from localstack_client import config as localstack_config
        except ImportError:  # the `local` extra is not installed: AWS_ENDPOINT_URL still means what it says
            return _endpoint_without_localstack_client(env)
        saved = {name: os.environ.get(name) for name in (*_ENDPOINT_ENV, "USE_SSL")}
        try:
            if env is not os.environ:  # localstack-client reads os.environ
                for name in saved:
                    _set_env(name, env.get(name))
            url = localstack_config.get_service_endpoint("kinesis")
        finally:
            if env is not os.environ:
                for name, value in saved.items():
                    _set_env(name, value)
        if url:
            return _from_choice(url, env)
    return emulator() if local else aws()


def _endpoint_without_localstack_client(env: Mapping[str, str]) -> Target:
    url = env.get("AWS_ENDPOINT_URL", "").strip()
    if url:
        return _from_choice(url, env)
    raise ValueError(
        "LOCALSTACK_HOST is set, and reading it needs localstack-client: "
        "pip install 'trailwarden[local]', or set AWS_ENDPOINT_URL to the endpoint URL instead"
    )


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def session(choice: str | None = None, *, local: bool = True) -> boto3.Session:
    return resolve(choice, local=local).session()


def client(service: str, choice: str | None = None, *, local: bool = True, **kwargs: Any) -> Any:
    """A boto3 client for `service` on the resolved target."""
    return resolve(choice, local=local).client(service, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--aws` and `--endpoint-url URL`: the explicit choice of step 1."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--aws",
        action="store_const",
        const="aws",
        dest="aws_target",
        help="use real AWS with the usual credential chain (also: TRAILWARDEN_TARGET=aws)",
    )
    group.add_argument(
        "--endpoint-url",
        dest="aws_target",
        metavar="URL",
        help="use this AWS-compatible endpoint, e.g. LocalStack (also: AWS_ENDPOINT_URL, LOCALSTACK_HOST); "
        f"default for local commands: the embedded emulator {EMULATOR_ENDPOINT}",
    )


def from_args(args: argparse.Namespace, *, local: bool = True) -> Target:
    """The target for a command whose parser went through `add_arguments`."""
    return resolve(getattr(args, "aws_target", None), local=local)
