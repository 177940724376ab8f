"""Read a CloudFormation template and evaluate it for one account and region, without AWS.

`plan(parameters, account=..., region=...)` resolves parameters, conditions and the intrinsic
functions (Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::Join,
Fn::Select, Fn::Split) and returns every resource with its physical name, resolved properties
and ARNs, in dependency order, plus the outputs. A resource without an explicit name gets
`<stack name>-<logical id>`, so local names are deterministic. Only what the trailwarden
template uses is modelled; anything else raises TemplateError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).with_name("template.yaml")


class TemplateError(ValueError):
    """The template uses something this evaluator does not model, or is inconsistent."""


# --- loading: YAML with CloudFormation's short tags ------------------------------------------


class _Loader(yaml.SafeLoader):
    pass


def _short_tag(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _short_tag)


def load(path: Path | str = TEMPLATE) -> dict[str, Any]:
    """The template as plain data; short tags (`!Ref x`) become their long form (`{"Ref": "x"}`)."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader subclass)
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template")
    return document


# --- evaluation -------------------------------------------------------------------------------


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

# Per resource type: the property holding its name (a dotted path), what Ref returns ("name" or
# "arn"), and its ARN pattern ({p} partition, {r} region, {a} account, {n} name).
_TYPES: dict[str, tuple[str | None, str, str | None]] = {
    "AWS::S3::Bucket": ("BucketName", "name", "arn:{p}:s3:::{n}"),
    "AWS::S3::BucketPolicy": (None, "name", None),
    "AWS::Logs::LogGroup": ("LogGroupName", "name", "arn:{p}:logs:{r}:{a}:log-group:{n}:*"),
    "AWS::Logs::LogStream": ("LogStreamName", "name", None),
    "AWS::Logs::SubscriptionFilter": ("FilterName", "name", None),
    "AWS::IAM::Role": ("RoleName", "name", "arn:{p}:iam::{a}:role/{n}"),
    "AWS::IAM::ManagedPolicy": (None, "arn", "arn:{p}:iam::{a}:policy/{n}"),  # Ref is the ARN
    "AWS::CloudTrail::Trail": ("TrailName", "name", "arn:{p}:cloudtrail:{r}:{a}:trail/{n}"),
    "AWS::Kinesis::Stream": ("Name", "name", "arn:{p}:kinesis:{r}:{a}:stream/{n}"),
    "AWS::SNS::Topic": ("TopicName", "arn", "arn:{p}:sns:{r}:{a}:{n}"),
    "AWS::SNS::Subscription": (None, "name", None),
    "AWS::KinesisFirehose::DeliveryStream": (
        "DeliveryStreamName",
        "name",
        "arn:{p}:firehose:{r}:{a}:deliverystream/{n}",
    ),
    "AWS::Glue::Database": ("DatabaseInput.Name", "name", None),
    "AWS::Glue::Table": ("TableInput.Name", "name", None),
    "AWS::DynamoDB::Table": ("TableName", "name", "arn:{p}:dynamodb:{r}:{a}:table/{n}"),
    "AWS::KMS::Key": (None, "name", "arn:{p}:kms:{r}:{a}:key/{n}"),
    "AWS::ECS::Cluster": ("ClusterName", "name", "arn:{p}:ecs:{r}:{a}:cluster/{n}"),
    "AWS::ECS::TaskDefinition": ("Family", "arn", "arn:{p}:ecs:{r}:{a}:task-definition/{n}:1"),  # first revision
    # An ECS service's Ref (an ARN holding the cluster) is not modelled: the template uses GetAtt Name.
    "AWS::ECS::Service": ("ServiceName", "name", None),
    # Ref is "<ResourceId>|<ScalableDimension>|<ServiceNamespace>" on AWS; the ResourceId alone here.
    "AWS::ApplicationAutoScaling::ScalableTarget": ("ResourceId", "name", None),
    # The real ARN holds an id the service makes up; provisioning looks the policy up by name.
    "AWS::ApplicationAutoScaling::ScalingPolicy": (
        "PolicyName",
        "arn",
        "arn:{p}:autoscaling:{r}:{a}:scalingPolicy:policyName/{n}",
    ),
    "AWS::CloudWatch::Alarm": ("AlarmName", "name", "arn:{p}:cloudwatch:{r}:{a}:alarm:{n}"),
    "AWS::CloudWatch::Dashboard": ("DashboardName", "name", None),
}


@dataclass
class Resource:
    """One template resource as it would exist in this account and region."""

    logical_id: str
    type: str
    name: str
    arn: str | None
    properties: dict[str, Any]
    enabled: bool  # its Condition holds
    condition: str | None = None
    depends_on: tuple[str, ...] = ()


@dataclass
class Plan:
    """The evaluated template: resources in creation order, and the outputs."""

    parameters: dict[str, Any]
    conditions: dict[str, bool]
    resources: list[Resource]
    outputs: dict[str, str] = field(default_factory=dict)

    def resource(self, logical_id: str) -> Resource:
        for resource in self.resources:
            if resource.logical_id == logical_id:
                return resource
        raise KeyError(logical_id)


def check_parameter(name: str, spec: Mapping[str, Any], value: Any) -> None:
    """Raise TemplateError naming `name` if `value` breaks its declaration (type, allowed values, pattern, range)."""
    items = value if isinstance(value, list) else [value]
    allowed = spec.get("AllowedValues")
    choices = [str(a).lower() if isinstance(a, bool) else str(a) for a in allowed or ()]
    for item in items:
        if allowed is not None and item not in choices:
            raise TemplateError(f"parameter {name}={item!r} is not one of {', '.join(choices)}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not isinstance(value, list) and re.fullmatch(pattern, str(value)) is None:
        raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value!r} is below its minimum {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value!r} is above its maximum {spec['MaxValue']}")


class _Evaluator:
    def __init__(
        self, template: dict[str, Any], parameters: Mapping[str, Any], account: str, region: str, stack: str
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template["Resources"]
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": partition,
            "AWS::StackName": stack,
            "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        self.parameters = self._parameters(parameters)
        self.conditions: dict[str, bool] = {}
        self._names: dict[str, str] = {}
        self._resolving: set[str] = set()

    def _parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        declared: dict[str, Any] = self.template.get("Parameters") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in given:
                value = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default and no value")
            if spec.get("Type") == "CommaDelimitedList":
                value = value if isinstance(value, list) else [v.strip() for v in str(value).split(",") if v.strip()]
            else:
                value = str(value).lower() if isinstance(value, bool) else str(value)
            check_parameter(name, spec, value)
            values[name] = value
        return values

    # conditions and names

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise TemplateError(f"unknown condition {name}")
            self.conditions[name] = bool(self.value(spec))
        return self.conditions[name]

    def name(self, logical_id: str) -> str:
        if logical_id in self._names:
            return self._names[logical_id]
        if logical_id in self._resolving:
            raise TemplateError(f"circular reference through {logical_id}")
        spec = self.resources.get(logical_id)
        if spec is None:
            raise TemplateError(f"unknown resource {logical_id}")
        kind = _TYPES.get(spec.get("Type", ""))
        if kind is None:
            raise TemplateError(f"{logical_id}: resource type {spec.get('Type')} is not modelled")
        self._resolving.add(logical_id)
        try:
            value: Any = None
            if kind[0]:
                value = spec.get("Properties") or {}
                for step in kind[0].split("."):
                    value = value.get(step) if isinstance(value, dict) else None
            name = str(self.value(value)) if value is not None else f"{self.pseudo['AWS::StackName']}-{logical_id}"
        finally:
            self._resolving.discard(logical_id)
        self._names[logical_id] = name
        return name

    def arn(self, logical_id: str) -> str | None:
        pattern = _TYPES[self.resources[logical_id]["Type"]][2]
        if pattern is None:
            return None
        p = self.pseudo
        return pattern.format(p=p["AWS::Partition"], r=p["AWS::Region"], a=p["AWS::AccountId"], n=self.name(logical_id))

    def ref(self, target: str) -> Any:
        if target in self.pseudo:
            return self.pseudo[target]
        if target in self.parameters:
            return self.parameters[target]
        if target in self.resources:
            if _TYPES.get(self.resources[target].get("Type", ""), (None, "name", None))[1] == "arn":
                return self.arn(target)
            return self.name(target)
        raise TemplateError(f"Ref to unknown {target}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt on unknown resource {logical_id}")
        if attribute in ("Arn", "TopicArn"):
            arn = self.arn(logical_id)
            if arn is not None:
                return arn
        if attribute in ("TopicName", "Name"):
            return self.name(logical_id)
        raise TemplateError(f"GetAtt {logical_id}.{attribute} is not modelled")

    # intrinsic functions

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = self._functions.get(key)
            if handler is not None:
                return handler(self, arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic function {key} is not modelled")
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.value(v) for k, v in variables.items()}
        out: list[str] = []
        i = 0
        while True:
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                return "".join(out)
            end = text.find("}", start)
            if end < 0:
                raise TemplateError(f"unterminated ${{ in Fn::Sub {text!r}")
            out.append(text[i:start])
            expr = text[start + 2 : end]
            if expr.startswith("!"):
                out.append("${" + expr[1:] + "}")
            elif expr in variables:
                out.append(str(variables[expr]))
            elif "." in expr and expr.split(".", 1)[0] in self.resources:
                out.append(self.get_att(*expr.split(".", 1)))
            else:
                out.append(str(self.ref(expr)))
            i = end + 1

    def _if(self, arg: Any) -> Any:
        name, yes, no = arg
        return self.value(yes if self.condition(name) else no)

    def _get_att(self, arg: Any) -> str:
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return self.get_att(logical_id, self.value(attribute))

    _functions: dict[str, Any] = {
        "Ref": lambda self, arg: self.ref(arg),
        "Condition": lambda self, arg: self.condition(arg),
        "Fn::Sub": _sub,
        "Fn::If": _if,
        "Fn::GetAtt": _get_att,
        "Fn::Equals": lambda self, arg: str(self.value(arg[0])) == str(self.value(arg[1])),
        "Fn::Not": lambda self, arg: not self.value(arg[0]),
        "Fn::And": lambda self, arg: all(self.value(a) for a in arg),
        "Fn::Or": lambda self, arg: any(self.value(a) for a in arg),
        "Fn::Join": lambda self, arg: str(arg[0]).join(str(v) for v in self.value(arg[1])),
        "Fn::Select": lambda self, arg: self.value(arg[1])[int(self.value(arg[0]))],
        "Fn::Split": lambda self, arg: str(self.value(arg[1])).split(str(arg[0])),
    }


def _references(node: Any, logical_ids: set[str]) -> set[str]:
    """Logical ids that `node` refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _references(item, logical_ids)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and arg in logical_ids:
                found.add(arg)
            elif key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                if target in logical_ids:
                    found.add(target)
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for part in text.split("${")[1:]:
                    expr = part.split("}", 1)[0].split(".", 1)[0]
                    if expr in logical_ids:
                        found.add(expr)
                if isinstance(arg, list) and len(arg) > 1:
                    found |= _references(arg[1], logical_ids)
            else:
                found |= _references(arg, logical_ids)
    return found


def _order(resources: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """Logical ids in dependency order (template order among independent ones), with their dependencies."""
    ids = set(resources)
    deps: dict[str, tuple[str, ...]] = {}
    for logical_id, spec in resources.items():
        explicit = spec.get("DependsOn") or []
        explicit = [explicit] if isinstance(explicit, str) else explicit
        deps[logical_id] = tuple(sorted(_references(spec.get("Properties") or {}, ids) | set(explicit)))
    ordered: list[tuple[str, tuple[str, ...]]] = []
    placed: set[str] = set()
    pending = list(resources)
    while pending:
        ready = [r for r in pending if set(deps[r]) <= placed]
        if not ready:
            raise TemplateError(f"dependency cycle among {', '.join(pending)}")
        for logical_id in ready:
            ordered.append((logical_id, deps[logical_id]))
            placed.add(logical_id)
        pending = [r for r in pending if r not in placed]
    return ordered


def plan(
    parameters: Mapping[str, Any] | None = None,
    *,
    account: str,
    region: str,
    stack_name: str = "trailwarden",
    template: dict[str, Any] | None = None,
) -> Plan:
    """Evaluate the template for `account` and `region` with these parameter values (defaults for the rest)."""
    template = template if template is not None else load()
    ev = _Evaluator(template, parameters or {}, account, region, stack_name)
    for name in template.get("Conditions") or {}:
        ev.condition(name)
    resources: list[Resource] = []
    for logical_id, deps in _order(ev.resources):
        spec = ev.resources[logical_id]
        condition = spec.get("Condition")
        enabled = ev.condition(condition) if condition else True
        properties = ev.value(spec.get("Properties") or {}) if enabled else {}
        name, arn = ev.name(logical_id), ev.arn(logical_id)
        resources.append(Resource(logical_id, spec["Type"], name, arn, properties, enabled, condition, deps))
    outputs: dict[str, str] = {}
    for name, spec in (template.get("Outputs") or {}).items():
        condition = spec.get("Condition")
        if condition and not ev.condition(condition):
            continue
        value = ev.value(spec["Value"])
        outputs[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return Plan(ev.parameters, dict(ev.conditions), resources, outputs)
