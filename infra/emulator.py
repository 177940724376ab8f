"""The embedded local AWS: moto's WSGI application served by hypercorn.

hypercorn speaks HTTP/1.1 and HTTP/2 cleartext (h2c) on one port, which the KCL's Kinesis
client needs; moto's own Werkzeug server speaks only HTTP/1.1. The server binds 127.0.0.1.

Foreground: `python -m infra.emulator [--host H] [--port P]` serves until SIGTERM/SIGINT.
Background, from Python:

    handle = start(port)            # detached process, waits until healthy
    handle.endpoint                 # "http://127.0.0.1:<port>"
    handle.reset()                  # POST /moto-api/reset: clears every resource
    handle.stop()                   # SIGTERM, SIGKILL after a timeout, port verified free

`start(..., pid_file=path)` records the process (JSON: pid, host, port) so another command can
find it with `running(pid_file)` and stop exactly that process. Besides moto's API the server
answers `GET /_trailwarden/health` (and LocalStack's `/_localstack/health`) with its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.processes import alive, stop_pid
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
HEALTH_PATH = "/_trailwarden/health"
_HEALTH_PATHS = (HEALTH_PATH, "/_localstack/health")
_MODULE = "infra.emulator"
WORKER_THREADS = 64


def state_dir() -> Path:
    """Where local run state lives (pid files, logs, KCL properties): $TRAILWARDEN_STATE_DIR, else
    `$XDG_STATE_HOME/trailwarden` (`~/.local/state/trailwarden`): one per user, like the port the local
    stack listens on, so `stack down` finds what `stack up` started from any folder."""
    return Settings().state_dir


def default_pid_file() -> Path:
    return state_dir() / "emulator.pid"


# --- the server -------------------------------------------------------------------------------


def build_app() -> Any:
    """moto's WSGI application (dispatching on Host and signature like `moto_server`), plus a health route."""
    # Here, not at the top: moto and hypercorn are optional (the `local` extra) and take seconds to import;
    # only the emulator's own process needs them.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)
    body = json.dumps({"service": "trailwarden-emulator", "status": "running", "pid": os.getpid()}).encode()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") in _HEALTH_PATHS and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return _at_least_one_chunk(moto_app(environ, start_response))

    return app


def _at_least_one_chunk(body: Any) -> Any:
    """hypercorn's WSGI wrapper sends the response start with the first body chunk, so an empty body
    (HEAD, 204) would fail with UnexpectedMessageError and reach the client as HTTP 500."""
    try:
        empty = True
        for chunk in body:
            empty = False
            yield chunk
        if empty:
            yield b""
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve in the foreground until SIGTERM or SIGINT."""
    # Here, not at the top: the `local` extra, as in build_app.
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.keep_alive_timeout = 75  # the SDKs keep connections alive between polls
    config.wsgi_max_body_size = 64 * 1024 * 1024
    app = build_app()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # hypercorn runs each WSGI request on the loop's default executor (6 threads on 2 cores); a few
        # long polls (SQS WaitTimeSeconds) beside two KCL daemons would exhaust it.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="moto"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait, mode="wsgi")

    asyncio.run(run())


# --- probing ----------------------------------------------------------------------------------


def _http(endpoint: str, path: str) -> str:
    """`endpoint` + `path`, refused (ValueError) unless the endpoint is an http(s) URL (not file: or another scheme)."""
    if urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError(f"{endpoint!r} is not an http:// or https:// endpoint URL")
    return endpoint.rstrip("/") + path


def health(endpoint: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The health document of a trailwarden emulator at `endpoint`, or None if none answers there."""
    try:
        url = _http(endpoint, HEALTH_PATH)
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) only: _http)
            document = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return document if isinstance(document, dict) and document.get("status") == "running" else None


def reset(endpoint: str) -> None:
    """Drop every resource of the moto server at `endpoint` (`POST /moto-api/reset`)."""
    request = urllib.request.Request(_http(endpoint, "/moto-api/reset"), method="POST", data=b"")  # noqa: S310 (http(s) only: _http)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http(s) only: _http)
        response.read()


def port_free(host: str, port: int) -> bool:
    """True if nothing accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port the OS reports free now (for tests that must not touch a developer's :4566)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _is_emulator(pid: int) -> bool:
    """True if `pid` runs this module (guards against a pid recycled by an unrelated process)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return alive(pid)  # no /proc: trust the pid file
    return _MODULE.encode() in cmdline


# --- the background process -------------------------------------------------------------------


@dataclass
class Emulator:
    """A running emulator process: where it listens, and how to stop it."""

    pid: int
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    pid_file: Path | None = None
    log_file: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def healthy(self) -> bool:
        document = health(self.endpoint)
        return document is not None and document.get("pid") == self.pid

    def reset(self) -> None:
        """Drop every resource (moto's `POST /moto-api/reset`)."""
        reset(self.endpoint)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; removes the pid file; raises if the port stays busy."""
        if not stop_pid(self.pid, timeout):
            raise RuntimeError(f"process {self.pid} survived SIGKILL")
        if self.pid_file is not None:
            with contextlib.suppress(FileNotFoundError):
                if _read_pid_file(self.pid_file) in (None, self.pid):
                    self.pid_file.unlink()
        deadline = time.monotonic() + timeout
        while not port_free(self.host, self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.host}:{self.port} still accepts connections after stopping pid {self.pid}")
            time.sleep(0.05)


def start(
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    pid_file: Path | None = None,
    log_file: Path | None = None,
    timeout: float = 20.0,
) -> Emulator:
    """Start a detached emulator on host:port and wait until it is healthy.

    Raises RuntimeError if the port is taken or the server does not come up (its log is in `log_file`).
    """
    missing = [name for name in ("moto", "hypercorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(
            f"the embedded emulator needs {' and '.join(missing)}, from the `local` extra: "
            "pip install 'trailwarden[local]' (or use another endpoint: --endpoint-url URL)"
        )
    if not port_free(host, port):
        raise RuntimeError(f"{host}:{port} is already in use")
    if log_file is None:
        log_file = pid_file.with_suffix(".log") if pid_file else state_dir() / f"emulator-{port}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    with open(log_file, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 (argv built here: this interpreter and the emulator module)
            [sys.executable, "-m", _MODULE, "--host", host, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the command that started it; Ctrl-C there does not reach it
            cwd=log_file.parent,
            env=env,
        )
    handle = Emulator(process.pid, host, port, pid_file, log_file)
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(json.dumps({"pid": process.pid, "host": host, "port": port}) + "\n")
    deadline = time.monotonic() + timeout
    while not handle.healthy():
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(RuntimeError):
                handle.stop(timeout=2.0)
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise RuntimeError(f"emulator on {host}:{port} did not become healthy; log {log_file}:\n{tail}")
        time.sleep(0.05)
    log.info("emulator pid %d healthy at %s", process.pid, handle.endpoint)
    return handle


def _read_pid_file(pid_file: Path) -> int | None:
    try:
        document = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None
    pid = document.get("pid") if isinstance(document, dict) else None
    return pid if isinstance(pid, int) else None


def running(pid_file: Path | None = None) -> Emulator | None:
    """The emulator recorded in `pid_file` if that process is alive and is ours, else None."""
    pid_file = pid_file or default_pid_file()
    try:
        document = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    pid, host, port = document.get("pid"), document.get("host", DEFAULT_HOST), document.get("port", DEFAULT_PORT)
    if not (isinstance(pid, int) and isinstance(host, str) and isinstance(port, int)):
        return None
    if not (alive(pid) and _is_emulator(pid)):
        return None
    return Emulator(pid, host, port, pid_file, pid_file.with_suffix(".log"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
