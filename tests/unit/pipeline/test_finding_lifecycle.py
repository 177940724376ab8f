"""The finding lifecycle in the core: stateful findings resolve with the same id when their condition
clears (absence: tags added or the resource deleted, an MFA device enabled; threshold: a quiet window
after the burst), resolutions survive a snapshot, and the alert policy treats a resolution as its finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.alerting import AlertPolicy
from pipeline.cases import later
from pipeline.cli import main
from pipeline.config import Config
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.finding import OPEN, RESOLVED, Finding
from pipeline.rules import console_sign_in_failures as brute
from pipeline.rules import ec2_instance_missing_required_tags as tags
from pipeline.rules import login_profile_without_mfa as mfa
from pipeline.ruletest import complete_record
from pipeline.stateful import snapshot
from pipeline.stateful.facts import Fact
from pipeline.stateful.state import KeyedState

TAGS, MFA, BRUTE = ("ec2-instance-missing-required-tags", "iam-login-profile-without-mfa", "console-login-brute-force")
I1 = tags.I1


def scan(rule_id: str, partials: list[dict[str, Any]]) -> list[Finding]:
    detector = Detector(only=[rule_id])
    found: list[Finding] = []
    for i, partial in enumerate(partials):
        event = Event.from_record(complete_record(partial, i, "lifecycle"))
        assert not isinstance(event, str), event
        found += detector.process(event)
    return found + detector.finish()


def lifecycle(found: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.id, f.status, f.resolution) for f in found]


def test_an_untagged_instance_tagged_after_its_finding_resolves_it_with_the_same_id():
    found = scan(TAGS, [tags._run(0, [I1]), later(20), tags._tags(22, [I1], tags.GOOD), later(30)])
    opened, resolved = found
    assert lifecycle(found) == [(opened.id, OPEN, ""), (opened.id, RESOLVED, "tags added")]
    d = resolved.to_dict()
    assert d["status"] == "resolved" and d["occurrences"] == 1
    assert d["updated_at"] > opened.to_dict()["updated_at"] == opened.to_dict()["event_time"]
    assert d["event_time"] == opened.to_dict()["event_time"]  # still the finding's time; updated_at moved
    assert resolved.event_ids[-1] != opened.event_ids[-1]  # the CreateTags that resolved it is named
    assert resolved.resources == opened.resources


def test_tags_still_missing_a_required_key_do_not_resolve_and_the_missing_one_does():
    partial = {"Owner": "alice", "CostCenter": "cc-4410"}
    found = scan(TAGS, [tags._run(0, [I1]), later(20), tags._tags(22, [I1], partial), later(30)])
    assert [f.status for f in found] == [OPEN]
    found = scan(
        TAGS,
        [
            tags._run(0, [I1]),
            later(20),
            tags._tags(22, [I1], partial),
            tags._tags(25, [I1], {"Environment": "prod"}),
            later(30),
        ],
    )
    assert [(f.status, f.resolution) for f in found] == [(OPEN, ""), (RESOLVED, "tags added")]


def test_an_instance_terminated_after_its_finding_resolves_it_as_deleted_and_before_raises_nothing():
    found = scan(TAGS, [tags._run(0, [I1]), later(20), tags._terminate(40, [I1]), later(50)])
    assert lifecycle(found) == [(found[0].id, OPEN, ""), (found[0].id, RESOLVED, "resource deleted")]
    assert scan(TAGS, [tags._run(0, [I1]), tags._terminate(5, [I1]), later(50)]) == []


def test_a_second_lapse_is_a_second_finding_and_resolves_on_its_own():
    found = scan(
        TAGS,
        [
            tags._run(0, [I1]),
            tags._tags(20, [I1], tags.GOOD),
            tags._tags(30, [I1], {"Owner": None}, "DeleteTags"),
            later(50),
            tags._tags(55, [I1], {"Owner": "bob"}),
            later(60),
        ],
    )
    first, _, second, _ = found
    assert first.id != second.id
    assert lifecycle(found) == [
        (first.id, OPEN, ""),
        (first.id, RESOLVED, "tags added"),
        (second.id, OPEN, ""),
        (second.id, RESOLVED, "tags added"),
    ]


def test_a_login_profile_without_mfa_resolves_when_the_user_enables_a_device_not_another_user():
    hour = 60
    base = [mfa._ev(0, "CreateLoginProfile"), mfa._later(25 * hour)]
    found = scan(MFA, [*base, mfa._ev(26 * hour, "EnableMFADevice", **mfa.MFA), mfa._later(27 * hour)])
    assert lifecycle(found) == [(found[0].id, OPEN, ""), (found[0].id, RESOLVED, "MFA device enabled")]
    found = scan(MFA, [*base, mfa._ev(26 * hour, "EnableMFADevice", user="bob", **mfa.MFA), mfa._later(27 * hour)])
    assert [f.status for f in found] == [OPEN]


def _burst(start: float, n: int = 10, step: float = 0.1) -> list[dict[str, Any]]:
    return [brute._fail(start + i * step) for i in range(n)]


def _quiet_probe(t: float) -> dict[str, Any]:
    return brute._ok(t, ip="198.51.100.9")  # any event moving event time on


def test_a_burst_resolves_when_a_quiet_period_of_its_window_follows_its_last_failure():
    # Failures at minutes 0 to 0.9, one more at 8: the window (10 min) of quiet ends at minute 18.
    events = [*_burst(0), brute._fail(8)]
    assert [f.status for f in scan(BRUTE, [*events, _quiet_probe(17.9)])] == [OPEN]
    found = scan(BRUTE, [*events, _quiet_probe(18)])
    assert lifecycle(found) == [(found[0].id, OPEN, ""), (found[0].id, RESOLVED, "burst stopped")]
    assert [f.occurrences for f in found] == [1, 2]  # the tenth failure raised it, one more came after
    # The finding was raised by the tenth failure (minute 0.9); it resolved at minute 18.
    assert found[1].updated_at == pytest.approx(found[0].event_time - 0.9 * 60 + 18 * 60)


def test_a_burst_outlasting_the_dedup_period_resolves_the_old_finding_as_continued():
    # A failure every 30 s for 70 minutes: the dedup period is 1h, so a second finding opens at minute 60+.
    found = scan(BRUTE, [brute._fail(i * 0.5) for i in range(140)])
    assert [(f.status, f.resolution) for f in found] == [
        (OPEN, ""),
        (RESOLVED, "continued as a new finding"),
        (OPEN, ""),
    ]
    assert found[0].id == found[1].id != found[2].id
    # Raised by the tenth failure (minute 4.5), the next finding by the first failure past the hour (minute 64.5).
    assert found[1].occurrences == 120


def test_a_threshold_finding_open_at_a_snapshot_resolves_after_the_restore_as_without_it():
    def facts() -> list[Fact]:
        out = [Fact(BRUTE, "203.0.113.7", f"e{i}", 1000.0 + i, account="111122223333") for i in range(10)]
        return [*out, Fact(BRUTE, "other", "z", 3000.0, account="111122223333")]

    def fresh() -> KeyedState:
        return KeyedState.for_rules([r for r in Detector(only=[BRUTE]).rules], Config.from_dict())

    whole = fresh()
    straight = [f for fact in facts() for f in whole.add([fact])] + whole.flush()
    before = fresh()
    first = [f for fact in facts()[:10] for f in before.add([fact])] + before.flush()
    after = snapshot.load_into(fresh(), snapshot.dumps(before))
    rest = after.add(facts()[10:]) + after.flush()
    assert [f.status for f in first] == [OPEN] and [f.status for f in rest] == [RESOLVED]
    assert lifecycle(first + rest) == lifecycle(straight)
    assert rest[0].updated_at == 1009.0 + 600


@pytest.mark.parametrize(
    ("section", "alerted"), [({}, False), ({"min_severity": "low"}, True), ({"rules": [TAGS]}, True)]
)
def test_a_resolution_is_alerted_exactly_when_its_finding_is(section, alerted):
    policy = AlertPolicy.from_config(Config.from_dict({"alerts": section}))
    found = scan(TAGS, [tags._run(0, [I1]), later(20), tags._tags(22, [I1], tags.GOOD), later(30)])
    assert [policy.alerts(f) for f in found] == [alerted, alerted]
    assert all(policy.archives(f) for f in found)


TAGGED_LATE = [tags._run(0, [I1]), later(20), tags._tags(22, [I1], tags.GOOD), later(30)]


def test_scan_and_backfill_give_the_same_lifecycle_and_the_table_shows_the_status(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    from tests.unit.pipeline.test_backfill import run_cli, write_archive

    records = [complete_record(p, i, "lifecycle") for i, p in enumerate(TAGGED_LATE)]
    archive = tmp_path / "archive"
    write_archive(archive, records)
    day = records[0]["eventTime"][:10]
    rc, scanned, _ = run_cli(capsysbinary, "scan", str(archive), "--format", "json", "-q")
    assert rc == 0
    rc, backfilled, err = run_cli(
        capsysbinary, "backfill", str(archive), "--from", day, "--to", day, "--format", "json"
    )
    assert rc == 0, err

    def lifecycle_of(found: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        return [(f["id"], f["status"], f["resolution"], f["updated_at"]) for f in found if f["rule_id"] == TAGS]

    assert [s for _, s, _, _ in lifecycle_of(scanned)] == ["open", "resolved"]
    assert lifecycle_of(backfilled) == lifecycle_of(scanned)
    assert all(f["replayed"] for f in backfilled)
    main(["scan", str(archive), "--format", "table", "-q"])
    table = capsysbinary.readouterr().out.decode().splitlines()
    assert table[0].split()[:3] == ["TIME", "SEVERITY", "STATUS"]
    assert [line.split()[2] for line in table[1:]] == ["open", "resolved"]
    assert "[tags added]" in table[2]
