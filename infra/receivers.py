"""Local HTTP receivers on 127.0.0.1 standing in for Slack, PagerDuty and a webhook endpoint: each records
what it was sent and can answer with an error (a destination that is down or throttling). `make run` prints
what they got; the tests check the payloads against the services' documented formats."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """One receiver. `status`: what it answers (200 by default; set 503 or 429 to play a failing service);
    `on_request`: called with each request it accepts."""

    name: str
    status: int = 200
    reply: bytes = b"ok"
    on_request: Callable[[Received], None] | None = None
    requests: list[Received] = field(default_factory=list)
    refused: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the receiver first"  # noqa: S101 (a caller bug)
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.name}"

    def start(self, port: int = 0) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver.status
                if status == 200:
                    got = Received(self.path, {k: v for k, v in self.headers.items()}, body)
                    with receiver._lock:
                        receiver.requests.append(got)
                    if receiver.on_request is not None:
                        receiver.on_request(got)
                else:
                    with receiver._lock:
                        receiver.refused += 1
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, format: str, *args: Any) -> None:  # the default writes every request to stderr
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, name=f"receiver-{self.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.json() for r in self.requests]


def slack_lines(payload: dict[str, Any]) -> list[str]:
    """A Slack message as a terminal shows it: the header, then each block's text, then the context."""
    lines: list[str] = []
    for block in payload.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            lines.append(block["text"]["text"])
        elif kind == "section" and "text" in block:
            lines.append("  " + block["text"]["text"])
        elif kind == "section":
            lines.append("  " + " | ".join(f["text"].replace("\n", ": ", 1) for f in block.get("fields", [])))
        elif kind == "context":
            lines.append("  " + " ".join(e.get("text", "") for e in block.get("elements", [])))
    return lines
