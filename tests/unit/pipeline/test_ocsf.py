"""The archive as OCSF Detection Findings (class 2004), validated against the OCSF model of py-ocsf-models."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from consumers.sinks.firehose import FirehoseSink
from pipeline.config import Config, ConfigError
from pipeline.finding import Finding
from pipeline.ocsf import archive_format, detection_finding
from tests.support.destinations import HOSTILE, finding_dict, hostile_dict


@pytest.mark.parametrize(
    ("changes", "activity", "status"),
    [({}, 1, 1), ({"occurrences": 4}, 2, 1), ({"status": "resolved", "resolution": "tags added"}, 3, 4)],
)
def test_a_finding_its_digest_and_its_resolution_are_valid_detection_findings(changes, activity, status):
    doc = detection_finding(finding_dict(1, **changes))
    model = DetectionFinding.model_validate(doc)
    assert (model.class_uid, model.category_uid, model.activity_id, model.type_uid) == (
        2004,
        2,
        activity,
        200400 + activity,
    )
    assert model.status_id == status and model.severity_id == 4 and model.finding_info.uid == finding_dict(1)["id"]
    assert [(a.technique.uid, a.tactic.uid) for a in model.finding_info.attacks] == [
        ("T1136", "TA0003"),
        ("T1098", "TA0003"),
    ]
    assert model.count == changes.get("occurrences", 1)
    assert model.cloud.account.uid == "123456789012" and model.resources[0].uid.endswith("user/new-1")


def test_hostile_text_stays_data_and_only_real_techniques_become_attacks():
    model = DetectionFinding.model_validate(detection_finding(hostile_dict()))
    assert [a.technique.uid for a in model.finding_info.attacks] == ["T1078"]
    assert model.finding_info.title == HOSTILE


@mock_aws
def test_firehose_writes_ocsf_lines_when_asked():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="archive")
    firehose = boto3.client("firehose", region_name="us-east-1")
    firehose.create_delivery_stream(
        DeliveryStreamName="findings",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/fh",
            "BucketARN": "arn:aws:s3:::archive",
            "Prefix": "f/",
        },
    )
    huge = Finding.from_dict({**hostile_dict(), "context": {"blob": HOSTILE * 20}})
    FirehoseSink(firehose, "findings", archive_format="ocsf").deliver([Finding.from_dict(finding_dict(2)), huge])
    lines = [
        line
        for obj in s3.list_objects_v2(Bucket="archive")["Contents"]
        for line in s3.get_object(Bucket="archive", Key=obj["Key"])["Body"].read().splitlines()
    ]
    assert len(lines) == 2 and all(len(line) < 1000 * 1024 for line in lines)
    models = [DetectionFinding.model_validate(json.loads(line)) for line in lines]
    assert {m.finding_info.uid for m in models} == {finding_dict(2)["id"], hostile_dict()["id"]}


def test_archive_format_is_checked():
    assert archive_format(Config.from_dict({})) == "trailwarden"
    assert archive_format(Config.from_dict({"archive": {"format": "ocsf"}})) == "ocsf"
    with pytest.raises(ConfigError, match=r"\[archive\] format = 'parquet'"):
        archive_format(Config.from_dict({"archive": {"format": "parquet"}}))
