"""Backfill from the CloudTrail archive: the findings scan gives over the same files, the same ids, marked
replayed; only the day folders of the range are listed; events outside it are skipped."""

from __future__ import annotations

import gzip
import json
import os
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.sinks import DedupeTable
from infra import aws
from infra.workers import RouterPool
from pipeline.backfill import Backfill, LocalStore, TimeRange, local_location, parse_range, region_prefixes
from pipeline.cli import main
from pipeline.decode import DeadLetter
from pipeline.encode import cloudtrail_files
from pipeline.event import Event
from pipeline.routed import RoutedFile
from pipeline.scenario import build

DAY = 86400.0
T0 = datetime(2024, 8, 5, 0, 0, tzinfo=UTC).timestamp()


def write_archive(root: Path, records: list[dict[str, Any]], org_id: str = "") -> list[tuple[str, bytes]]:
    files = cloudtrail_files(records, seed=3, org_id=org_id)
    for key, data in files:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def findings(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_cli(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    rc = main(list(args))
    captured = capsysbinary.readouterr()
    return rc, findings(captured.out), captured.err.decode()


@pytest.fixture(scope="module")
def scenario() -> Any:
    return build(2500, seed=2)


@pytest.mark.parametrize("org_id", ["", "o-exampleorg1"])
def test_backfill_of_a_local_archive_gives_scans_findings_marked_replayed(
    tmp_path: Path, scenario: Any, org_id: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    archive = tmp_path / "archive"
    write_archive(archive, scenario.events, org_id)
    config = tmp_path / "scenario.toml"
    config.write_text(scenario.config_toml())
    day = datetime.fromtimestamp(scenario.start, UTC).strftime("%Y-%m-%d")

    rc, scanned, _ = run_cli(capsysbinary, "scan", str(archive), "--config", str(config), "--format", "json", "-q")
    assert rc == 0 and scanned
    rc, backfilled, err = run_cli(
        capsysbinary, "backfill", str(archive), "--from", day, "--to", day, "--config", str(config), "--format", "json"
    )
    assert rc == 0, err
    assert sorted(f["id"] for f in backfilled) == sorted(f["id"] for f in scanned)
    assert all(f["replayed"] for f in backfilled) and not any(f["replayed"] for f in scanned)
    assert {f["rule_id"] for f in backfilled} >= {e.rule_id for e in scenario.expected if e.stateful and e.present}
    assert f"events: {len(scenario.events):,}" in err and "outside the range: 0" in err


COUNTED = {
    "events",
    "findings",
    "facts",
    "duplicate facts",
    "tracked keys",
    "rule errors",
    "suppressed by rule",
    "dead letters",
}

USER_SIGMA = """\
title: Describe calls
id: 6f2b1c3e-7a59-4f0e-9d8c-0a1b2c3d4e5f
status: experimental
logsource:
  product: aws
  service: cloudtrail
detection:
  selection:
    eventName|startswith: Describe
  condition: selection
level: low
"""


def test_stage_one_in_worker_processes_gives_the_findings_of_one_process(
    tmp_path: Path, scenario: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Decoding and stage 1 on two worker processes, stage 2 here: the same findings (ids and all), in the
    same order, and the same counts as everything in one process; a corrupt gzip and an object that is not
    CloudTrail are counted as dead letters and the rest goes on; the workers run the --sigma rules too."""
    archive = tmp_path / "archive"
    files = write_archive(archive, scenario.events, "o-exampleorg1")
    folder = (archive / files[len(files) // 2][0]).parent
    (folder / "111122223333_CloudTrail_us-east-1_20240806T0000Z_corrupt.json.gz").write_bytes(
        b"\x1f\x8b\x08\x00 not gzip"
    )
    (folder / "111122223333_CloudTrail_us-east-1_20240806T0001Z_other.json.gz").write_bytes(
        gzip.compress(b'{"configurationItems": []}')
    )
    sigma = tmp_path / "sigma"
    sigma.mkdir()
    (sigma / "describe.yml").write_text(USER_SIGMA)
    config = tmp_path / "scenario.toml"
    config.write_text(scenario.config_toml())
    day = datetime.fromtimestamp(scenario.start, UTC).strftime("%Y-%m-%d")
    runs = {}
    for workers in ("1", "2"):
        dead = tmp_path / f"dead-{workers}.jsonl"
        rc, found, err = run_cli(
            capsysbinary,
            "backfill",
            str(archive),
            "--from",
            day,
            "--to",
            day,
            "--config",
            str(config),
            "--format",
            "json",
            "--workers",
            workers,
            "--all",
            "--sigma",
            str(sigma),
            "--dead-letters",
            str(dead),
        )
        assert rc == 0, err
        assert f"events: {len(scenario.events):,}" in err and "dead letters: 2" in err, err
        assert len(dead.read_bytes().splitlines()) == 2
        assert ("worker processes: 2" in err) == (workers == "2"), err
        runs[workers] = found, [line for line in err.splitlines() if line.strip().split(":")[0] in COUNTED]
    one, two = runs["1"], runs["2"]
    assert one[0] and [f["id"] for f in two[0]] == [f["id"] for f in one[0]]
    assert [{k: v for k, v in f.items() if k != "detected_at"} for f in two[0]] == [
        {k: v for k, v in f.items() if k != "detected_at"} for f in one[0]
    ]
    assert any(f["rule_id"] == "sigma-describe" for f in one[0]) and any(
        f["rule_id"].startswith("sigma-") for f in one[0]
    )
    # Each worker throttles its own first-seen refreshes, so they may send a remembered value again sooner.
    facts = {
        run: int(next(line for line in counts if line.strip().startswith("facts:")).split(":")[1].replace(",", ""))
        for run, (_, counts) in runs.items()
    }
    assert facts["2"] >= facts["1"] > 0
    same = [line for line in one[1] if not line.strip().startswith("facts:")]
    assert [line for line in two[1] if not line.strip().startswith("facts:")] == same and len(same) >= 5, same


class Crashing(RouterPool):
    """Worker processes that die on the first file."""

    def submit(self, data: bytes, origin: str, start: float, end: float, max_size: int) -> Future[RoutedFile]:
        return self.pool.submit(os._exit, 3)


def test_a_worker_that_dies_ends_the_run_with_what_to_do(
    tmp_path: Path, scenario: Any, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.commands.backfill as command

    write_archive(tmp_path, scenario.events[:200])
    monkeypatch.setattr(command, "RouterPool", Crashing)
    day = datetime.fromtimestamp(scenario.start, UTC).strftime("%Y-%m-%d")
    rc, _, err = run_cli(capsysbinary, "backfill", str(tmp_path), "--from", day, "--workers", "2", "-q")
    assert rc == 1 and "a worker process died" in err and "--workers 1" in err, err
    assert "Traceback" not in err


class Recording(LocalStore):
    """A local store that remembers which folders were listed."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: list[str] = []

    def files(self, prefix: str) -> list[tuple[str, int]]:
        self.listed.append(prefix)
        return super().files(prefix)


def three_days(tmp_path: Path) -> tuple[Recording, list[dict[str, Any]]]:
    records = []
    for i in range(3 * 48):  # every 30 minutes for three days, two accounts
        t = T0 + i * 1800
        account = "111111111111" if i % 2 else "222222222222"
        records.append(
            {
                "eventVersion": "1.09",
                "eventSource": "ec2.amazonaws.com",
                "eventName": "DescribeInstances",
                "eventTime": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "eventID": f"e-{i}",
                "awsRegion": "us-east-1",
                "recipientAccountId": account,
                "userIdentity": {"type": "IAMUser", "accountId": account, "userName": "u"},
            }
        )
    write_archive(tmp_path, records)
    return Recording(tmp_path), records


def test_only_the_range_days_are_listed_and_events_outside_it_are_skipped(tmp_path: Path) -> None:
    store, records = three_days(tmp_path)
    window = parse_range("2024-08-06", "2024-08-06")
    with Backfill(store, "", window, downloads=4) as job:
        items = list(job.items())
    assert {
        p.rsplit("/", 4)[-4:-1] == ["2024", "08", "06"] or p.rsplit("/", 4)[-4:-1] == ["2024", "08", "07"]
        for p in store.listed
    } == {True}  # the day and the day after (late deliveries), nothing else
    assert len(store.listed) == 2 * 2  # two accounts
    events = [i for i in items if isinstance(i, Event)]
    inside = [r["eventID"] for r in records if "2024-08-06" <= r["eventTime"] < "2024-08-07"]
    assert sorted(e.event_id for e in events) == sorted(inside) and len(inside) == 48
    assert [e.time for e in events] == sorted(e.time for e in events)
    # The file delivered just after midnight on the 6th holds the 5th's last events: read, then skipped.
    assert job.stats.outside_range > 0
    assert job.stats.files == job.stats.files_total


def test_a_time_range_within_a_day(tmp_path: Path) -> None:
    store, _ = three_days(tmp_path)
    window = parse_range("2024-08-06T06:00:00Z", "2024-08-06T08:00Z")
    with Backfill(store, "", window) as job:
        ids = [i.event_id for i in job.items() if isinstance(i, Event)]
    assert ids == ["e-60", "e-61", "e-62", "e-63", "e-64"]  # 06:00 through 08:00, both included


@pytest.mark.parametrize(("start", "end"), [("2024-08-06", "2024-08-05"), ("yesterday", None), ("2024-08-06", "x")])
def test_bad_ranges_are_refused(start: str, end: str | None) -> None:
    with pytest.raises(ValueError):
        parse_range(start, end)


def test_a_date_means_the_whole_day() -> None:
    window = parse_range("2024-08-06", "2024-08-06")
    assert window.start == datetime(2024, 8, 6, tzinfo=UTC).timestamp()
    assert window.start + DAY - 1 in window and window.start + DAY not in window
    assert [d.isoformat() for d in window.days()] == ["2024-08-06", "2024-08-07"]
    assert TimeRange(window.start, window.start).days()[-1].isoformat() == "2024-08-07"


def test_region_folders_are_found_from_any_level_of_the_layout(tmp_path: Path) -> None:
    record = {
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "eventTime": "2024-08-06T01:00:00Z",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "333333333333",
    }
    write_archive(tmp_path / "bucket" / "trails", [record, {**record, "awsRegion": "us-east-1"}], "o-exampleorg1")
    write_archive(tmp_path / "bucket" / "trails", [{**record, "recipientAccountId": "444444444444"}])
    digest = tmp_path / "bucket/trails/AWSLogs/444444444444/CloudTrail-Digest/eu-west-1/2024/08/06"
    digest.mkdir(parents=True)
    store = LocalStore(tmp_path / "bucket")
    org = "trails/AWSLogs/o-exampleorg1/333333333333/CloudTrail/"
    everything = [f"{org}eu-west-1/", f"{org}us-east-1/", "trails/AWSLogs/444444444444/CloudTrail/eu-west-1/"]
    assert region_prefixes(store, "trails") == sorted(everything)
    assert region_prefixes(store, "/trails/AWSLogs/") == sorted(everything)
    assert region_prefixes(store, "trails/AWSLogs/o-exampleorg1") == everything[:2]
    assert region_prefixes(store, "trails/AWSLogs/o-exampleorg1/333333333333/") == everything[:2]
    assert region_prefixes(store, org) == everything[:2]
    assert region_prefixes(store, f"{org}us-east-1") == [f"{org}us-east-1/"]
    assert region_prefixes(store, "elsewhere") == []
    with pytest.raises(ValueError):
        region_prefixes(store, f"{org}us-east-1/2024/")
    # A local directory inside the layout is rooted above AWSLogs.
    rooted, prefix = local_location(tmp_path / "bucket" / "trails" / "AWSLogs" / "444444444444")
    assert rooted.root == (tmp_path / "bucket" / "trails").resolve() and prefix == "AWSLogs/444444444444/"
    assert region_prefixes(rooted, prefix) == ["AWSLogs/444444444444/CloudTrail/eu-west-1/"]


class Flaky(LocalStore):
    def get(self, key: str) -> bytes:
        if "T03" in key.rsplit("/", 1)[1]:  # the files delivered between 03:00 and 04:00
            raise ConnectionError("reset by peer")
        return super().get(key)


def test_a_file_that_cannot_be_downloaded_is_a_dead_letter_and_the_rest_goes_on(tmp_path: Path) -> None:
    three_days(tmp_path)
    store = Flaky(tmp_path)
    with Backfill(store, "", parse_range("2024-08-05", "2024-08-07")) as job:
        items = list(job.items())
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert dead and all(d.reason.startswith("cannot download") for d in dead)
    assert job.stats.download_errors == len(dead) and job.stats.decode.dead_letters["cannot download"] == len(dead)
    assert len(dead) == 3 * 2  # each day, the two files (one per account) of that hour
    assert sum(isinstance(i, Event) for i in items) == 3 * 48 - len(dead)


def test_usage_errors_exit_2(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    for args in (
        ["backfill", str(tmp_path / "missing"), "--from", "2024-08-06"],
        ["backfill", str(tmp_path), "--from", "2024-08-06", "--to", "2024-08-01"],
        ["backfill", "s3://", "--from", "2024-08-06"],
        ["backfill", str(tmp_path), "--from", "2024-08-06", "--workers", "0"],
    ):
        rc, out, err = run_cli(capsysbinary, *args)
        assert rc == 2 and not out and err.startswith("trailwarden backfill: "), args


@pytest.mark.slow
def test_backfill_from_the_emulators_s3_gives_scans_findings_and_alerts_once(
    aws_target: aws.Target, tmp_path: Path, scenario: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    from infra import provision

    outputs = provision.provision(aws_target)
    bucket = outputs["TrailBucketName"]
    s3 = aws_target.client("s3")
    local = tmp_path / "copy"
    for key, data in write_archive(local, scenario.events, "o-exampleorg1"):
        s3.put_object(Bucket=bucket, Key=f"org/{key}", Body=data)
    config = tmp_path / "scenario.toml"
    config.write_text(scenario.config_toml())
    day = datetime.fromtimestamp(scenario.start, UTC).strftime("%Y-%m-%d")
    endpoint = ["--endpoint-url", aws_target.endpoint_url or ""]

    rc, scanned, _ = run_cli(capsysbinary, "scan", str(local), "--config", str(config), "--format", "json", "-q")
    assert rc == 0 and scanned
    common = [
        "backfill",
        f"s3://{bucket}/org",
        "--from",
        day,
        "--to",
        day,
        "--config",
        str(config),
        "--format",
        "json",
        *endpoint,
    ]
    rc, backfilled, err = run_cli(capsysbinary, *common, "--sinks", "--alert")
    assert rc == 0, err
    ids = sorted(f["id"] for f in backfilled)
    assert ids == sorted(f["id"] for f in scanned) and all(f["replayed"] for f in backfilled)
    assert f"published: {len(ids)}" in err
    assert DedupeTable(aws_target.client("dynamodb"), outputs["DedupeTableName"]).seen(ids) == set(ids)
    delivered = []
    for obj in s3.list_objects_v2(Bucket=outputs["FindingsBucketName"]).get("Contents", []):
        body = s3.get_object(Bucket=outputs["FindingsBucketName"], Key=obj["Key"])["Body"].read()
        body = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        delivered.extend(orjson.loads(line)["id"] for line in body.splitlines())
    assert sorted(delivered) == ids  # Firehose got each finding once

    # Again: the same ids, nothing alerted or delivered twice.
    rc, again, err = run_cli(capsysbinary, *common, "--alert")
    assert rc == 0 and sorted(f["id"] for f in again) == ids
    assert "published: 0" in err and f"already alerted: {len(ids)}" in err


class Tty:
    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_shows_files_events_and_the_current_day() -> None:
    from pipeline.backfill import BackfillStats
    from pipeline.commands.backfill import line
    from pipeline.progress import Display

    stats = BackfillStats(files_total=40, files=12, last_time=datetime(2024, 8, 6, 5, tzinfo=UTC).timestamp())
    tty = Tty()
    display = Display(stream=tty)
    display.update(line(stats, 5000, display.elapsed()))
    assert "12/40 files" in tty.text and "5,000 events" in tty.text and "day 2024-08-06" in tty.text
    display.clear()
    assert tty.text.endswith("\r\x1b[K")
    quiet = Tty()
    Display(enabled=False, stream=quiet).update(line(stats, 5000, 1.0))
    assert quiet.text == ""


def test_without_alert_the_dedupe_table_is_read_never_marked() -> None:
    from consumers.sinks.dedupe import MemoryDedupe, ReadOnlyDedupe

    table = MemoryDedupe()
    table.mark(["a"])
    read_only = ReadOnlyDedupe(table)
    assert read_only.seen(["a", "b"]) == {"a"}
    assert read_only.mark(["b"]) == 0 and table.seen(["b"]) == set()
