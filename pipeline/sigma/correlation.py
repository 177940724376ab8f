"""Sigma correlation rules as stateful rules, in event time, built with the kinds' typed options:

- `event_count` (`gte`/`gt` N): a threshold rule counting the events of the referenced rules per
  group-by key within the timespan;
- `value_count` (`gte`/`gt` N, `field`): a threshold rule counting distinct values of the field;
- `temporal`: a threshold rule counting distinct referenced rules matched per key within the timespan
  (all of them, or N with `gte`/`gt`), in any order;
- `temporal_ordered` over two rules: a sequence rule, the first rule's event then the second's.

Stage 1 runs the referenced rules' predicates and routes one fact per matching event by the group-by
key; stage 2 decides, so correlations run live, in replay, backfill and scan with the same findings.
A condition stage 2 cannot decide as events arrive (`lt`, `lte`, `eq`, `neq`: they need the window to
close), the value aggregations and correlations of correlations are refused with `Refused`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sigma.correlations import SigmaCorrelationConditionOperator as Op
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType, SigmaExtendedCorrelationCondition

from pipeline.event import Event
from pipeline.rule import ANY, Hit, Params, format_duration, metadata
from pipeline.sigma.detection import Detection
from pipeline.sigma.fields import split, texts
from pipeline.sigma.translate import Refused
from pipeline.stateful import sequence, threshold
from pipeline.stateful.facts import Step
from pipeline.stateful.logic import KindLogic
from pipeline.stateful.options import KindOptions
from pipeline.stateful.rule import Extractor, HitFor, StatefulRule
from pipeline.stateful.steps import FIRST, THEN

Kind = SigmaCorrelationType


def merged_events(detections: Iterable[Detection]) -> dict[str, Any]:
    """The union of the detections' index keys: what the correlation's stage-1 half must see."""
    out: dict[str, Any] = {}
    for d in detections:
        for source, names in d.events.items():
            if names == ANY or out.get(source, ()) == ANY:
                out[source] = ANY
            else:
                out[source] = frozenset(out.get(source, frozenset())) | frozenset(names)
    return out


def _minimum(rule: SigmaCorrelationRule, explicit: bool, default: int) -> int:
    """The smallest count that satisfies the condition, for the conditions decidable as events arrive."""
    cond = rule.condition
    if isinstance(cond, SigmaExtendedCorrelationCondition):
        raise Refused("extended condition", "boolean conditions over rules are not evaluated", "condition")
    if not explicit:
        return default
    if cond.op == Op.GTE:
        count = cond.count
    elif cond.op == Op.GT:
        count = int(cond.count) + 1
    else:
        raise Refused(
            f"condition {cond.op.name.lower()}",
            "only gte and gt are evaluated in the stream (lt, lte, "
            "eq and neq need the window to close before they can be decided)",
            "condition",
        )
    if count != int(count) or count < 1:
        raise Refused("condition", f"{count} is not a whole number of 1 or more", "condition")
    return int(count)


def _group_key(fields: Sequence[tuple[str, tuple[str, ...]]], record: dict[str, Any]) -> str:
    """The group-by key of an event: `field=value` joined by `|` (an absent field reads as empty)."""
    if not fields:
        return "*"
    parts = []
    for name, path in fields:
        found = texts(record, path)
        parts.append(f"{name}={found[0] if found else ''}")
    return "|".join(parts)


def correlation_rule(
    rule: SigmaCorrelationRule,
    rule_id: str,
    title: str,
    severity: str,
    attack: tuple[str, ...],
    description: str,
    runbook: str,
    refs: Sequence[tuple[str, Detection]],
    explicit_condition: bool,
    upstream: Mapping[str, str],
    examples: bool = True,
) -> StatefulRule:
    """The stateful rule for a correlation over the detections `refs` ((reference, detection) in order), with
    its generated test cases when `examples`."""
    built = _correlation_rule(
        rule, rule_id, title, severity, attack, description, runbook, refs, explicit_condition, upstream
    )
    if examples:
        from pipeline.sigma.examples import correlation_cases  # cycle: examples -> ruletest -> pack -> rules

        fields = [(ref, d, _fields(rule, ref)) for ref, d in refs]
        options = built.options
        field = _fieldref(rule)
        value = split(field) if rule.type == Kind.VALUE_COUNT and field else None
        count = getattr(options, "threshold", 2)
        built.cases = tuple(correlation_cases(str(rule.type), fields, count, float(rule.timespan.seconds), value))
    return built


def _fields(rule: SigmaCorrelationRule, reference: str) -> list[tuple[str, tuple[str, ...]]]:
    """The group-by fields as the rule `reference` names them (aliases resolved)."""
    aliases = {a.alias: {ref.reference: name for ref, name in a.mapping.items()} for a in rule.aliases}
    return [(g, split(aliases[g].get(reference, g) if g in aliases else g)) for g in rule.group_by or []]


def _fieldref(rule: SigmaCorrelationRule) -> str | None:
    """The field a value_count condition counts distinct values of (None when it names none)."""
    field = getattr(rule.condition, "fieldref", None)  # an extended condition has none
    return field if isinstance(field, str) else None


def _correlation_rule(
    rule: SigmaCorrelationRule,
    rule_id: str,
    title: str,
    severity: str,
    attack: tuple[str, ...],
    description: str,
    runbook: str,
    refs: Sequence[tuple[str, Detection]],
    explicit_condition: bool,
    upstream: Mapping[str, str],
) -> StatefulRule:
    kind = rule.type
    window = float(rule.timespan.seconds)
    matchers = [(ref, d.predicate, _fields(rule, ref)) for ref, d in refs]
    detections = [d for _, d in refs]
    span = format_duration(window)

    def build(logic: type[KindLogic[Any, Any]], options: KindOptions, extract: Extractor, hit: HitFor) -> StatefulRule:
        meta = metadata(
            id=rule_id,
            title=title,
            severity=severity,
            attack=attack,
            events=merged_events(detections),
            params=None,
            dedup="1h",
            runbook=runbook,
            cases=(),
            fn=extract,
        )
        meta["description"] = description
        built = StatefulRule(**meta, kind=logic.kind, extract=extract, options=options, hit=hit, logic_type=logic)
        built.validate = built.options_for
        built.origin, built.upstream = "sigma", dict(upstream)
        return built

    if kind in (Kind.EVENT_COUNT, Kind.VALUE_COUNT):
        count = _minimum(rule, explicit_condition, 1)
        value_path = None
        if kind == Kind.VALUE_COUNT:
            field = _fieldref(rule)
            if not isinstance(field, str) or not field:
                raise Refused("value_count", "the condition names no `field` to count distinct values of", "condition")
            value_path = split(field)

        def count_steps(e: Event, p: Params) -> list[Step]:
            for _, predicate, fields in matchers:
                if predicate(e.raw):
                    key = _group_key(fields, e.raw)
                    if value_path is None:
                        return [Step(key)]
                    return [Step(key, value=v) for v in dict.fromkeys(texts(e.raw, value_path))]
            return []

        what = "events" if value_path is None else f"distinct {_fieldref(rule)} values"
        options = threshold.Options(window=window, threshold=count, distinct=value_path is not None)
        return build(threshold.Logic, options, count_steps, _hit(title, f"{count} or more {what} within {span}"))
    elif kind == Kind.TEMPORAL:
        count = _minimum(rule, explicit_condition, len(matchers))
        if count > len(matchers):
            raise Refused("condition", f"asks for {count} rules of the {len(matchers)} it refers to", "condition")

        def rule_steps(e: Event, p: Params) -> list[Step]:
            return [
                Step(_group_key(fields, e.raw), value=ref) for ref, predicate, fields in matchers if predicate(e.raw)
            ]

        return build(
            threshold.Logic,
            threshold.Options(window=window, threshold=count, distinct=True),
            rule_steps,
            _hit(title, f"{count} of the rules {', '.join(r for r, _, _ in matchers)} within {span}"),
        )
    elif kind == Kind.TEMPORAL_ORDERED:
        if len(matchers) != 2:
            raise Refused(
                "temporal_ordered",
                f"over {len(matchers)} rules: only two (the first, then the second) are evaluated",
                "rules",
            )
        if explicit_condition and _minimum(rule, True, 2) != 2:
            raise Refused("condition", "temporal_ordered must have both rules match", "condition")
        (first_ref, first, first_fields), (then_ref, then, then_fields) = matchers

        def ordered_steps(e: Event, p: Params) -> list[Step]:
            steps = []
            if first(e.raw):
                steps.append(Step(_group_key(first_fields, e.raw), FIRST))
            if then(e.raw):
                steps.append(Step(_group_key(then_fields, e.raw), THEN))
            return steps

        return build(
            sequence.Logic,
            sequence.Options(window=window, same_principal=False),
            ordered_steps,
            _hit(title, f"{first_ref} then {then_ref} within {span}"),
        )
    raise Refused(
        f"correlation type {kind}", "only event_count, value_count, temporal and temporal_ordered are evaluated", "type"
    )


def _hit(title: str, what: str) -> HitFor:
    def hit(key: str, context: dict[str, Any], params: Params) -> Hit:
        return Hit(summary=f"{title}: {what} for {key}")

    return hit
