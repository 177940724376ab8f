"""A fault-injecting proxy in front of the emulator, for the sink-outage row.

A WSGI application served by hypercorn on 127.0.0.1 (HTTP/1.1 and HTTP/2 cleartext on one port, like the
emulator) that forwards every request to the emulator, unless a fault is on for the request's operation;
then it answers as the service does when throttling or failing:

- "throttle": HTTP 400 with the service's error shape (ThrottlingException / ProvisionedThroughputExceeded-
  Exception in JSON for DynamoDB, Kinesis and Firehose; `Throttling` in the query protocol's XML for SNS);
- "5xx": HTTP 500 or 503 (InternalFailure / ServiceUnavailable), alternately;
- "entries": HTTP 200 with every entry of the batch refused (Kinesis FailedRecordCount, Firehose
  FailedPutCount, SNS PublishBatch Failed[]), nothing written; other operations get "throttle".

Only the record processors' boto3 clients are pointed at it (TRAILWARDEN_TARGET in their environment); the
KCL's own calls keep going to the emulator.

    with FaultProxy(upstream) as proxy:        # proxy.endpoint: http://127.0.0.1:<port>
        proxy.fail(("sns", "firehose"), "throttle")
        ...
        proxy.recover()
        proxy.faults                           # Counter of (service, operation, mode) answered with a fault
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from infra.emulator import free_port, port_free

SERVICES = ("sns", "firehose", "dynamodb", "kinesis")
HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "host",
    "content-length",
}
# Which operations count as the sinks' traffic (everything else passes even during an outage).
SINK_OPERATIONS = {
    "sns": {"Publish", "PublishBatch"},
    "firehose": {"PutRecordBatch", "PutRecord"},
    "dynamodb": {"BatchGetItem", "PutItem", "GetItem", "UpdateItem"},
    "kinesis": {"PutRecords", "PutRecord"},
}
JSON_TYPES = {
    "dynamodb": "application/x-amz-json-1.0",
    "kinesis": "application/x-amz-json-1.1",
    "firehose": "application/x-amz-json-1.1",
}
THROTTLE_CODES = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "kinesis": "ProvisionedThroughputExceededException",
    "firehose": "ServiceUnavailableException",
}


def classify(environ: dict[str, Any], body: bytes) -> tuple[str, str]:
    """(service, operation) of a request: JSON protocols by X-Amz-Target, SNS by its Action parameter."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, operation = target.partition(".")
        service = {"DynamoDB_20120810": "dynamodb", "Kinesis_20131202": "kinesis", "Firehose_20150804": "firehose"}.get(
            prefix, prefix.lower()
        )
        return service, operation
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    service = scope[3] if len(scope) > 3 else ""
    if service == "sns":
        params = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
        params |= urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        return "sns", (params.get("Action") or [""])[0]
    return service, environ.get("REQUEST_METHOD", "")


class FaultProxy:
    def __init__(self, upstream: str, port: int | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.failing: dict[str, str] = {}  # service -> mode
        self.faults: Counter[tuple[str, str, str]] = Counter()
        self.forwarded: Counter[tuple[str, str]] = Counter()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._n = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    # --- control ------------------------------------------------------------------------------

    def fail(self, services: Iterable[str], mode: str) -> None:
        assert mode in ("throttle", "5xx", "entries"), mode
        with self._lock:
            self.failing = {s: mode for s in services}

    def recover(self) -> None:
        with self._lock:
            self.failing = {}

    # --- the WSGI application -----------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        service, operation = classify(environ, body)
        with self._lock:
            mode = self.failing.get(service) if operation in SINK_OPERATIONS.get(service, ()) else None
            if mode:
                self._n += 1
                self.faults[(service, operation, mode)] += 1
            else:
                self.forwarded[(service, operation)] += 1
            n = self._n
        if mode:
            status, headers, payload = self._fault(service, operation, mode, body, n)
        else:
            status, headers, payload = self._forward(environ, body)
        start_response(status, headers)
        return [payload]

    def _fault(self, service: str, operation: str, mode: str, body: bytes, n: int) -> tuple[str, list, bytes]:
        request_id = str(uuid.uuid4())
        if mode == "entries" and operation in ("PutRecords", "PutRecordBatch", "PublishBatch"):
            return self._entries_failed(service, operation, body, request_id)
        if mode == "5xx":
            status, code = (
                ("500 Internal Server Error", "InternalFailure")
                if n % 2
                else ("503 Service Unavailable", "ServiceUnavailable")
            )
        else:
            status = "400 Bad Request"
            code = "Throttling" if service == "sns" else THROTTLE_CODES.get(service, "ThrottlingException")
        if service in JSON_TYPES:
            payload = json.dumps({"__type": code, "message": "Rate exceeded (injected)"}).encode()
            return status, [("Content-Type", JSON_TYPES[service]), ("x-amzn-RequestId", request_id)], payload
        xml = (
            f"<ErrorResponse><Error><Type>{'Sender' if status.startswith('4') else 'Receiver'}</Type>"
            f"<Code>{code}</Code><Message>Rate exceeded (injected)</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()

    def _entries_failed(self, service: str, operation: str, body: bytes, request_id: str) -> tuple[str, list, bytes]:
        if service == "sns":
            params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            ids = [
                v[0]
                for k, v in sorted(params.items())
                if k.startswith("PublishBatchRequestEntries.member.") and k.endswith(".Id")
            ]
            failed = "".join(
                f"<member><Id>{i}</Id><Code>InternalError</Code><Message>injected</Message>"
                f"<SenderFault>false</SenderFault></member>"
                for i in ids
            )
            xml = (
                f'<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult>'
                f"<Successful/><Failed>{failed}</Failed></PublishBatchResult><ResponseMetadata><RequestId>"
                f"{request_id}</RequestId></ResponseMetadata></PublishBatchResponse>"
            )
            return "200 OK", [("Content-Type", "text/xml")], xml.encode()
        request = json.loads(body or b"{}")
        entries = request.get("Records") or []
        if service == "kinesis":
            doc: dict[str, Any] = {
                "FailedRecordCount": len(entries),
                "Records": [
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "injected"} for _ in entries
                ],
            }
        else:
            doc = {
                "FailedPutCount": len(entries),
                "Encrypted": False,
                "RequestResponses": [
                    {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "injected"} for _ in entries
                ],
            }
        return (
            "200 OK",
            [("Content-Type", JSON_TYPES[service]), ("x-amzn-RequestId", request_id)],
            json.dumps(doc).encode(),
        )

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=70)
            self._local.conn = conn
        return conn

    def _forward(self, environ: dict[str, Any], body: bytes) -> tuple[str, list, bytes]:
        path = urllib.parse.quote(environ.get("PATH_INFO", "/"), safe="/%:@!$&'()*+,;=-._~")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers = {k: v for k, v in headers.items() if k.lower() not in HOP}
        headers["Host"] = environ.get("HTTP_HOST", f"127.0.0.1:{self.port}")
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):  # a kept-alive connection the emulator closed: reconnect once
            conn = self._connection()
            try:
                conn.request(environ.get("REQUEST_METHOD", "GET"), path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP]
        out.append(("Content-Length", str(len(payload or b""))))
        return f"{response.status} {response.reason}", out, payload or b""

    # --- serving ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, name="faultproxy", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._ready.is_set() or port_free("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("fault proxy did not start")
            time.sleep(0.05)
        return self

    def _serve(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        config.errorlog = None
        config.keep_alive_timeout = 75
        config.wsgi_max_body_size = 64 * 1024 * 1024

        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="faultproxy"))
            self._stop = asyncio.Event()
            self._ready.set()
            await serve(self, config, shutdown_trigger=self._stop.wait, mode="wsgi")  # type: ignore[arg-type]

        asyncio.run(run())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
