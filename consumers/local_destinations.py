"""What `trailwarden run` shows without any account: local receivers on 127.0.0.1 standing in for Slack,
PagerDuty and a signed webhook, configured as destinations (Slack and the webhook get every alert, PagerDuty
the high and critical ones), their deliverers in threads, and a line per message each receiver got."""

from __future__ import annotations

import secrets as random_secrets
import threading
from collections.abc import Callable
from typing import Any

from consumers.deliverer import DeliveryThreads, build_deliverers
from consumers.destinations.webhook import verify
from consumers.sinks.dedupe import MemoryDedupe
from infra.receivers import Received, Receiver, slack_lines
from pipeline.config import Config
from pipeline.routing import Routing


class LocalDestinations:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._hmac = random_secrets.token_hex(16)
        self.receivers = {
            "slack": Receiver("slack", on_request=self._slack),
            "pagerduty": Receiver("pagerduty", reply=b'{"status":"success"}', on_request=self._pagerduty),
            "webhook": Receiver("webhook", on_request=self._webhook),
        }
        self.bad_signatures = 0
        self.threads: DeliveryThreads | None = None

    def routing(self) -> Routing:
        r = self.receivers
        return Routing.from_config(
            Config.from_dict(
                {
                    "destinations": {
                        "local-slack": {"type": "slack", "url": r["slack"].url},
                        "local-pagerduty": {
                            "type": "pagerduty",
                            "routing_key": "local-routing-key",
                            "url": r["pagerduty"].url,
                        },
                        "local-webhook": {"type": "webhook", "url": r["webhook"].url, "secret": self._hmac},
                    },
                    "routes": [
                        {"destinations": ["local-pagerduty"], "min_severity": "high"},
                        {"destinations": ["local-slack", "local-webhook"], "min_severity": "info"},
                    ],
                }
            )
        )

    def start(self, target: Any, outputs: dict[str, str], runbooks: dict[str, str]) -> None:
        for receiver in self.receivers.values():
            receiver.start()
        deliverers, _ = build_deliverers(target, outputs, self.routing(), runbooks, env={}, dedupe=MemoryDedupe())
        sqs = target.client("sqs")
        for d in deliverers:  # left over from an earlier run on the same emulator: not this run's findings
            sqs.purge_queue(QueueUrl=d.queue.url)
        self.threads = DeliveryThreads(deliverers).start()

    def stop(self) -> None:
        if self.threads is not None:
            self.threads.stop()
        for receiver in self.receivers.values():
            receiver.stop()

    def counts(self) -> str:
        got = {name: len(r.requests) for name, r in self.receivers.items()}
        text = ", ".join(f"{name} {n}" for name, n in got.items())
        return text + (
            f" ({self.bad_signatures} webhook signature(s) did NOT verify)"
            if self.bad_signatures
            else " (every webhook signature verified)"
            if got["webhook"]
            else ""
        )

    def _print(self, lines: list[str]) -> None:
        with self._lock:
            for line in lines:
                self.out(line)

    def _slack(self, got: Received) -> None:
        lines = slack_lines(got.json())
        self._print([f"  slack     ┃ {lines[0]}", *(f"            ┃ {line}" for line in lines[1:])])

    def _pagerduty(self, got: Received) -> None:
        body = got.json()
        summary = body.get("payload", {}).get("summary", "")
        self._print(
            [
                f"  pagerduty ┃ {body.get('event_action')} dedup_key={body.get('dedup_key')} "
                f"{body.get('payload', {}).get('severity', '')} {summary[:80]}".rstrip()
            ]
        )

    def _webhook(self, got: Received) -> None:
        headers = {k.title(): v for k, v in got.headers.items()}
        ok = verify(self._hmac.encode(), headers, got.body)
        if not ok:
            self.bad_signatures += 1
        body = got.json()
        verdict = "ok" if ok else "BAD"
        self._print(
            [
                f"  webhook   ┃ {len(got.body)} bytes, signature {verdict}, finding {body.get('id')} "
                f"{body.get('status', 'open')}"
            ]
        )
