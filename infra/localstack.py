"""LocalStack in host mode, in its own virtualenv, beside the embedded emulator that serves DynamoDB.

LocalStack (`localstack-core[runtime]`, installed by `make localstack` into build/localstack-venv) runs as
`python -m localstack.runtime.main` on 127.0.0.1 and a port of its own, with every file it writes under one folder, the
run's own (`FILESYSTEM_ROOT`; `OVERRIDE_IN_DOCKER=0` so that a machine that is itself a container does not make it
use /var/lib/localstack and /usr/lib/localstack), except the libraries it installs on first use: their folder is a
link to build/localstack/lib, kept for the next run, with npm's cache for them in build/localstack/npm-cache
(kinesis-mock persists its streams under the run's folder, so a run never sees another's). It serves Kinesis
(kinesis-mock, installed through npm by `make localstack`, else on first use, about 35 s), CloudWatch Logs, SNS,
SQS, S3, Firehose, IAM, STS, KMS (for the buckets' SSE-KMS) and CloudWatch (the template's alarms and dashboard).
Its DynamoDB needs a Java runtime and DynamoDB Local downloaded from outside the package registries, and Glue is in
LocalStack Pro only, so those two come from the embedded emulator on another port: `LocalStackPair.target()` is
LocalStack with `dynamodb` and `glue` sent to the emulator (see `infra.aws.with_endpoints`).

    pair = start_pair(directory)          # LocalStack + the emulator, both healthy
    pair.target()                         # the aws.Target across the two
    pair.stop()                           # both, by pid
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.config import Config

from infra import aws
from infra import emulator as emu
from infra.processes import alive, stop_pid
from pipeline.settings import Var

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / "localstack-venv"
LIBRARIES = ROOT / "build" / "localstack" / "lib"  # what it installs on first use (kinesis-mock), kept between runs
NPM_CACHE = ROOT / "build" / "localstack" / "npm-cache"  # npm's downloads and logs for those installs, not ~/.npm
# kms: the template's buckets are SSE-KMS, and LocalStack's S3 creates the key on first PutObject (without it
# every Firehose delivery and state snapshot fails with InternalError "Service 'kms' is not enabled"); cloudwatch:
# the template's alarms and dashboard (provisioning fails with "Service 'cloudwatch' is not enabled" without it)
SERVICES = ("kinesis", "logs", "sns", "sqs", "s3", "firehose", "iam", "sts", "kms", "cloudwatch")
ON_THE_EMULATOR = ("dynamodb", "glue")  # its DynamoDB needs downloads from outside the registries; Glue is Pro
HEALTH_PATH = "/_localstack/health"
INSTALL_HINT = "run `make localstack` (it creates build/localstack-venv with localstack-core[runtime] and its pins)"


def python(venv: Path = VENV) -> Path:
    """LocalStack's interpreter; RuntimeError saying how to install it if it is not there."""
    executable = venv / "bin" / "python"
    if not executable.exists():
        raise RuntimeError(f"LocalStack is not installed: {executable} does not exist; {INSTALL_HINT}")
    return executable


def health(endpoint: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """LocalStack's health document at `endpoint` (services and their state), or None if it does not answer."""
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + HEALTH_PATH, timeout=timeout) as response:  # noqa: S310 (our http endpoint)
            document = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return document if isinstance(document, dict) and isinstance(document.get("services"), dict) else None


def ready(document: dict[str, Any] | None, services: tuple[str, ...] = SERVICES) -> bool:
    """True once every one of `services` is "available" or "running" in the health document."""
    states = (document or {}).get("services", {})
    return all(states.get(name) in ("available", "running") for name in services)


def environment(
    port: int, directory: Path, services: tuple[str, ...] = SERVICES, base: dict[str, str] | None = None
) -> dict[str, str]:
    """LocalStack's settings: 127.0.0.1:`port`, only `services`, every file under `directory` (see `filesystem`)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("AWS_", "TRAILWARDEN_", "LOCALSTACK_"))
    }
    env.update(
        {
            "GATEWAY_LISTEN": f"{emu.DEFAULT_HOST}:{port}",
            "LOCALSTACK_HOST": f"{emu.DEFAULT_HOST}:{port}",
            "SERVICES": ",".join(services),
            "OVERRIDE_IN_DOCKER": "0",  # host-mode directories even when this machine is a container
            "FILESYSTEM_ROOT": str(directory / "filesystem"),
            "LOCALSTACK_VOLUME_DIR": str(directory / "volume"),
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "npm_config_cache": str(NPM_CACHE),
        }
    )
    return env


def filesystem(directory: Path, libraries: Path = LIBRARIES) -> Path:
    """The run's LocalStack filesystem root, its library folder a link to `libraries` (shared between runs)."""
    root = directory / "filesystem"
    link = root / "var" / "lib" / "localstack" / "lib"  # where host mode puts var_libs under FILESYSTEM_ROOT
    libraries.mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(libraries, target_is_directory=True)
    return root


def install_kinesis_mock(venv: Path = VENV, libraries: Path = LIBRARIES) -> None:
    """kinesis-mock into `libraries` through npm, as LocalStack installs it on its first Kinesis call (about 35 s):
    `make localstack` does it while the checks run, so that the first LocalStack started does not wait for it."""
    libraries.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no build/localstack yet
    with tempfile.TemporaryDirectory(prefix="install-", dir=libraries.parent) as folder:
        directory = Path(folder)
        filesystem(directory, libraries)
        subprocess.run(  # noqa: S603 (argv built here: LocalStack's own venv python and its package installer)
            [
                str(python(venv)),
                "-c",
                "from localstack.services.kinesis.packages import kinesismock_package as p; p.install()",
            ],
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env=environment(0, directory),
            check=True,
        )


@dataclass
class LocalStack:
    """A LocalStack runtime process we started."""

    pid: int
    port: int
    log_file: Path

    @property
    def endpoint(self) -> str:
        return f"http://{emu.DEFAULT_HOST}:{self.port}"

    def log_tail(self, size: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-size:] if self.log_file.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the runtime (it stops its kinesis-mock child), SIGKILL to its process group after `timeout`.
        It keeps nothing worth a graceful stop (no persistence; its files are the run's own), and after logging
        "Stopping all services" it idles for 18 s or more before it exits (measured on a loaded machine)."""
        stop_pid(self.pid, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # a child it left behind (its own session: only ours)
        deadline = time.monotonic() + 10
        while not emu.port_free(emu.DEFAULT_HOST, self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.endpoint} still accepts connections after stopping LocalStack pid {self.pid}"
                )
            time.sleep(0.1)


def start(directory: Path, port: int | None = None, venv: Path = VENV, timeout: float = 180.0) -> LocalStack:
    """Start LocalStack on 127.0.0.1:`port` (a free one if None) with its files under `directory`; wait
    until its services are available. RuntimeError with the log's end if it is not installed or does not come up."""
    executable = python(venv)
    port = emu.free_port() if port is None else port
    if not emu.port_free(emu.DEFAULT_HOST, port):
        raise RuntimeError(f"{emu.DEFAULT_HOST}:{port} is already in use")
    directory.mkdir(parents=True, exist_ok=True)
    filesystem(directory)
    log_file = directory / "localstack.log"
    with open(log_file, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 (argv built here: LocalStack's own venv python and module)
            [str(executable), "-m", "localstack.runtime.main"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=directory,
            env=environment(port, directory),
        )
    handle = LocalStack(process.pid, port, log_file)
    deadline = time.monotonic() + timeout
    while not ready(health(handle.endpoint)):
        if process.poll() is not None or time.monotonic() > deadline:
            why = "exited" if process.poll() is not None else f"was not ready after {timeout:.0f} s"
            with contextlib.suppress(RuntimeError):
                handle.stop(timeout=5)
            raise RuntimeError(f"LocalStack on {handle.endpoint} {why}; log {log_file}:\n{handle.log_tail()}")
        time.sleep(0.5)
    try:
        _start_kinesis(handle.endpoint, max(30.0, deadline - time.monotonic()))
    except Exception as error:
        with contextlib.suppress(RuntimeError):
            handle.stop(timeout=5)
        raise RuntimeError(
            f"LocalStack's Kinesis (kinesis-mock) did not start: {error}; log {log_file}:\n{handle.log_tail()}"
        ) from error
    log.info("LocalStack pid %d ready at %s", process.pid, handle.endpoint)
    return handle


def _start_kinesis(endpoint: str, timeout: float) -> None:
    """LocalStack starts kinesis-mock (npm-installing it the first time) on the first Kinesis call, which
    takes longer than a client's read timeout; a client's retry of a CreateStream would then find the stream
    it created. One ListStreams, with time to spare, does it before anyone else calls."""
    once = Config(read_timeout=timeout, retries={"total_max_attempts": 1})
    aws.endpoint(endpoint, env={}).client("kinesis", config=once).list_streams()


@dataclass
class LocalStackPair:
    """LocalStack and the embedded emulator that serves what LocalStack cannot here (DynamoDB)."""

    localstack: LocalStack
    emulator: emu.Emulator

    def target(self) -> aws.Target:
        return aws.with_endpoints(
            aws.endpoint(self.localstack.endpoint, env={}),
            {service: self.emulator.endpoint for service in ON_THE_EMULATOR},
        )

    def alive(self) -> bool:
        return alive(self.localstack.pid) and alive(self.emulator.pid)

    def stop(self) -> None:
        try:
            self.localstack.stop()
        finally:
            self.emulator.stop()


def start_pair(
    directory: Path, port: int | None = None, emulator_port: int | None = None, venv: Path = VENV
) -> LocalStackPair:
    """LocalStack and the embedded emulator (DynamoDB), both on free ports unless given; stopped on failure."""
    handle = emu.start(
        emu.free_port() if emulator_port is None else emulator_port,
        pid_file=directory / "emulator.pid",
        log_file=directory / "emulator.log",
        timeout=60.0,  # it starts beside LocalStack's install of kinesis-mock: 20 s was too short on a loaded machine
    )
    try:
        return LocalStackPair(start(directory, port, venv), handle)
    except BaseException:
        handle.stop()
        raise


# --- `trailwarden stack up --localstack`: the pair recorded for the commands that come after -----------------


def state_file() -> Path:
    """Where `stack up --localstack` records the pair it started (beside the emulator's pid file)."""
    return emu.state_dir() / "localstack.json"


def record(pair: LocalStackPair, path: Path | None = None) -> Path:
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "localstack": {
                    "pid": pair.localstack.pid,
                    "port": pair.localstack.port,
                    "log": str(pair.localstack.log_file),
                },
                "emulator": {
                    "pid": pair.emulator.pid,
                    "port": pair.emulator.port,
                    "log": str(pair.emulator.log_file or ""),
                },
            }
        )
        + "\n"
    )
    return path


def _runs(pid: int, module: str) -> bool:
    try:
        return module.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return alive(pid)


def recorded(path: Path | None = None) -> LocalStackPair | None:
    """The pair `record` wrote, if both processes still run and are what they were; else None."""
    try:
        document = json.loads((path or state_file()).read_text())
        ls, em = document["localstack"], document["emulator"]
        pair = LocalStackPair(
            LocalStack(int(ls["pid"]), int(ls["port"]), Path(ls["log"])),
            emu.Emulator(
                int(em["pid"]), emu.DEFAULT_HOST, int(em["port"]), None, Path(em["log"]) if em.get("log") else None
            ),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (
        pair.alive()
        and _runs(pair.localstack.pid, "localstack.runtime.main")
        and _runs(pair.emulator.pid, "infra.emulator")
    ):
        return None
    return pair


def exports(target: aws.Target) -> list[str]:
    """The shell lines that point later commands (simulate, run, replay) at `target`."""
    lines = [f"export {Var.TARGET}={target.endpoint_url}"]
    if target.endpoints:
        lines.append(f"export {Var.ENDPOINTS}=" + ",".join(f"{s}={u}" for s, u in target.endpoints))
    return lines
