"""Loading Sigma files into trailwarden rules, all or nothing.

Each `.yml`/`.yaml` file under the given paths is read with pySigma, document by document. A rule
becomes a match rule (`detection`), a correlation becomes a stateful rule (`correlation`); a
detection a correlation refers to without `generate: true` only feeds the correlation, as the Sigma
specification says. Every problem of every file is collected (the file, the line, the rule, what is
wrong) and `SigmaLoadError` lists them all: a folder with one bad rule loads nothing, so the pipeline
never starts with part of what it was given.

Rule ids are `sigma-` and the rule's `name`, or else its file name (with `-2`, `-3` for further
documents of the file), in lower case with `-` for `_`: `sigma-aws-cloudtrail-disable-logging`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from pipeline.config import ConfigError
from pipeline.rule import Rule
from pipeline.sigma import lines
from pipeline.sigma.condition import AnyOf, compile_node, index_events
from pipeline.sigma.correlation import correlation_rule
from pipeline.sigma.detection import DEFAULT_LEVEL, SEVERITY, Detection, match_rule, runbook
from pipeline.sigma.translate import Refused, translate

LOGSOURCE = {"product": "aws", "service": "cloudtrail"}
SUFFIXES = (".yml", ".yaml")
_MODIFIER = re.compile(r"[Uu]nknown modifier '([^']+)'")


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.rule}: {self.text}" if self.rule else f"{where}: {self.text}"


class SigmaLoadError(ConfigError):
    """Sigma files that cannot all be loaded; `problems` lists every one."""

    def __init__(self, problems: list[Problem], what: str) -> None:
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{what}: {len(problems)} problem(s); nothing was loaded. Fix or remove these rules:\n{listed}"
        )


@dataclass
class _Doc:
    file: Path
    index: int
    node: yaml.Node | None
    data: dict[str, Any]
    rule: SigmaRule | SigmaCorrelationRule | None = None
    rule_id: str = ""

    @property
    def label(self) -> str:
        title = self.data.get("title")
        return f"rule {title!r}" if isinstance(title, str) else f"document {self.index + 1}"

    def line(self, *path: str) -> int:
        return lines.key_line(self.node, *path) or lines.start(self.node)


@dataclass
class Loaded:
    """The rules loaded, and the compiled detections by every name a correlation may use for them."""

    rules: list[Rule] = field(default_factory=list)
    detections: dict[str, Detection] = field(default_factory=dict)


def files_under(paths: Iterable[str | Path], problems: list[Problem]) -> list[Path]:
    """The Sigma files of `paths` (files, or folders searched recursively), sorted within each folder."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            problems.append(Problem(path, 0, "", "no such file or folder"))
    return out


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _read(file: Path, problems: list[Problem]) -> list[_Doc]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(file, 0, "", f"cannot be read: {exc}"))
        return []
    try:
        nodes = lines.documents(text)
        datas = list(yaml.load_all(text, Loader=lines.SAFE_LOADER))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(file, mark.line + 1 if mark else 1, "", f"not valid YAML: {what}"))
        return []
    docs = []
    for index, (node, data) in enumerate(zip(nodes, datas, strict=True)):
        if data is None:
            continue
        doc = _Doc(file, index, node, data if isinstance(data, dict) else {})
        if not isinstance(data, dict):
            problems.append(Problem(file, lines.start(node), doc.label, "is not a YAML mapping (a Sigma rule is)"))
        elif "action" in data:
            problems.append(
                Problem(
                    file,
                    doc.line("action"),
                    doc.label,
                    "multi-document actions (action: global/reset/repeat) are not supported; write each rule whole",
                )
            )
        else:
            docs.append(doc)
    return docs


def _parse(doc: _Doc, problems: list[Problem]) -> None:
    try:
        collection = SigmaCollection.from_dicts([doc.data], collect_errors=True, resolve_references=False)
    except SigmaError as exc:
        problems.append(Problem(doc.file, _error_line(doc, exc), doc.label, f"not a Sigma rule: {_error_text(exc)}"))
        return
    if len(collection.rules) != 1:
        problems.append(Problem(doc.file, lines.start(doc.node), doc.label, "not a Sigma rule"))
        return
    rule = collection.rules[0]
    for error in rule.errors:
        problems.append(Problem(doc.file, _error_line(doc, error), doc.label, _error_text(error)))
    if not rule.errors:
        doc.rule = rule


def _error_text(error: Exception) -> str:
    text = str(error.args[0]) if error.args else str(error)
    found = _MODIFIER.search(text)
    if found:
        return f"unknown modifier '{found.group(1)}' (see docs/rules.md, \"Sigma rules\", for the modifiers evaluated)"
    return text


def _error_line(doc: _Doc, error: Exception) -> int:
    text = str(error)
    found = _MODIFIER.search(text)
    if found:
        mod = found.group(1)
        line = lines.find_key(lines.child(doc.node, "detection"), lambda k: mod in k.split("|")[1:])
        if line:
            return line
    for section in ("detection", "correlation", "logsource"):
        if section in text.lower():
            return doc.line(section)
    return lines.start(doc.node)


def _ident(doc: _Doc, taken: dict[str, _Doc], problems: list[Problem], multi: bool) -> str:
    name = doc.data.get("name")
    base = (
        name if isinstance(name, str) and name else doc.file.stem + (f"-{doc.index + 1}" if multi and doc.index else "")
    )
    rule_id = "sigma-" + slug(base)
    if rule_id in taken:
        other = taken[rule_id]
        problems.append(
            Problem(
                doc.file,
                lines.start(doc.node),
                doc.label,
                f"its id {rule_id} is already the id of {other.label} in {other.file}; give one of them another `name`",
            )
        )
    taken[rule_id] = doc
    return rule_id


def _upstream(doc: _Doc, rule: SigmaRule | SigmaCorrelationRule) -> dict[str, str]:
    status = getattr(rule, "status", None)
    author = rule.author if isinstance(rule.author, str) else ""
    return {
        "id": str(rule.id) if rule.id else "",
        "file": doc.file.name,
        "status": status.name.lower() if status is not None else "",
        "author": author,
    }


def _compile_detection(doc: _Doc, rule: SigmaRule, problems: list[Problem]) -> Detection | None:
    logsource = {k: getattr(rule.logsource, k) for k in ("product", "service", "category")}
    if (
        logsource["product"] != LOGSOURCE["product"]
        or logsource["service"] != LOGSOURCE["service"]
        or logsource["category"] is not None
    ):
        shown = ", ".join(f"{k}: {v}" for k, v in logsource.items() if v) or "none"
        problems.append(
            Problem(
                doc.file,
                doc.line("logsource"),
                doc.label,
                f"logsource is {shown}; trailwarden evaluates rules of product: aws, service: cloudtrail",
            )
        )
        return None
    try:
        nodes = [translate(condition.parsed) for condition in rule.detection.parsed_condition]
    except Refused as exc:
        key, line = exc.key, None
        if key:
            line = lines.find_key(lines.child(doc.node, "detection"), lambda k: k == key)
        problems.append(
            Problem(
                doc.file,
                line or doc.line("detection", "condition"),
                doc.label,
                f"{exc.construct} is not supported: {exc.reason}",
            )
        )
        return None
    except SigmaError as exc:
        problems.append(
            Problem(doc.file, doc.line("detection", "condition"), doc.label, f"condition: {_error_text(exc)}")
        )
        return None
    node = nodes[0] if len(nodes) == 1 else AnyOf(tuple(nodes))
    events = index_events(node)
    if events is None:
        problems.append(
            Problem(
                doc.file,
                doc.line("detection", "condition"),
                doc.label,
                "the condition can never hold: it requires two different eventSource (or eventName) "
                "values in one event",
            )
        )
        return None
    level = rule.level.name.lower() if rule.level is not None else DEFAULT_LEVEL
    refs = tuple(r for r in (rule.name, str(rule.id) if rule.id else None) if r)
    return Detection(
        doc.rule_id,
        rule.title,
        level,
        tuple(str(t) for t in rule.tags),
        rule.description or "",
        tuple(str(f) for f in rule.falsepositives or ()),
        node,
        compile_node(node),
        events,
        _upstream(doc, rule),
        refs,
    )


def _compile_correlation(
    doc: _Doc, rule: SigmaCorrelationRule, known: Mapping[str, Detection], problems: list[Problem], examples: bool
) -> Rule | None:
    refs = []
    for ref in rule.rules or []:
        found = known.get(ref.reference)
        if found is None:
            problems.append(
                Problem(
                    doc.file,
                    doc.line("correlation", "rules"),
                    doc.label,
                    f"refers to rule {ref.reference!r}, which is not among the rules loaded (by its "
                    "`name` or `id`); correlations of correlations are not supported",
                )
            )
            return None
        refs.append((ref.reference, found))
    if not refs:
        problems.append(Problem(doc.file, doc.line("correlation"), doc.label, "refers to no rules"))
        return None
    level = rule.level.name.lower() if rule.level is not None else DEFAULT_LEVEL
    attack = tuple(dict.fromkeys(t for _, d in refs for t in d.attack))
    description = " ".join((rule.description or "").split()) or rule.title
    upstream = _upstream(doc, rule)
    try:
        return correlation_rule(
            rule,
            doc.rule_id,
            rule.title,
            SEVERITY.get(level, "medium"),
            attack,
            f"{description}\n\nSigma correlation: " + ", ".join(f"{k} {v}" for k, v in upstream.items() if v) + ".",
            runbook(tuple(str(f) for f in rule.falsepositives or ())),
            refs,
            "condition" in (doc.data.get("correlation") or {}),
            upstream,
            examples,
        )
    except Refused as exc:
        problems.append(
            Problem(
                doc.file,
                doc.line("correlation", exc.key or "type"),
                doc.label,
                f"{exc.construct} is not supported: {exc.reason}",
            )
        )
        return None


def load(
    paths: Iterable[str | Path], what: str, known: Mapping[str, Detection] | None = None, examples: bool = True
) -> Loaded:
    """The rules of the Sigma files under `paths`; raises SigmaLoadError listing every problem. Correlations
    may refer to the detections of these files and to those of `known` (e.g. the bundled rules).
    `examples` attaches each detection's generated test cases (`trailwarden rules test`)."""
    from pipeline.sigma.examples import cases_for  # cycle: examples -> ruletest -> pack -> rules -> sigma

    problems: list[Problem] = []
    docs: list[_Doc] = []
    for file in files_under(paths, problems):
        found = _read(file, problems)
        for doc in found:
            _parse(doc, problems)
        docs += [(doc) for doc in found]
    taken: dict[str, _Doc] = {}
    per_file: dict[Path, int] = {}
    for doc in docs:
        per_file[doc.file] = per_file.get(doc.file, 0) + 1
    for doc in docs:
        doc.rule_id = _ident(doc, taken, problems, per_file[doc.file] > 1)

    loaded = Loaded()
    names: dict[str, Detection] = dict(known or {})
    detections: list[Detection] = []
    for doc in docs:
        if isinstance(doc.rule, SigmaRule):
            detection = _compile_detection(doc, doc.rule, problems)
            if detection is not None:
                if examples:
                    detection.cases = tuple(cases_for(detection))
                detections.append(detection)
                for ref in (*detection.refs, detection.rule_id):
                    names[ref] = detection
                    loaded.detections[ref] = detection
    quiet: set[str] = set()
    correlations: list[Rule] = []
    for doc in docs:
        if isinstance(doc.rule, SigmaCorrelationRule):
            built = _compile_correlation(doc, doc.rule, names, problems, examples)
            if built is not None:
                correlations.append(built)
                if not doc.rule.generate:
                    quiet |= {names[r.reference].rule_id for r in doc.rule.rules or []}
    if problems:
        raise SigmaLoadError(problems, what)
    loaded.rules = [match_rule(d) for d in detections if d.rule_id not in quiet] + correlations
    return loaded
