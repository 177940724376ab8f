"""The destinations of a configuration, built at start-up: secrets read, URLs checked, clients made.
Any problem is a ConfigError naming the key, raised before a single finding is consumed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consumers.destinations.base import Destination
from consumers.destinations.eventbridge import EventBridgeDestination
from consumers.destinations.pagerduty import PagerDutyDestination
from consumers.destinations.secrets import Secrets
from consumers.destinations.securityhub import SecurityHubDestination
from consumers.destinations.slack import SlackDestination
from consumers.destinations.webhook import WebhookDestination
from infra import aws
from pipeline.routing import DestinationSpec, Routing, check_url, is_secret_ref


def build(
    spec: DestinationSpec, secrets: Secrets, target: aws.Target, runbooks: Mapping[str, str] | None = None
) -> Destination:
    opts = dict(spec.options)
    link = str(opts.get("link", ""))

    def secret(key: str) -> str:
        value = str(opts[key])
        return secrets.value(value, spec.where(key)) if is_secret_ref(value) else value

    def url(key: str) -> str:
        value = secret(key)
        check_url(value, spec.where(key))
        return value

    if spec.type == "slack":
        return SlackDestination(spec.name, url("url"), link=link, runbooks=dict(runbooks or {}))
    if spec.type == "pagerduty":
        endpoint = url("url") if "url" in opts else ""
        return PagerDutyDestination(spec.name, secret("routing_key"), url=endpoint, link=link)
    if spec.type == "webhook":
        return WebhookDestination(spec.name, url("url"), secret("secret"))
    region = str(opts.get("region") or target.region or "") or None
    if spec.type == "securityhub":
        hub = SecurityHubDestination(
            spec.name,
            client=target.client("securityhub", region_name=region),
            account=str(opts.get("account", "")),
            region=region or "",
            account_of=lambda: target.client("sts").get_caller_identity()["Account"],
        )
        hub.region = hub.region or hub.client.meta.region_name
        return hub
    if spec.type == "eventbridge":
        return EventBridgeDestination(
            spec.name, client=target.client("events", region_name=region), bus=str(opts.get("bus", "default"))
        )
    raise AssertionError(f"unchecked destination type {spec.type}")  # Routing.from_config refuses other types


def build_all(
    routing: Routing,
    target: aws.Target,
    runbooks: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, Destination], Secrets]:
    """Every configured destination, and the secrets read for them (to scrub from what is printed)."""
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = target.client(service)
        return clients[service]

    secrets = Secrets(client, env)
    built = {name: build(spec, secrets, target, runbooks) for name, spec in routing.destinations.items()}
    return built, secrets
