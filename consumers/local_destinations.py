"""What `trailwarden run` shows without any account: local receivers on 127.0.0.1 standing in for Slack,
PagerDuty and a signed webhook, configured as destinations (Slack and the webhook get every alert, PagerDuty
the high and critical ones) in a configuration file the run's deliverer process reads (the webhook's secret in
its environment, never in the file), and a line per message each receiver got."""

from __future__ import annotations

import json
import secrets as random_secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumers.destinations.webhook import verify
from infra import aws, destination_queues
from infra.receivers import Received, Receiver, slack_lines
from pipeline.config import Config
from pipeline.routing import Routing

SECRET_VAR = "LOCAL_WEBHOOK_SECRET"  # noqa: S105 (the name of the variable holding the webhook secret)


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

    def settings(self) -> dict[str, Any]:
        """The [destinations] and [[routes]] of the receivers."""
        r = self.receivers
        return {
            "destinations": {
                "local-slack": {"type": "slack", "url": r["slack"].url},
                "local-pagerduty": {
                    "type": "pagerduty",
                    "routing_key": "local-routing-key",
                    "url": r["pagerduty"].url,
                },
                "local-webhook": {"type": "webhook", "url": r["webhook"].url, "secret": f"env:{SECRET_VAR}"},
            },
            "routes": [
                {"destinations": ["local-pagerduty"], "min_severity": "high"},
                {"destinations": ["local-slack", "local-webhook"], "min_severity": "info"},
            ],
        }

    def routing(self) -> Routing:
        return Routing.from_config(Config.from_dict(self.settings()))

    def start(self, target: aws.Target, outputs: dict[str, str], directory: Path) -> tuple[Path, dict[str, str]]:
        """The receivers started, their destinations' queues emptied of an earlier run's findings; returns the
        configuration file for the deliverer and the environment it needs."""
        for receiver in self.receivers.values():
            receiver.start()
        sqs = target.client("sqs")
        for name in self.routing().destinations:
            sqs.purge_queue(QueueUrl=destination_queues.ensure(target, outputs["FindingsTopicArn"], name).url)
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "local-destinations.toml"
        config.write_text(toml(self.settings()))
        return config, {SECRET_VAR: self._hmac}

    def stop(self) -> None:
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


def toml(settings: dict[str, Any]) -> str:
    """[destinations.<name>] tables of strings and [[routes]] of strings and string lists, as TOML (a JSON
    string is a TOML basic string)."""
    lines: list[str] = []
    for name, table in settings["destinations"].items():
        lines.append(f"[destinations.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    for route in settings["routes"]:
        lines.append("[[routes]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in route.items()]
    return "\n".join(lines) + "\n"
