"""Tag compliance over the resource table: the table is checked when loaded (bad entries name the file,
the entry and the key), the [tags] schema is checked when the configuration is loaded (bad patterns
name the key as written, and nothing starts), findings say what a person needs, and the per-resource
state is small, shared and survives snapshots with the schema of the day.

Event time, late tags, removals, deletion, duplicates, snapshots at any cut and lease moves across
reshards are exercised for both tag rules by the stateful suites (their generated facts include them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.cases import later
from pipeline.cli import main
from pipeline.config import Config, ConfigError
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.rule import REGISTRY
from pipeline.rules import builtin_rules
from pipeline.ruletest import complete_record, run_events
from pipeline.stateful import snapshot
from pipeline.stateful.extractor import FactExtractor
from pipeline.stateful.facts import Fact
from pipeline.stateful.kinds import StatefulRule
from pipeline.stateful.state import KeyedState
from pipeline.tagging.cases import GOOD, Resource
from pipeline.tagging.docs import markdown
from pipeline.tagging.samples import SAMPLES
from pipeline.tagging.table import BUILTIN, TableError, load_table
from pipeline.tagging.tagset import TagSet

ROOT = Path(__file__).resolve().parents[4]
RULES = builtin_rules()
RESOURCES, EC2 = "resource-missing-required-tags", "ec2-instance-missing-required-tags"
ROLE = "arn:aws:sts::111122223333:assumed-role/ops/bob"

GOOD_ENTRY = """[types.widget]
title = "Widget"
source = "widgets.amazonaws.com"
arn = "arn:{partition}:widgets:{region}:{account}:widget/{id}"

[[types.widget.create]]
events = ["CreateWidget"]
ids = ["responseElements.widget.widgetId"]
tags = ["requestParameters.tags[]"]

[[types.widget.tag]]
events = ["TagResource"]
ids = ["requestParameters.resourceArn"]
tags = ["requestParameters.tags[]"]
"""


def write(tmp_path: Path, text: str, name: str = "table.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the table ------------------------------------------------------------------------------------


def test_the_built_in_table_covers_the_issue_types_and_each_has_samples() -> None:
    table = load_table()
    assert set(table) == {"ec2-instance", *SAMPLES}
    assert len(table) == 18
    for rtype in table.values():
        assert {op.kind for op in rtype.operations} == {"create", "tag", "untag", "delete"}, rtype.name


def test_a_good_table_file_loads(tmp_path) -> None:
    (widget,) = load_table(write(tmp_path, GOOD_ENTRY)).values()
    assert widget.resource_id("arn:aws:widgets:eu-west-1:444455556666:widget/w-1", "id") == (
        "w-1",
        "444455556666",
        "eu-west-1",
    )
    assert widget.resource_id("arn:aws:widgets:eu-west-1:444455556666:gadget/w-1", "id") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('ids = ["responseElements.widget.widgetId"]', 'ids = ["responseElements..widgetId"]'),
            "[types.widget].create[0].ids[0]: 'responseElements..widgetId' has an empty step",
        ),
        (
            ('ids = ["responseElements.widget.widgetId"]', 'ids = ["response.widgetId"]'),
            "[types.widget].create[0].ids[0]: 'response.widgetId' starts at 'response'; a path starts at one of",
        ),
        (
            ('ids = ["responseElements.widget.widgetId"]', 'ids = ["item.widgetId"]'),
            "(`item` needs the operation's `each`)",
        ),
        (
            (
                'tags = ["requestParameters.tags[]"]\n\n[[types.widget.tag]]',
                'tags = ["requestParameters.tags[x]"]\n\n[[types.widget.tag]]',
            ),
            "[types.widget].create[0].tags[0]: 'requestParameters.tags[x]': step 'tags[x]' is not a field name",
        ),
        (
            ('events = ["TagResource"]', 'events = ["TagResource"]\nreplace = "yes"'),
            "tag[0].replace must be true or false",
        ),
        (
            ('events = ["CreateWidget"]', 'events = ["CreateWidget"]\nreplace = true'),
            "create[0]: not for a create operation: key(s) ['replace']",
        ),
        (('events = ["CreateWidget"]', 'events = ["CreateWidget"]\nidz = []'), "create[0]: unknown key(s) ['idz']"),
        (
            ('arn = "arn:{partition}:widgets:{region}:{account}:widget/{id}"', 'arn = "arn:aws:widgets:::widget"'),
            "[types.widget].arn: 'arn:aws:widgets:::widget' is not an ARN template with {id}",
        ),
        (("{account}:widget", "{acct}:widget"), "has an unknown placeholder '{acct}'"),
        (
            (
                '[[types.widget.create]]\nevents = ["CreateWidget"]\nids = ["responseElements.widget.widgetId"]\n'
                'tags = ["requestParameters.tags[]"]\n',
                "",
            ),
            "no [[types.widget.create]] operation",
        ),
        (('source = "widgets.amazonaws.com"', 'source = "widgets"'), "is not an eventSource"),
        (("[types.widget]", "[types.Widget]"), "[types.Widget]: a type name is lower-case letters"),
        (("[types.widget]", '[types.widget]\ncolour = "blue"'), "[types.widget]: unknown key(s) ['colour']"),
        (("[types.widget]", "version = 2\n[types.widget]"), "a resource table holds [types.<name>] entries only"),
        (('title = "Widget"', 'title = "Widget'), "is not valid TOML"),
    ],
)
def test_a_bad_table_entry_is_refused_at_load_naming_the_file_the_entry_and_the_key(tmp_path, change, message):
    old, new = change
    assert old in GOOD_ENTRY
    path = write(tmp_path, GOOD_ENTRY.replace(old, new, 1))
    with pytest.raises(TableError) as raised:
        load_table(path)
    assert str(raised.value).startswith(str(path)) and message in str(raised.value), str(raised.value)
    assert isinstance(raised.value, ConfigError)  # the CLI reports it as a configuration error, exit 2


def test_the_built_in_table_names_itself_relative_to_the_package(tmp_path) -> None:
    assert BUILTIN.name == "resources.toml"
    broken = BUILTIN.read_text().replace('ids = ["requestParameters.bucketName"]', 'ids = ["bucketName"]', 1)
    copy = write(tmp_path, broken, "resources.toml")
    with pytest.raises(TableError, match=r"\[types.s3-bucket\].create\[0\].ids\[0\]: 'bucketName' starts at"):
        load_table(copy)


def test_docs_show_the_resource_table() -> None:
    doc = (ROOT / "docs" / "rules.md").read_text()
    table = re.search(r"<!-- tag-table:start -->\n(.*?)<!-- tag-table:end -->", doc, re.S)
    assert table is not None and table.group(1) == markdown(load_table()), "docs/rules.md: regenerate the tag table"


# --- the schema -----------------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    return write(tmp_path, text, "trailwarden.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tags]\nrequired = { Owner = "([a-z" }\n', "tags.required.Owner: '([a-z' is not a valid regular expression"),
        (
            '[tags.types.s3-bucket]\nrequired = { DataClassification = "(public" }\n',
            "tags.types.s3-bucket.required.DataClassification: '(public' is not a valid regular expression",
        ),
        (
            '[tags.types.s3-bucket]\ngrace = "8d"\n',
            "tags.types.s3-bucket.grace: '8d' must be a duration above 0 and at most",
        ),
        ('[tags]\ngrace = "soon"\n', 'tags.grace: "soon" is not a duration'),
        ("[tags]\ngrace = 900\n", "tags.grace = 900 should be a str like the default '15m'"),
        (
            '[tags.types.s3-bukket]\ngrace = "1h"\n',
            "tags.types.s3-bukket: unknown resource type 's3-bukket'; the types are",
        ),
        ('[tags.types.sqs-queue]\nenabled = "no"\n', "tags.types.sqs-queue.enabled must be true or false"),
        ("[tags.types.sqs-queue]\nrequire = {}\n", "tags.types.sqs-queue: unknown key(s) ['require']"),
        ("[tags]\nrequired = { Owner = 3 }\n", "tags.required.Owner = 3 must be a string"),
        ('[tags]\nowner = "x"\n', "[tags] has unknown key(s) ['owner']; it takes grace, required, types"),
        (
            f'[rules.{RESOURCES}]\nrequired = {{ Owner = "[" }}\n',
            f"rules.{RESOURCES}.required.Owner: '[' is not a valid",
        ),
    ],
)
def test_a_bad_schema_is_refused_at_load_naming_the_key(tmp_path, capsys, text, message):
    path = _config(tmp_path, text)
    assert main(["config", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and str(path) in err and message in err, err
    with pytest.raises(ConfigError, match=re.escape(message)):
        Detector(config=Config.load(path))  # both stages bind the rules this way: nothing starts


def test_a_scan_stops_on_a_bad_schema_before_reading_anything(tmp_path, capsys):
    path = _config(tmp_path, '[tags.types.rds-instance]\nrequired = { Owner = "*" }\n')
    trail = write(tmp_path, "", "trail.jsonl")
    assert main(["scan", str(trail), "--config", str(path), "-q"]) == 2
    assert "tags.types.rds-instance.required.Owner" in capsys.readouterr().err


def test_tags_sets_both_rules_and_a_rule_section_wins_for_that_rule(tmp_path):
    config = Config.load(
        _config(tmp_path, f'[tags]\nrequired = {{ Team = "" }}\ngrace = "5m"\n[rules.{EC2}]\ngrace = "2m"\n')
    )
    resources, ec2 = config.params(REGISTRY[RESOURCES]), config.params(REGISTRY[EC2])
    assert resources.required == ec2.required == {"Team": ""}
    assert (resources.grace, ec2.grace) == ("5m", "2m")
    assert resources.path(RESOURCES, "grace") == "tags.grace" and ec2.path(EC2, "grace") == f"rules.{EC2}.grace"


def test_config_prints_the_tags_section(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "\n[tags]\n" in out and '# required = { Owner = "", CostCenter = "", Environment = "" }' in out
    assert '# grace = "15m"' in out and "#   [tags.types.s3-bucket]" in out


# --- findings -------------------------------------------------------------------------------------


def test_the_finding_names_type_resource_missing_and_invalid_tags_and_creator():
    bucket, db = Resource(SAMPLES["s3-bucket"]), Resource(SAMPLES["rds-instance"])
    params = {"required": {"Owner": "", "CostCenter": r"cc-\d{4}", "Environment": ""}}
    found = run_events(
        REGISTRY[RESOURCES],
        [bucket.create(0), db.create(0, {"Owner": "bob", "CostCenter": "x"}), later(20)],
        params=params,
    )
    by_type = {f.context["resource_type"]: f for f in found}
    s3, rds = by_type["s3-bucket"], by_type["rds-instance"]
    assert s3.resources == (f"arn:aws:s3:::{bucket.id}",) and s3.context["missing"] == list(params["required"])
    assert rds.resources == (f"arn:aws:rds:us-east-1:111122223333:db:{db.id}",)
    assert rds.context["missing"] == ["Environment"] and rds.context["invalid"] == {"CostCenter": "x"}
    assert rds.context["created_by"] == rds.principal == "arn:aws:iam::111122223333:user/alice"
    assert "RDS DB instance" in rds.summary and "CostCenter='x' does not match" in rds.summary


def test_a_removal_lapse_is_the_remover_s_finding_and_still_names_the_creator():
    queue = Resource(SAMPLES["sqs-queue"])
    removal = {
        **queue.untag(30, ["Owner"]),
        "userIdentity": {
            "type": "AssumedRole",
            "arn": ROLE,
            "accountId": "111122223333",
            "principalId": "AROAEXAMPLE:bob",
        },
    }
    (finding,) = run_events(REGISTRY[RESOURCES], [queue.create(0, GOOD), removal, later(50)])
    assert finding.principal == ROLE and finding.context["created_by"] == "arn:aws:iam::111122223333:user/alice"
    assert finding.context["missing"] == ["Owner"]


def test_only_the_schema_s_tags_travel_to_stage_two():
    volume = Resource(SAMPLES["ebs-volume"])
    record = complete_record(volume.create(0, {**GOOD, "Name": "scratch", "Backup": "daily"}))
    (fact,) = FactExtractor.for_rules([REGISTRY[RESOURCES]]).facts(Event.from_record(record))
    assert fact.step == "start" and fact.fields == {"tags": GOOD}
    assert fact.key == f"111122223333:us-east-1:ebs-volume:{volume.id}"


# --- state ----------------------------------------------------------------------------------------


def _state(config: dict | None = None) -> KeyedState:
    rules = [r for r in RULES if isinstance(r, StatefulRule)]
    return KeyedState.for_rules(rules, Config.from_dict(config or {}))


def _start(key: str, t: float, tags: dict | None = None, eid: str = "") -> Fact:
    return Fact(
        RESOURCES,
        key,
        eid or f"e-{key}-{t}",
        t,
        "start",
        fields={"tags": tags} if tags else None,
        account="111122223333",
        region="us-east-1",
        principal=ROLE,
    )


def test_resources_with_the_same_tags_share_one_tag_set():
    state = _state()
    keys = [f"111122223333:us-east-1:sqs-queue:q{i}" for i in range(50)]
    state.add([_start(k, 1_720_000_000.0, GOOD) for k in keys])
    state.flush()
    values = [state.states[RESOURCES][k].value for k in keys]
    assert len({id(v) for v in values}) == 1
    value = values[0]
    assert isinstance(value, TagSet) and dict(value) == GOOD and value.creator == ROLE


def test_a_tag_set_reads_as_a_mapping_of_the_tags_present():
    """Its values(), items() and get() are a Mapping's (its aligned tuple must not shadow values())."""
    state = _state()
    key = "111122223333:us-east-1:sqs-queue:q1"
    state.add([_start(key, 1_720_000_000.0, GOOD)])
    state.flush()
    value = state.states[RESOURCES][key].value
    assert isinstance(value, TagSet)
    assert sorted(value.values()) == sorted(GOOD.values())
    assert dict(value.items()) == GOOD
    assert value.get("no-such-tag") is None


def test_a_snapshot_restores_tag_sets_under_the_schema_of_the_day():
    """A schema changed between a snapshot and its restore applies to the resources watched from their
    next tag change on; a type turned off is kept inert."""
    t0 = 1_720_000_000.0
    bucket, queue = "111122223333::s3-bucket:acme-logs", "111122223333:us-east-1:sqs-queue:jobs"
    before = _state()
    before.add([_start(bucket, t0, GOOD), _start(queue, t0, GOOD)])
    before.add([Fact("console-login-brute-force", "203.0.113.9", "moves-time", t0 + 300, source_ip="203.0.113.9")])
    assert len(before.states[RESOURCES]) == 2  # applied, not pending
    data = snapshot.dumps(before)
    stricter = {
        "tags": {
            "types": {
                "s3-bucket": {"required": {**dict.fromkeys(GOOD, ""), "Retention": ""}},
                "sqs-queue": {"enabled": False},
            }
        }
    }
    after = snapshot.load_into(_state(stricter), data)
    restored = after.states[RESOURCES]
    assert dict(restored[bucket].value) == GOOD and restored[bucket].value.creator == ROLE
    assert restored[queue].value is None  # a type no longer watched: kept inert, never a finding
    changed = Fact(
        RESOURCES,
        bucket,
        "owner-changed",
        t0 + 400,
        "tags",
        fields={"set": {"Owner": "carol"}},
        account="111122223333",
        principal=ROLE,
    )
    removed = Fact(RESOURCES, queue, "queue-untagged", t0 + 400, "tags", fields={"all": True}, principal=ROLE)
    moved_on = Fact("console-login-brute-force", "203.0.113.9", "later", t0 + 3600, source_ip="203.0.113.9")
    found = [f for f in after.add([changed, removed, moved_on]) + after.flush() if f.rule_id == RESOURCES]
    assert [(f.context["resource_id"], f.context["missing"]) for f in found] == [("acme-logs", ["Retention"])]


def test_an_instance_restored_without_a_tag_set_keeps_its_type_s_grace():
    """An EC2 instance saved by an earlier release with no tags (value null) keeps the grace of its type
    after a tag change, so its timer still fires."""
    t0 = 1_720_000_000.0
    key = "111122223333:us-east-1:i-0a1b2c3d4e5f60001"
    config = {"tags": {"types": {"ec2-instance": {"grace": "5m"}}}}
    before = _state(config)
    before.add(
        [
            Fact(EC2, key, "launch", t0, "start", principal=ROLE),
            Fact("console-login-brute-force", "203.0.113.9", "moves-time", t0 + 130, source_ip="203.0.113.9"),
        ]
    )
    saved = snapshot.to_dict(before)
    (row,) = [r for k, r in saved["rules"][EC2]["keys"] if k == key]
    values = saved["rules"][EC2]["shared"]["value"]
    row[0] = len(values)  # what a release before the resource table wrote for an instance without tags:
    values.append(None)
    after = snapshot.load_into(_state(config), saved)
    assert after.states[EC2][key].value is None
    owner = Fact(EC2, key, "owner", t0 + 140, "tags", fields={"set": {"Owner": "carol"}}, principal=ROLE)
    moved_on = Fact("console-login-brute-force", "203.0.113.9", "later", t0 + 900, source_ip="203.0.113.9")
    (finding,) = [f for f in after.add([owner, moved_on]) + after.flush() if f.rule_id == EC2]
    assert finding.context["window_seconds"] == 300 and finding.context["problems"] == [
        "CostCenter missing",
        "Environment missing",
    ]
