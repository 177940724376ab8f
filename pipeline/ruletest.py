"""Runs every rule's own test cases (`trailwarden rules test`).

A case's events are partial CloudTrail records; `complete_record` fills in the fields every real
record carries, so a case states only what matters to its rule. Each case runs through a fresh
`Detector` holding that one rule, with the case's parameter overrides, exactly as `scan` runs the pack.
The count compared with `case.expect` is the number of distinct finding ids: what the pipeline alerts
on after deduplication.

Every case that expects findings runs again in each of its other forms (`FORMS`): the same calls made
by the same identity in the console, and through a CloudFormation stack. Who acted is `userIdentity`,
so the rule must find the same there; a case declares a form it cannot have in `Case.no_form`.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.cases import ACCOUNT, BASE_TIME, in_console, via_service
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import RESOLVED, Finding, iso_time
from pipeline.pack import bind_pack
from pipeline.rule import Case, Params, Rule
from pipeline.rules.attack_common import by_aws_service, service_linked_role

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
    """The rule's configured parameters, allowlist, severity and dedup period, checked: the types against
    the defaults and the values by the rule's own `validate` (both in `Config.params`). Raises ConfigError."""
    params = config.params(rule, overrides)
    config.allowlist(rule)
    config.configured(rule)
    return params


def run_case(rule: Rule, case: Case) -> CaseResult:
    """Run one case through a Detector holding only `rule`; rule errors and bad events fail the case."""
    return _run(rule, case, case.name, case.events)


def _run(rule: Rule, case: Case, name: str, partials: Iterable[dict[str, Any]]) -> CaseResult:
    result = CaseResult(rule.id, name, case.expect, 0)
    try:
        config = Config.from_dict()
        validate_params(rule, config, dict(case.params))
        detector = Detector(bind_pack(config, [rule.id], rules=[rule], overrides={rule.id: dict(case.params)}))
        findings: list[Finding] = []
        for index, partial in enumerate(partials):
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
    resolved = len({f.id for f in mine if f.status == RESOLVED})
    if case.resolved is not None and resolved != case.resolved:
        result.error = f"expected {case.resolved} resolved, got {resolved}"
    if detector.stats.rule_errors:
        result.error = "; ".join(detector.stats.last_errors) or "the rule raised"
    return result


# --- the other forms of a case ----------------------------------------------------------------------

CONSOLE_FORM = "console"
STACK_FORM = "cloudformation"
FORMS = (CONSOLE_FORM, STACK_FORM)
# The reads CloudFormation makes for a stack: resolving SSM and Secrets Manager dynamic references.
_STACK_READS = frozenset(
    {
        ("ssm.amazonaws.com", "GetParameter"),
        ("ssm.amazonaws.com", "GetParameters"),
        ("secretsmanager.amazonaws.com", "GetSecretValue"),
    }
)


def _persons_call(record: dict[str, Any]) -> Event | None:
    """The event when a person (or their code) made the call, directly or through a service acting for
    them (`invokedBy`): an API call, not a sign-in or a service event, by no service principal or
    service-linked role."""
    event = Event.from_record(record)
    if isinstance(event, str) or event.event_type != "AwsApiCall":
        return None
    if by_aws_service(event) or service_linked_role(event):
        return None
    return event


def _own(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity making the call itself (no service in between)."""
    return {k: v for k, v in identity.items() if k != "invokedBy"}


def console_form(partial: dict[str, Any], index: int = 0, case: str = "") -> dict[str, Any] | None:
    """The same call by the same identity in the console: "AWS Internal" as source address and user
    agent, `sessionCredentialFromConsole`. None when the call has no console form: a sign-in (the
    console's own record) or a call AWS made itself."""
    event = _persons_call(complete_record(partial, index, case))
    if event is None:
        return None
    return {**partial, "userIdentity": _own(event.identity), **in_console()}


def cloudformation_form(partial: dict[str, Any], index: int = 0, case: str = "") -> dict[str, Any] | None:
    """The same call made by CloudFormation for a stack of the same identity (`invokedBy`, the service
    as source address and user agent). None where CloudFormation would not make it: sign-ins, calls AWS
    made itself, and reads other than resolving SSM and Secrets Manager references."""
    record = complete_record(partial, index, case)
    event = _persons_call(record)
    if event is None or (record.get("readOnly") is True and (event.source, event.name) not in _STACK_READS):
        return None
    made = {k: v for k, v in partial.items() if k != "sessionCredentialFromConsole"}
    return {**made, **via_service("cloudformation", _own(event.identity))}


_MAKE_FORM = {CONSOLE_FORM: console_form, STACK_FORM: cloudformation_form}


def run_form(rule: Rule, case: Case, form: str) -> CaseResult | None:
    """The case in `form`, expecting the case's own findings; None when the case has no such form
    (declared in `no_form`, or, for CloudFormation, no call of the case is one a stack makes). A case
    with no console form that does not say why fails."""
    if form in case.no_form:
        return None
    name = f"{case.name} [{form} form]"
    partials, changed = [], 0
    for index, partial in enumerate(case.events):
        other = _MAKE_FORM[form](partial, index, case.name)
        changed += other is not None
        partials.append(partial if other is None else other)
    if not changed:
        if form == STACK_FORM:
            return None
        result = CaseResult(rule.id, name, case.expect, 0)
        result.error = f'no call of this case has a {form} form; say why in the case\'s no_form={{"{form}": "..."}}'
        return result
    return _run(rule, case, name, partials)


def run_events(
    rule: Rule,
    partials: Iterable[dict[str, Any]],
    params: dict[str, Any] | None = None,
    config: Config | None = None,
    case: str = "adhoc",
) -> list[Finding]:
    """Findings of `rule` over partial records (completed as in cases): for targeted tests.
    Unlike `run_case`, errors propagate and every finding is returned, duplicates included."""
    detector = Detector(bind_pack(config, [rule.id], rules=[rule], overrides={rule.id: dict(params or {})}))
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


def run_rules(rules: Iterable[Rule], forms: Iterable[str] = FORMS) -> Report:
    """Every case of every rule, each case that expects findings in its other `forms` too, plus the
    meta-check."""
    forms = tuple(forms)
    report = Report()
    for rule in rules:
        report.problems.extend(meta_problems(rule))
        for case in rule.cases:
            report.results.append(run_case(rule, case))
            if case.expect <= 0:
                continue
            for form in forms:
                result = run_form(rule, case, form)
                if result is not None:
                    report.results.append(result)
    return report
