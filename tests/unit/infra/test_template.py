"""The CloudFormation template: cfn-lint clean, no wildcard actions, and the structure the pipeline relies on."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import cfn, provision

TEMPLATE = Path(__file__).resolve().parents[3] / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn.load(TEMPLATE)


def _plan(**parameters: str) -> cfn.Plan:
    return cfn.plan(parameters, account="111122223333", region="eu-west-1")


def _statements(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement anywhere in `node`, both branches of every Fn::If included."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield path, node
        for key, value in node.items():
            yield from _statements(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _statements(value, f"{path}[{i}]")


def _wildcard_actions(template: dict[str, Any]) -> list[str]:
    found = []
    for path, statement in _statements(template):
        for key in ("Action", "NotAction"):
            actions = statement.get(key, [])
            for action in [actions] if isinstance(actions, str | dict) else actions:
                if not isinstance(action, str) or "*" in action:
                    found.append(f"{path}: {key} {action!r}")
    return found


def test_cfn_lint_passes() -> None:
    from cfnlint.api import lint_file

    matches = lint_file(TEMPLATE)
    assert not matches, "\n".join(str(m) for m in matches)


def test_no_wildcard_action_anywhere(template: dict[str, Any]) -> None:
    assert list(_statements(template)), "the walker found no IAM statements at all"
    assert _wildcard_actions(template) == []


def test_wildcard_check_catches_a_star_action(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    statements = broken["Resources"]["ConsumerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append({"Effect": "Allow", "Action": ["sns:Publish", "kinesis:*"], "Resource": "x"})
    broken["Resources"]["TrailLogsRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Action"] = "*"
    assert len(_wildcard_actions(broken)) == 2


def test_consumer_role_names_its_resources() -> None:
    plan = _plan(RetrievalMode="FANOUT", KmsKeyArn="arn:aws:kms:eu-west-1:111122223333:key/abcd-1234")
    role = plan.resource("ConsumerRole")
    statements = role.properties["Policies"][0]["PolicyDocument"]["Statement"]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if resources == ["*"]:
            # Only PutMetricData, which has no resource-level permissions, and only with a namespace condition.
            assert statement["Action"] == "cloudwatch:PutMetricData"
            assert statement["Condition"]["StringLike"]["cloudwatch:namespace"]
            continue
        for arn in resources:
            assert (arn.startswith("arn:aws:") and ":111122223333:" in arn) or arn.startswith("arn:aws:s3:::"), arn
    by_sid = {s.get("Sid"): s for s in statements}
    assert set(by_sid) >= {
        "ReadStreams",
        "RouteKeyedFacts",
        "KclLeaseTables",
        "DedupeTable",
        "StateSnapshots",
        "PublishAlerts",
        "ArchiveFindings",
        "EnhancedFanOut",
        "StreamAndSinkKey",
    }
    assert by_sid["RouteKeyedFacts"]["Resource"] == plan.outputs["KeyedStreamArn"]
    assert by_sid["PublishAlerts"]["Resource"] == plan.outputs["FindingsTopicArn"]
    lease_tables = by_sid["KclLeaseTables"]["Resource"]
    assert any(arn.endswith(":table/" + plan.outputs["RouterAppName"] + "*") for arn in lease_tables)
    assert any(arn.endswith(":table/" + plan.outputs["StatefulAppName"] + "*") for arn in lease_tables)
    # Without the options, their statements disappear.
    default = _plan().resource("ConsumerRole").properties["Policies"][0]["PolicyDocument"]["Statement"]
    assert {s.get("Sid") for s in default}.isdisjoint({"EnhancedFanOut", "StreamAndSinkKey"})


def test_trail_streams_and_subscription() -> None:
    plan = _plan(OrganizationTrail="true")
    trail = plan.resource("Trail").properties
    assert trail["IsMultiRegionTrail"] is True and trail["IsOrganizationTrail"] is True
    assert trail["CloudWatchLogsLogGroupArn"] == plan.outputs["TrailLogGroupArn"]
    assert _plan().resource("Trail").properties["IsOrganizationTrail"] is False
    subscription = plan.resource("TrailSubscription").properties
    assert subscription["DestinationArn"] == plan.outputs["TrailStreamArn"]
    assert subscription["LogGroupName"] == plan.outputs["TrailLogGroupName"]
    for name in ("TrailStream", "KeyedStream"):
        stream = plan.resource(name).properties
        assert stream["StreamEncryption"]["EncryptionType"] == "KMS"
        assert stream["StreamModeDetails"]["StreamMode"] == "ON_DEMAND" and "ShardCount" not in stream
    provisioned = _plan(StreamMode="PROVISIONED", TrailShardCount="3").resource("TrailStream").properties
    assert provisioned["ShardCount"] == "3"


def test_findings_archive_is_queryable() -> None:
    plan = _plan()
    destination = plan.resource("FindingsDeliveryStream").properties["ExtendedS3DestinationConfiguration"]
    assert destination["CompressionFormat"] == "GZIP"
    assert destination["Prefix"].startswith("findings/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}")
    assert destination["ErrorOutputPrefix"].startswith("errors/")
    assert destination["BucketARN"] == f"arn:aws:s3:::{plan.outputs['FindingsBucketName']}"
    table = plan.resource("FindingsTable").properties["TableInput"]
    assert table["Parameters"]["projection.enabled"] == "true"
    location = table["Parameters"]["storage.location.template"]
    assert (
        location == f"s3://{plan.outputs['FindingsBucketName']}/findings/year=${{year}}/month=${{month}}/day=${{day}}/"
    )
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["year", "month", "day"]
    from pipeline.finding import Finding

    sample = Finding("i", "r", "t", "high", (), "a", "r", "p", "s", "u", (), (), 0.0, "k", 0).to_dict()
    assert {c["Name"] for c in table["StorageDescriptor"]["Columns"]} == set(sample)


def test_buckets_are_private_and_encrypted() -> None:
    buckets = [r for r in _plan().resources if r.type == "AWS::S3::Bucket"]
    assert len(buckets) == 3
    for bucket in buckets:
        block = bucket.properties["PublicAccessBlockConfiguration"]
        assert all(
            block[k] is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        ), bucket.logical_id
        rule = bucket.properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def test_dedupe_table_and_alerts() -> None:
    plan = _plan(AlertEmail="soc@example.com")
    table = plan.resource("DedupeTable").properties
    assert table["KeySchema"] == [{"AttributeName": "finding_id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"]["Enabled"] is True
    email = plan.resource("AlertEmailSubscription")
    assert email.enabled and email.properties["FilterPolicy"] == {"severity": ["high", "critical"]}
    assert not _plan().resource("AlertEmailSubscription").enabled


def test_outputs_cover_what_consumers_read() -> None:
    outputs = _plan().outputs
    for key in (
        "TrailStreamName",
        "KeyedStreamName",
        "TrailLogGroupName",
        "FindingsTopicArn",
        "FindingsDeliveryStreamName",
        "DedupeTableName",
        "StateBucketName",
        "RouterAppName",
        "StatefulAppName",
        "FindingsBucketName",
        "FindingsDatabaseName",
        "ConsumerRoleArn",
    ):
        assert outputs.get(key), key


def test_every_resource_type_is_provisioned_or_skipped_with_a_reason(template: dict[str, Any]) -> None:
    types = {spec["Type"] for spec in template["Resources"].values()}
    handled = set(provision._HANDLERS)
    assert types <= handled | set(provision.SKIPPED), types - handled - set(provision.SKIPPED)
    assert all(reason.strip() for reason in provision.SKIPPED.values())
    assert not handled & set(provision.SKIPPED)


def test_unknown_parameter_and_bad_value_are_refused() -> None:
    with pytest.raises(cfn.TemplateError):
        _plan(NoSuchParameter="x")
    with pytest.raises(cfn.TemplateError):
        _plan(StreamMode="SOMETIMES")


def test_the_default_application_names_are_the_template_s(template: dict[str, Any]) -> None:
    from infra.resources import APP_OUTPUT, DEFAULT_APPS, Resources

    for stage, output in APP_OUTPUT.items():
        assert template["Parameters"][output]["Default"] == DEFAULT_APPS[stage]
        assert template["Outputs"][output]["Value"] == {"Ref": output}
    plan = _plan()
    resources = Resources(plan.outputs)
    assert resources.for_replay("r1").app(next(iter(APP_OUTPUT))) == plan.outputs["RouterAppName"] + "-replay-r1"


def test_the_deliverer_runs_as_a_service_of_its_own_when_asked() -> None:
    service = {"Image": "img", "Subnets": "subnet-1", "SecurityGroups": "sg-1"}
    assert _plan(**service).resource("DelivererService").properties["DesiredCount"] == "0"  # none by default
    plan = _plan(**service, DelivererTasks="1")
    assert plan.resource("DelivererService").properties["DesiredCount"] == "1"
    container = plan.resource("DelivererTaskDefinition").properties["ContainerDefinitions"][0]
    assert container["EntryPoint"] == ["/usr/bin/tini", "--", "trailwarden", "deliver"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    resources = json.loads(env["TRAILWARDEN_RESOURCES"])
    # the names `trailwarden deliver` reads (consumers/deliverer.py: build_deliverers), the stack's own
    assert resources == {k: plan.outputs[k] for k in ("FindingsTopicArn", "DedupeTableName")}
    assert env["TRAILWARDEN_TARGET"] == "aws"
    assert not _plan().resource("DelivererService").enabled  # no service without an image


def _hive(text: str) -> Any:
    """A Hive type as a tree: "string" | ("array", item) | ("struct", {name: type})."""

    def parse(i: int) -> tuple[Any, int]:
        for kind in ("array<", "struct<"):
            if text.startswith(kind, i):
                i += len(kind)
                if kind == "array<":
                    item, i = parse(i)
                    return ("array", item), i + 1  # past ">"
                fields: dict[str, Any] = {}
                while text[i] != ">":
                    colon = text.index(":", i)
                    fields[text[i:colon]], i = parse(colon + 1)
                    i += text[i] == ","
                return ("struct", fields), i + 1
        end = min((j for j in (text.find(c, i) for c in ",>") if j >= 0), default=len(text))
        return text[i:end], end

    tree, end = parse(0)
    assert end == len(text), text
    return tree


def _fits(value: Any, hive: Any, path: str) -> list[str]:
    """Where a JSON value does not fit a Hive type (a column or struct field missing, a type that differs)."""
    if value is None:
        return []
    if isinstance(hive, tuple) and hive[0] == "struct":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a struct"]
        missing = [f"{path}.{k}: no such field" for k in value if k not in hive[1]]
        return missing + [e for k, v in value.items() if k in hive[1] for e in _fits(v, hive[1][k], f"{path}.{k}")]
    if isinstance(hive, tuple):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not an array"]
        return [e for n, v in enumerate(value) for e in _fits(v, hive[1], f"{path}[{n}]")]
    if hive == "string" and isinstance(value, dict):
        return []  # an object in a string column reads as its JSON text (the OpenX SerDe), as `context` does
    scalar = {bool: "boolean", str: "string", int: "int|bigint", float: "double"}.get(type(value), "?")
    if hive == "bigint" and isinstance(value, int) and not isinstance(value, bool):
        return []
    if hive == "int" and isinstance(value, int) and not isinstance(value, bool):
        return [] if abs(value) < 2**31 else [f"{path}: {value} does not fit an int"]
    return [] if hive == scalar else [f"{path}: {scalar} in a {hive} column"]


def test_the_ocsf_archive_is_queryable_with_its_own_table() -> None:
    from pipeline.ocsf import detection_finding
    from tests.support.destinations import finding_dict

    plan = _plan()
    table = plan.resource("FindingsOcsfTable").properties["TableInput"]
    ours = plan.resource("FindingsTable").properties["TableInput"]
    # the same objects, the same partitions: Firehose writes either format under findings/year=/month=/day=/
    for key in ("PartitionKeys",):
        assert table[key] == ours[key]
    assert table["Parameters"] == ours["Parameters"]
    assert table["StorageDescriptor"]["Location"] == ours["StorageDescriptor"]["Location"]
    assert table["StorageDescriptor"]["SerdeInfo"] == ours["StorageDescriptor"]["SerdeInfo"]
    columns = {c["Name"]: _hive(c["Type"]) for c in table["StorageDescriptor"]["Columns"]}
    # every field trailwarden writes, in a first alert, a digest and a resolution with every optional key set
    full = finding_dict(
        3,
        attack=["T1136", "T1098.003", "T1078"],
        context={"requestParameters": {"userName": "x"}},
        replayed=True,
        dedup_key="k",
    )
    written = [
        detection_finding(full),
        detection_finding({**full, "occurrences": 7}),
        detection_finding({**full, "status": "resolved", "resolution": "user deleted", "updated_at": 1_700_000_100.0}),
    ]
    assert written[0]["finding_info"]["attacks"] and written[0]["unmapped"]["context"]
    for doc in written:
        assert set(doc) == set(columns), set(doc) ^ set(columns)
        problems = [e for key, value in doc.items() for e in _fits(value, columns[key], key)]
        assert not problems, problems
    # and the check can fail: a field the table lacks, a type that differs
    assert _fits({"a": 1}, ("struct", {"b": "int"}), "x") == ["x.a: no such field"]
    assert _fits(1_700_000_000_000, "int", "t") == ["t: 1700000000000 does not fit an int"]
    assert _fits("New", "int", "s") == ["s: string in a int column"]
