"""Generated keyed facts for the built-in stateful rules: the input of the stateful tests and bench.

Facts are made directly (no events, no fact extraction), as stage 2 receives them from the keyed stream,
in event-time order, with unique event ids, drawn from one seeded generator.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from pipeline.stateful.facts import Fact
from pipeline.stateful.steps import END, FIRST, SATISFY, START, THEN
from pipeline.tagging.samples import name_of

TAGS = "ec2-instance-missing-required-tags"
RESOURCES = "resource-missing-required-tags"
GOOD_TAGS = {"Owner": "team-a", "CostCenter": "cc-1", "Environment": "prod"}
# The types of resource-missing-required-tags, and how often each is created (most resources are
# volumes, snapshots, security groups, functions, queues and buckets).
RESOURCE_MIX = {
    "ebs-volume": 14,
    "ebs-snapshot": 14,
    "ec2-image": 2,
    "security-group": 8,
    "s3-bucket": 6,
    "rds-instance": 2,
    "rds-cluster": 1,
    "lambda-function": 10,
    "dynamodb-table": 4,
    "sqs-queue": 6,
    "sns-topic": 4,
    "ecs-cluster": 1,
    "eks-cluster": 1,
    "elbv2-load-balancer": 2,
    "autoscaling-group": 2,
    "kms-key": 2,
    "secretsmanager-secret": 3,
}
CREATORS = tuple(
    f"arn:aws:sts::{100000000000 + i * 7919:012d}:assumed-role/terraform-deployer/session-{i}" for i in range(4)
)
# Configuration overrides that let every built-in stateful rule fire within a few hours of facts.
FAST = {
    "first-seen-region": {"warmup": "10m"},
    "first-seen-console-source-ip": {"warmup": "10m"},
    "iam-login-profile-without-mfa": {"window": "30m"},
}
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-3", "sa-east-1")


class _Gen:
    def __init__(self, seed: int, accounts: int = 4) -> None:
        self.rng = random.Random(seed)  # noqa: S311 (a seeded, reproducible population, not a secret)
        self.accounts = [f"{100000000000 + i * 7919:012d}" for i in range(accounts)]
        self.n = 0

    def eid(self) -> str:
        self.n += 1
        return f"{self.rng.getrandbits(64):016x}-{self.n:08d}"

    def fact(
        self,
        rule: str,
        key: str,
        t: float,
        step: str = "",
        value: str = "",
        fields: dict[str, Any] | None = None,
        principal: str = "arn:aws:iam::100000000000:user/alice",
        ip: str = "198.51.100.7",
    ) -> Fact:
        return Fact(
            rule,
            key,
            self.eid(),
            t,
            step,
            value,
            fields,
            key.split(":", 1)[0],
            "us-east-1",
            principal,
            ip,
            "aws-cli/2.17.13",
        )


def instance_facts(
    n: int, seed: int = 1, start: float = 1_720_000_000.0, rate: float = 50.0, tagged: float = 0.5
) -> Iterator[Fact]:
    """Launches of `n` instances (`rate` per second of event time); a share `tagged` get their tags
    20 to 120 seconds later. Facts come out in event-time order (tags within the lateness)."""
    g = _Gen(seed)
    t = start
    late: list[Fact] = []
    for i in range(n):
        t += 1.0 / rate
        key = f"{g.accounts[i % len(g.accounts)]}:us-east-1:i-{i:017x}"
        yield g.fact(TAGS, key, t, START)
        if g.rng.random() < tagged:
            late.append(g.fact(TAGS, key, t + g.rng.uniform(20, 120), "tags", fields={"set": GOOD_TAGS}))
        while late and late[0].time <= t:
            yield late.pop(0)
    yield from late


def resource_facts(
    n: int,
    seed: int = 1,
    start: float = 1_720_000_000.0,
    rate: float = 50.0,
    tagged: float = 0.5,
    instances: float = 0.25,
) -> Iterator[Fact]:
    """Creations of `n` resources of every type of the tag table (`rate` per second of event time): a
    share `instances` are EC2 instances (their own rule), the rest drawn from RESOURCE_MIX, by a few
    creators; a share `tagged` get their tags 20 to 120 seconds later (S3 buckets by replacing the set).
    Facts come out in event-time order (tags within the lateness); nothing is deleted."""
    g = _Gen(seed)
    rng = g.rng
    names, weights = list(RESOURCE_MIX), list(RESOURCE_MIX.values())
    t = start
    late: list[Fact] = []
    for i in range(n):
        t += 1.0 / rate
        acct = g.accounts[i % len(g.accounts)]
        creator = CREATORS[i % len(CREATORS)]
        if rng.random() < instances:
            rule, key = TAGS, f"{acct}:us-east-1:i-{i:017x}"
        else:
            type_name = rng.choices(names, weights)[0]
            region = "" if type_name == "s3-bucket" else "us-east-1"
            rule, key = RESOURCES, f"{acct}:{region}:{type_name}:{name_of(type_name, str(i))}"
        yield g.fact(rule, key, t, START, principal=creator)
        if rng.random() < tagged:
            change = "replace" if ":s3-bucket:" in key else "set"
            late.append(
                g.fact(rule, key, t + rng.uniform(20, 120), "tags", fields={change: GOOD_TAGS}, principal=creator)
            )
        while late and late[0].time <= t:
            yield late.pop(0)
    yield from sorted(late, key=lambda f: f.time)


def mixed_facts(n: int, seed: int = 1, start: float = 1_720_000_000.0, mean_gap: float = 2.0) -> list[Fact]:
    """About `n` facts for every built-in stateful rule, sorted by event time."""
    g = _Gen(seed)
    rng = g.rng
    out: list[Fact] = []
    t = start
    ips = [f"203.0.113.{i}" for i in range(6)]
    users = [f"user{i}" for i in range(8)]
    principals = [f"arn:aws:iam::{g.accounts[0]}:user/{u}" for u in users[:4]]
    instances = 0
    while len(out) < n:
        t += rng.expovariate(1.0 / mean_gap)
        kind = rng.random()
        acct = rng.choice(g.accounts)
        if kind < 0.3:
            instances += 1
            if rng.random() < 0.5:
                rule, key = TAGS, f"{acct}:us-east-1:i-{instances:017x}"
            else:
                type_name = rng.choice(list(RESOURCE_MIX))
                region = "" if type_name == "s3-bucket" else rng.choice(REGIONS[:2])
                rule, key = RESOURCES, f"{acct}:{region}:{type_name}:{name_of(type_name, str(instances))}"
            who = rng.choice(CREATORS)
            out.append(
                g.fact(
                    rule, key, t, START, fields={"tags": {"Owner": "x"}} if rng.random() < 0.3 else None, principal=who
                )
            )
            r = rng.random()
            if r < 0.5:
                change = "replace" if ":s3-bucket:" in key else "set"
                out.append(g.fact(rule, key, t + rng.uniform(10, 1200), "tags", fields={change: GOOD_TAGS}))
                if rng.random() < 0.2:
                    removal = {"all": True} if change == "replace" else {"del": {"Owner": None}}
                    out.append(g.fact(rule, key, t + rng.uniform(1300, 2400), "tags", fields=removal))
            elif r < 0.7:
                out.append(g.fact(rule, key, t + rng.uniform(10, 1800), END))
        elif kind < 0.45:
            out.append(g.fact("console-login-brute-force", rng.choice(ips), t, ip=rng.choice(ips)))
        elif kind < 0.55:
            out.append(g.fact("console-login-password-spraying", rng.choice(ips), t, value=rng.choice(users)))
        elif kind < 0.65:
            out.append(g.fact("access-denied-recon", rng.choice(principals), t, principal=rng.choice(principals)))
        elif kind < 0.75:
            key = f"{acct}:{rng.choice(users)}"
            step = FIRST if rng.random() < 0.5 else THEN
            out.append(
                g.fact(
                    "iam-access-key-then-privilege",
                    key,
                    t,
                    step,
                    principal=rng.choice(principals[:2]),
                    fields={"action": "AttachUserPolicy"} if step == THEN else None,
                )
            )
        elif kind < 0.82:
            key = f"{acct}:{rng.choice(users)}"
            out.append(g.fact("iam-login-profile-without-mfa", key, t, START if rng.random() < 0.6 else SATISFY))
        elif kind < 0.92:
            out.append(g.fact("first-seen-region", acct, t, value=rng.choice(REGIONS[: 2 + int(rng.random() * 4)])))
        else:
            key = f"{acct}:{rng.choice(users)}"
            out.append(g.fact("first-seen-console-source-ip", key, t, value=rng.choice(ips[:3])))
    out.sort(key=lambda f: f.time)
    return out
