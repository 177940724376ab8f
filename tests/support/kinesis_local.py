"""kinesis-local (npm; the Node build of kinesis-mock) as the Kinesis endpoint of a test: it reshards
(SplitShard, MergeShards, UpdateShardCount) and serves enhanced fan-out (RegisterStreamConsumer,
SubscribeToShard), which the embedded emulator does not. Every other service stays on the emulator
(TRAILWARDEN_ENDPOINTS=kinesis=URL, `infra.aws.with_endpoints`).

    with kinesis_local(directory) as url:   # installed into build/kinesis-local (make kinesis-local) if missing
        target = aws.with_endpoints(aws.emulator(emulator_url), {"kinesis": url})

The server binds 127.0.0.1 on a free port (plain HTTP/1.1 and HTTP/2 cleartext) and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.emulator import free_port
from infra.processes import stop_pid

VERSION = "0.6.2"
ROOT = Path(__file__).resolve().parents[2]  # the repository
PREFIX = ROOT / "build" / "kinesis-local"
PACKAGE = PREFIX / "node_modules" / "kinesis-local"
# Operations that take time on AWS take a tenth of a second here (their defaults are half a second and more).
DURATIONS = (
    "CREATE_STREAM_DURATION",
    "DELETE_STREAM_DURATION",
    "SPLIT_SHARD_DURATION",
    "MERGE_SHARDS_DURATION",
    "UPDATE_SHARD_COUNT_DURATION",
    "REGISTER_STREAM_CONSUMER_DURATION",
    "DEREGISTER_STREAM_CONSUMER_DURATION",
    "START_STREAM_ENCRYPTION_DURATION",
)


class Unavailable(RuntimeError):
    pass


def installed() -> bool:
    try:
        return f'"version" : "{VERSION}"' in (PACKAGE / "package.json").read_text() and (PACKAGE / "main.js").exists()
    except OSError:
        return False


def install() -> Path:
    """`npm install --prefix build/kinesis-local kinesis-local@VERSION` (what `make kinesis-local` runs)."""
    if installed():
        return PACKAGE
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        raise Unavailable("kinesis-local needs Node.js 18+ and npm (e.g. apt-get install nodejs npm)")
    PREFIX.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(PREFIX),
            "--no-audit",
            "--no-fund",
            "--save-exact",
            f"kinesis-local@{VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not installed():
        raise Unavailable(f"npm install kinesis-local@{VERSION} failed: {result.stderr.strip()[-800:]}")
    return PACKAGE


def healthy(url: str) -> bool:
    """The server answers a Kinesis call (ListStreams)."""
    client = boto3.client(
        "kinesis",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    try:
        client.list_streams()
    except (BotoCoreError, ClientError):
        return False
    return True


@contextlib.contextmanager
def kinesis_local(directory: Path, timeout: float = 60.0) -> Iterator[str]:
    """A kinesis-local server of its own: its endpoint URL; stopped (by pid) on exit."""
    package = install()
    port, tls_port = free_port(), free_port()
    env = {
        **os.environ,
        "KINESIS_MOCK_PLAIN_PORT": str(port),
        "KINESIS_MOCK_TLS_PORT": str(tls_port),
        "LOG_LEVEL": "WARN",
        "AWS_REGION": "us-east-1",
        **{name: "100ms" for name in DURATIONS},
    }
    log_file = directory / "kinesis-local.log"
    with open(log_file, "ab") as out:
        # it reads server.json (its TLS key pair) from the working directory
        process = subprocess.Popen(
            [shutil.which("node") or "node", "main.js"],
            cwd=package,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"kinesis-local did not start on {url}: {log_file.read_text()[-800:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_pid(process.pid, 10.0, is_alive=lambda: process.poll() is None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


if __name__ == "__main__":  # make kinesis-local
    print(install())
