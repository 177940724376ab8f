"""The cases every resource type of resource-missing-required-tags is tested with, built from the
realistic calls of `samples`: untagged for good, tagged at creation, tagged within the grace and after
it, tags replaced, a required tag removed (the clock starts again), deleted before the grace, and the
failed creation. The default grace (15 minutes) applies; times are minutes after the case's start."""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT, BASE_TIME, call, failed, later
from pipeline.finding import iso_time
from pipeline.rule import Case
from pipeline.tagging.samples import Call, Sample, Tags, name_of

REGION = "us-east-1"
GOOD = {"Owner": "alice", "CostCenter": "cc-4410", "Environment": "prod"}
COST_CENTER = {"required": {"Owner": "", "CostCenter": r"cc-[0-9]{4}", "Environment": ""}}


def record(made: Call, minutes: float, **fields: Any) -> dict[str, Any]:
    """A partial CloudTrail record of `made` at `minutes` after the case's start."""
    return call(
        made.source, made.name, made.request, made.response, eventTime=iso_time(BASE_TIME + minutes * 60), **fields
    )


class Resource:
    """One resource of a sample's type, and the records of what is done to it."""

    def __init__(self, sample: Sample, seed: str = "case", account: str = ACCOUNT, region: str = REGION) -> None:
        self.sample, self.account, self.region = sample, account, region
        self.id = name_of(sample.type, seed)

    def create(self, minutes: float, tags: Tags | None = None, **fields: Any) -> dict[str, Any]:
        return record(self.sample.create(self.id, tags, self.account, self.region), minutes, **fields)

    def failed_create(self, minutes: float) -> dict[str, Any]:
        return self.create(minutes, None, responseElements=None, **failed("AccessDenied"))

    def tag(self, minutes: float, tags: Tags) -> dict[str, Any]:
        return record(self.sample.tag(self.id, tags, self.account, self.region), minutes)

    def untag(self, minutes: float, keys: list[str]) -> dict[str, Any]:
        return record(self.sample.untag(self.id, keys, self.account, self.region), minutes)

    def delete(self, minutes: float) -> dict[str, Any]:
        return record(self.sample.delete(self.id, self.account, self.region), minutes)


def type_cases(sample: Sample, title: str) -> list[Case]:
    """The cases of one resource type."""
    r = Resource(sample)
    cases = [
        Case(f"{title}: created without the required tags, never tagged", [r.create(0), later(20)], expect=1),
        Case(f"{title}: tagged at creation", [r.create(0, GOOD), later(20)], expect=0),
        Case(
            f"{title}: tagged a minute after creation, within the grace",
            [r.create(0), r.tag(1, GOOD), later(30)],
            expect=0,
        ),
        Case(f"{title}: tagged after the grace period", [r.create(0), r.tag(16, GOOD), later(30)], expect=1),
        Case(
            f"{title}: a required tag removed later starts the clock again",
            [r.create(0, GOOD), r.untag(30, ["Owner"]), later(50)],
            expect=1,
        ),
        Case(f"{title}: deleted within the grace period", [r.create(0), r.delete(5), later(20)], expect=0),
        Case(f"{title}: failed creation starts nothing", [r.failed_create(0), later(20)], expect=0),
    ]
    if sample.replace:
        cases.append(
            Case(
                f"{title}: tags replaced by a set without Owner",
                [r.create(0), r.tag(1, GOOD), r.tag(30, {"CostCenter": "cc-4410", "Environment": "prod"}), later(50)],
                expect=1,
            )
        )
    else:
        cases.append(
            Case(
                f"{title}: tagging other keys leaves the required tags",
                [r.create(0, GOOD), r.tag(30, {"Team": "payments"}), later(50)],
                expect=0,
            )
        )
        cases.append(
            Case(
                f"{title}: a required value replaced by one that does not match its pattern",
                [r.create(0, GOOD), r.tag(30, {"CostCenter": "n/a"}), later(50)],
                expect=1,
                params=COST_CENTER,
            )
        )
    return cases
