"""The archive in OCSF: a finding as a Detection Finding (class 2004, category Findings), for Security Lake
and other OCSF readers. `[archive] format = "ocsf"` makes Firehose write these instead of our own schema.

A first alert is activity Create, a digest Update, a resolution Close (status Resolved); `count` carries the
occurrences, `finding_info.attacks` the ATT&CK techniques with their tactics, `unmapped` what OCSF's class
has no attribute for (the caller, source address, user agent, CloudTrail event ids, resolution).
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.attack import tactic, technique_name
from pipeline.config import Config, ConfigError
from pipeline.event import parse_event_time

_TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")
OCSF_VERSION = "1.1.0"
FORMATS = ("trailwarden", "ocsf")
_SEVERITY_ID = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_ACTIVITY = {1: "Create", 2: "Update", 3: "Close"}


def archive_format(config: Config) -> str:
    """`[archive] format`: "trailwarden" (our schema, docs/findings.md) or "ocsf"."""
    section = config.section("archive")
    unknown = sorted(set(section) - {"format"})
    if unknown:
        raise ConfigError(f"{config.where()}: [archive] has unknown key(s) {unknown}; it takes format")
    value = section.get("format", "trailwarden")
    if value not in FORMATS:
        raise ConfigError(f"{config.where()}: [archive] format = {value!r}; use one of {', '.join(FORMATS)}")
    return str(value)


def _ms(value: Any) -> int | None:
    seconds = parse_event_time(value) if isinstance(value, str) else None
    return int(seconds * 1000) if seconds is not None else None


def _attacks(techniques: list[Any]) -> list[dict[str, Any]]:
    out = []
    for technique in techniques:
        technique = str(technique)
        if not _TECHNIQUE.fullmatch(technique):
            continue
        entry: dict[str, Any] = {
            "version": "v15",
            "technique": {"uid": technique.split(".")[0], "name": technique_name(technique)},
        }
        if "." in technique:
            entry["sub_technique"] = {"uid": technique}
        found = tactic(technique)
        if found:
            entry["tactic"] = {"uid": found[0], "name": found[1]}
        out.append(entry)
    return out


def detection_finding(finding: dict[str, Any], product_version: str = "0.1.0") -> dict[str, Any]:
    """The OCSF Detection Finding of a finding dict (`Finding.to_dict()`, lifecycle keys read with defaults)."""
    resolved = finding.get("status") == "resolved"
    occurrences = finding.get("occurrences", 1) if isinstance(finding.get("occurrences"), int) else 1
    activity = 3 if resolved else 2 if occurrences > 1 else 1
    severity = str(finding.get("severity", ""))
    detected = _ms(finding.get("detected_at")) or 0
    updated = _ms(finding.get("updated_at")) or detected
    region = str(finding.get("region", ""))
    unmapped = {
        k: finding[k]
        for k in ("principal", "source_ip", "user_agent", "event_ids", "dedup_key", "replayed", "resolution", "context")
        if finding.get(k) not in (None, "")
    }
    return {
        "activity_id": activity,
        "activity_name": _ACTIVITY[activity],
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200400 + activity,
        "type_name": f"Detection Finding: {_ACTIVITY[activity]}",
        "severity_id": _SEVERITY_ID.get(severity, 0),
        "severity": severity.capitalize() or "Unknown",
        "status_id": 4 if resolved else 1,
        "status": "Resolved" if resolved else "New",
        "time": updated,
        "message": str(finding.get("summary") or finding.get("title") or ""),
        "count": occurrences,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": str(finding.get("id", "")),
            "event_code": str(finding.get("rule_id", "")),
            "product": {"name": "trailwarden", "vendor_name": "trailwarden", "version": product_version},
        },
        "finding_info": {
            "uid": str(finding.get("id", "")),
            "title": str(finding.get("title", "")),
            "desc": str(finding.get("summary", "")),
            "types": [str(finding.get("rule_id", ""))],
            "created_time": detected,
            "first_seen_time": _ms(finding.get("event_time")),
            "modified_time": updated,
            "attacks": _attacks(list(finding.get("attack") or [])),
            "analytic": {
                "uid": str(finding.get("rule_id", "")),
                "name": str(finding.get("rule_id", "")),
                "type_id": 1,
                "type": "Rule",
            },
            "data_sources": ["AWS CloudTrail"],
        },
        "cloud": {
            "provider": "AWS",
            "region": region or None,
            "account": {
                "uid": str(finding.get("account", "")),
                "name": str(finding.get("account", "")),
                "type": "AWS Account",
                "type_id": 10,
            },
        },
        "resources": [
            {"uid": str(r), "region": region or None, "cloud_partition": "aws"}
            for r in (finding.get("resources") or [])
        ],
        "unmapped": unmapped,
    }
