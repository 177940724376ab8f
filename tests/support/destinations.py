"""Findings for the destination tests: an ordinary one, and one whose every text is hostile CloudTrail."""

from __future__ import annotations

from typing import Any

from pipeline.finding import Finding, finding_id

HOSTILE = (
    '"quoted" `back`ticks` <!channel> <@U123> <https://evil.example|click> & &amp; *bold* _it_ ~s~ > quote\n'
    "line\r\nbreak \u202egnp.exe \u200b zero-width \x00 nul \U0001f600 emoji ünïcödé "
) + "A" * 100_000


def finding_dict(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A finding as every sink writes it (`Finding.to_dict()`), with lifecycle keys set from `overrides`."""
    finding = Finding(
        id=finding_id("iam-user-created", f"key-{n}", 0, "123456789012"),
        rule_id="iam-user-created",
        title="IAM user created",
        severity="high",
        attack=("T1136", "T1098.003"),
        account="123456789012",
        region="eu-west-1",
        principal="arn:aws:iam::123456789012:user/alice",
        source_ip="198.51.100.7",
        user_agent="aws-cli/2",
        resources=(f"arn:aws:iam::123456789012:user/new-{n}",),
        event_ids=(f"ev-{n}",),
        event_time=1_700_000_000.0 + n,
        dedup_key=f"key-{n}",
        window=0,
        summary=f"alice created user new-{n}",
        detected_at=1_700_000_005.0 + n,
    )
    doc = finding.to_dict()
    doc.update({"status": "open", "occurrences": 1, "updated_at": doc["detected_at"]})
    doc.update(overrides)
    return doc


def hostile_dict() -> dict[str, Any]:
    doc = finding_dict(7)
    for key in ("title", "summary", "principal", "source_ip", "user_agent", "account", "region", "resolution"):
        doc[key] = HOSTILE
    doc["resources"] = [HOSTILE] * 200
    doc["attack"] = [HOSTILE, "T1078"]
    doc["event_ids"] = [HOSTILE] * 50
    return doc
