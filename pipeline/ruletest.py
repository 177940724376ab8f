"""Runs every rule's own test cases (`trailwarden rules test`).

A case's events are partial CloudTrail records; `complete_record` fills in the fields every real
record carries, so a case states only what matters to its rule. Each case runs through a fresh
`Detector` holding that one rule, with the case's parameter overrides, exactly as `scan` runs the pack.
The count compared with `case.expect` is the number of distinct finding ids: what the pipeline alerts
on after deduplication.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.cases import ACCOUNT, BASE_TIME
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import Finding, iso_time
from pipeline.pack import bind_pack
from pipeline.rule import Case, Params, Rule

STEP_SECONDS = 10
REGION = "us-east-1"
SOURCE_IP = "198.51.100.7"
USER_AGENT = "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/unknown"
CONSOLE_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_ID_NAMESPACE = uuid.UUID("5d2c9b1e-2f4b-4c57-9a51-7b0c3f1e6a10")
_READ_PREFIXES = ("Get", "List", "Describe", "Head", "Lookup", "BatchGet", "Search", "Select")


def default_identity(user: str = "alice", account: str = ACCOUNT) -> dict[str, Any]:
    """The userIdentity of an IAM user calling with an access key."""
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEUSERID1234",
        "arn": f"arn:aws:iam::{account}:user/{user}",
        "accountId": account,
        "accessKeyId": "AKIAEXAMPLEKEYID1234",
        "userName": user,
    }


def _uuid(case: str, index: int, kind: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}\x1f{case}\x1f{index}"))


def complete_record(partial: dict[str, Any], index: int = 0, case: str = "") -> dict[str, Any]:
    """A full CloudTrail record from a partial one: fields the partial record sets are kept as given
    (no deep merge, so a given userIdentity is used whole); absent fields get realistic defaults.
    Ids derive from `case` and `index`, so the same case always yields the same record."""
    record = copy.deepcopy(partial)
    name = record.get("eventName")
    source = record.get("eventSource")
    console = name == "ConsoleLogin" or source == "signin.amazonaws.com"
    defaults: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": default_identity(),
        "eventTime": iso_time(BASE_TIME + STEP_SECONDS * index),
        "awsRegion": REGION,
        "sourceIPAddress": SOURCE_IP,
        "userAgent": CONSOLE_AGENT if console else USER_AGENT,
        "requestParameters": None,
        "responseElements": None,
        "requestID": _uuid(case, index, "request"),
        "eventID": _uuid(case, index, "event"),
        "readOnly": isinstance(name, str) and name.startswith(_READ_PREFIXES),
        "eventType": "AwsConsoleSignIn" if console else "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    for key, value in defaults.items():
        record.setdefault(key, value)
    if not console and "tlsDetails" not in record and isinstance(source, str):
        record["tlsDetails"] = {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{REGION}.amazonaws.com",
        }
    return record


@dataclass
class CaseResult:
    rule_id: str
    case: str
    expected: int
    got: int
    error: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.error and self.got == self.expected


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.problems


def validate_params(rule: Rule, config: Config, overrides: dict[str, Any] | None = None) -> Params:
    """The rule's configured parameters and allowlist, checked: the types against the defaults and
    the values by the rule's own `validate` (both in `Config.params`). Raises ConfigError."""
    params = config.params(rule, overrides)
    config.allowlist(rule)
    return params


def run_case(rule: Rule, case: Case) -> CaseResult:
    """Run one case through a Detector holding only `rule`; rule errors and bad events fail the case."""
    result = CaseResult(rule.id, case.name, case.expect, 0)
    try:
        config = Config.from_dict()
        validate_params(rule, config, dict(case.params))
        detector = Detector(bind_pack(config, rules=[rule], overrides={rule.id: dict(case.params)}))
        findings: list[Finding] = []
        for index, partial in enumerate(case.events):
            event = Event.from_record(complete_record(partial, index, case.name), f"case {case.name}")
            if isinstance(event, str):
                result.error = f"event {index} is not a usable CloudTrail record: {event}"
                return result
            findings.extend(detector.process(event))
        findings.extend(detector.finish())
    except Exception as exc:  # a broken case or rule is a failure to report, not a crash of the runner
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    mine = [f for f in findings if f.rule_id == rule.id]
    result.findings = mine
    result.got = len({f.id for f in mine})
    if detector.stats.rule_errors:
        result.error = "; ".join(detector.stats.last_errors) or "the rule raised"
    return result


def run_events(rule: Rule, partials: Iterable[dict[str, Any]], params: dict[str, Any] | None = None,
               config: Config | None = None, case: str = "adhoc") -> list[Finding]:
    """Findings of `rule` over partial records (completed as in cases): for targeted tests.
    Unlike `run_case`, errors propagate and every finding is returned, duplicates included."""
    detector = Detector(bind_pack(config, rules=[rule], overrides={rule.id: dict(params or {})}))
    findings: list[Finding] = []
    for index, partial in enumerate(partials):
        event = Event.from_record(complete_record(partial, index, case), case)
        if isinstance(event, str):
            raise ValueError(f"event {index}: {event}")
        findings.extend(detector.process(event))
    findings.extend(detector.finish())
    if detector.stats.rule_errors:
        raise RuntimeError("; ".join(detector.stats.last_errors))
    return [f for f in findings if f.rule_id == rule.id]


def meta_problems(rule: Rule) -> list[str]:
    """Every rule needs a case that raises a finding and one that raises none."""
    problems = []
    if not any(c.expect > 0 for c in rule.cases):
        problems.append(f"{rule.id}: no case expects a finding")
    if not any(c.expect == 0 for c in rule.cases):
        problems.append(f"{rule.id}: no case expects no finding")
    names = [c.name for c in rule.cases]
    if len(set(names)) != len(names):
        problems.append(f"{rule.id}: case names are not unique")
    return problems


def run_rules(rules: Iterable[Rule]) -> Report:
    """Every case of every rule, plus the meta-check."""
    report = Report()
    for rule in rules:
        report.problems.extend(meta_problems(rule))
        report.results.extend(run_case(rule, case) for case in rule.cases)
    return report
