"""The stack's outputs: the names and ARNs processes read (streams, topic, delivery stream, table, bucket,
applications). On AWS they are the deployed stack's outputs; locally, the template evaluated for the target's
account and region with the local parameter values (`local_plan`), which `infra.provision` creates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra import aws, cfn

STACK_NAME = "trailwarden"

LOCAL_PARAMETERS: dict[str, str] = {
    # moto gives an ON_DEMAND stream 4 shards; each leased shard costs the KCL a Python child process,
    # and moto's PutRecords slows as a shard fills, so two provisioned shards per stream fit a laptop.
    "StreamMode": "PROVISIONED",
    "TrailShardCount": "2",
    "KeyedShardCount": "2",
}
# What `trailwarden stack up` and `stack status` add: the consumer service as ECS, Application Auto Scaling and
# CloudWatch hold it locally. Nothing runs the image (`trailwarden run` starts the consumers as processes and
# provisions without it, as the end-to-end tests do); the image is a placeholder, and provisioning puts the
# tasks in the emulator's default VPC (infra.provision).
LOCAL_SERVICE: dict[str, str] = {"Image": "trailwarden:local"}


def local_target(target: aws.Target | str | None) -> aws.Target:
    resolved = target if isinstance(target, aws.Target) else aws.resolve(target)
    if not resolved.local:
        raise ValueError("the local stack only; deploy infra/template.yaml with CloudFormation on AWS")
    return resolved


def local_plan(target: aws.Target | str | None = None, parameters: Mapping[str, Any] | None = None) -> cfn.Plan:
    """The template evaluated for the target's account (asked from STS) and region, local parameters applied."""
    resolved = local_target(target)
    account = resolved.client("sts").get_caller_identity()["Account"]
    return cfn.plan(
        {**LOCAL_PARAMETERS, **(parameters or {})},
        account=account,
        region=resolved.region or "us-east-1",
        stack_name=STACK_NAME,
    )


def outputs(target: aws.Target | str | None = None, stack_name: str = STACK_NAME) -> dict[str, str]:
    """The names and ARNs consumers read: from the template locally, from the deployed stack on AWS."""
    resolved = target if isinstance(target, aws.Target) else aws.resolve(target)
    if resolved.local:
        return local_plan(resolved).outputs
    stacks = resolved.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
