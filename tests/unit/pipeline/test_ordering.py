"""Event-time ordering across inputs: archive layout, streams, the merge, and memory bounded by open files."""

from __future__ import annotations

import gzip
import io
import itertools
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from pipeline import ordering
from pipeline.decode import DeadLetter, DecodeStats
from pipeline.encode import cloudtrail_files
from pipeline.event import Event
from pipeline.ordering import archive_path, group, merge, windowed
from pipeline.sources import Reader, resolve

T0 = datetime(2024, 8, 6, 4, 30, tzinfo=UTC).timestamp()


def record(t: float, account: str = "111111111111", region: str = "us-east-1", n: int = 0) -> dict[str, object]:
    return {
        "eventVersion": "1.09",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "eventTime": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventID": f"id-{n}",
        "awsRegion": region,
        "recipientAccountId": account,
        "userIdentity": {"type": "IAMUser", "accountId": account, "userName": "u"},
    }


def event(t: float, n: int = 0) -> Event:
    ev = Event.from_record(record(t, n=n))
    assert isinstance(ev, Event)
    return ev


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/08/06/123456789012_CloudTrail_us-east-1_20240806T0435Z_x.json.gz",
            ("", "123456789012", "us-east-1", date(2024, 8, 6)),
        ),
        (
            "/data/trail/AWSLogs/o-abcdefghij/123456789012/CloudTrail/eu-west-1/2023/12/31/f.json.gz",
            ("o-abcdefghij", "123456789012", "eu-west-1", date(2023, 12, 31)),
        ),
        (
            "prefix/AWSLogs/o-abcdefghij/210987654321/CloudTrail/ap-south-1/2024/02/29/f.json",
            ("o-abcdefghij", "210987654321", "ap-south-1", date(2024, 2, 29)),
        ),
    ],
)
def test_archive_path_reads_account_region_and_day(path: str, expected: tuple[str, str, str, date]) -> None:
    where = archive_path(path)
    assert where is not None
    assert (where.org, where.account, where.region, where.day) == expected
    assert where.name == path.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    "path",
    [
        "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/08/06/digest.json.gz",
        "AWSLogs/123456789012/CloudTrail/us-east-1/2024/13/06/f.json.gz",  # no 13th month
        "AWSLogs/123456789012/CloudTrail/us-east-1/2024/08/06/",
        "MyLogs/123456789012/CloudTrail/us-east-1/2024/08/06/f.json.gz",
        "trail/events.jsonl",
    ],
)
def test_other_paths_are_not_archive_files(path: str) -> None:
    assert archive_path(path) is None


def test_group_makes_one_stream_per_account_region_in_day_and_name_order() -> None:
    def key(org: str, account: str, region: str, day: str, stamp: str) -> str:
        base = f"AWSLogs/{org}/{account}" if org else f"AWSLogs/{account}"
        return f"{base}/CloudTrail/{region}/{day}/{account}_CloudTrail_{region}_{stamp}_R.json.gz"

    keys = [
        key("", "111111111111", "us-east-1", f"2024/08/{d:02d}", f"202408{d:02d}T{h:02d}00Z")
        for d in (5, 6)
        for h in (0, 12, 23)
    ]
    keys += [key("", "111111111111", "eu-west-1", "2024/08/06", "20240806T0100Z")]
    keys += [key("o-org1234567", "222222222222", "us-east-1", f"2024/08/0{d}", f"2024080{d}T0500Z") for d in (5, 6)]
    keys += [key("o-org1234567", "111111111111", "us-east-1", "2024/08/06", "20240806T0500Z")]  # same account, org
    shuffled = keys[:]
    random.Random(3).shuffle(shuffled)
    others = ["notes/a.json", "notes/b.json"]
    streams = group(shuffled + others, lambda k: k, lambda k: k.split("/", 1)[0], window=4)

    by_key = {s.key: s for s in streams}
    assert set(by_key) == {
        ("archive", "", "111111111111", "us-east-1"),
        ("archive", "", "111111111111", "eu-west-1"),
        ("archive", "o-org1234567", "222222222222", "us-east-1"),
        ("archive", "o-org1234567", "111111111111", "us-east-1"),
        ("root", "notes"),
    }
    assert by_key[("archive", "", "111111111111", "us-east-1")].files == keys[:6]  # day, then delivery time
    assert by_key[("archive", "o-org1234567", "222222222222", "us-east-1")].files == keys[7:9]
    assert by_key[("root", "notes")].files == others and by_key[("root", "notes")].window == 4
    assert all(s.window == 1 for s in streams if s.key[0] == "archive")
    assert sum(len(s.files) for s in streams) == len(keys) + len(others)


def test_merge_gives_event_time_order_across_streams_and_ties_to_the_earlier_stream() -> None:
    rng = random.Random(7)
    streams = []
    n = 0
    for s in range(5):
        times = sorted(T0 + rng.randrange(0, 3600) for _ in range(200))
        files = []
        for i in range(0, len(times), 40):
            files.append([event(t, n + j) for j, t in enumerate(times[i : i + 40])])
        n += len(times)
        streams.append((s, files))
    out = list(merge([windowed(iter(files)) for _, files in streams]))
    assert [e.time for e in out] == sorted(e.time for e in out)  # type: ignore[union-attr]
    assert len(out) == 1000
    # Among equal times, earlier streams first.
    index = {ev.event_id: s for s, files in streams for f in files for ev in f}
    for a, b in itertools.pairwise(out):
        if a.time == b.time:  # type: ignore[union-attr]
            assert index[a.event_id] <= index[b.event_id]  # type: ignore[union-attr]


class Files:
    """File loaders that count how many files are held (loaded and not yet exhausted) at once."""

    def __init__(self) -> None:
        self.held = 0
        self.most = 0
        self.loaded = 0

    def file(self, items: list[Event | DeadLetter]) -> Iterator[Event | DeadLetter]:
        self.loaded += 1
        self.held += 1
        self.most = max(self.most, self.held)
        try:
            yield from items
        finally:
            self.held -= 1


def test_memory_is_bounded_by_one_file_per_stream_and_the_window() -> None:
    files = Files()
    rng = random.Random(11)
    per_stream = []
    n = 0
    for _ in range(4):
        chunks = []
        t = T0
        for _ in range(30):
            chunk = []
            for _ in range(20):
                t += rng.randrange(0, 30)
                chunk.append(event(t, n))
                n += 1
            chunks.append(chunk)
        per_stream.append(chunks)
    out = list(merge([windowed(files.file(c) for c in chunks) for chunks in per_stream]))
    assert len(out) == n and files.loaded == 120
    assert files.most <= 4  # one file per stream, though 120 files were read
    assert [e.time for e in out] == sorted(e.time for e in out)  # type: ignore[union-attr]

    files = Files()
    list(windowed((files.file(c) for c in per_stream[0]), window=3))
    assert files.most == 3


def test_a_window_merges_files_that_overlap_in_time_and_width_one_keeps_file_order() -> None:
    first = [event(T0 + 10, 1), event(T0 + 30, 2)]
    second = [event(T0 + 20, 3), event(T0 + 40, 4)]
    merged = [e.event_id for _, e in windowed(iter([first, second]), window=2)]  # type: ignore[union-attr]
    assert merged == ["id-1", "id-3", "id-2", "id-4"]
    in_order = [e.event_id for _, e in windowed(iter([first, second]), window=1)]  # type: ignore[union-attr]
    assert in_order == ["id-1", "id-2", "id-3", "id-4"]


def test_dead_letters_pass_at_once_keyed_with_the_last_event_time() -> None:
    dead = DeadLetter("not JSON", "x")
    late = [event(T0 + 500, 1), dead, event(T0 + 900, 2)]
    early = [event(T0 + 100, 3), event(T0 + 600, 4)]
    keys = list(windowed(iter([late])))
    assert [k for k, _ in keys] == [T0 + 500, T0 + 500, T0 + 900]
    out = list(merge([windowed(iter([[dead]])), windowed(iter([late])), windowed(iter([early]))]))
    assert out[0] is dead  # a stream of nothing but dead letters never waits
    assert [getattr(i, "event_id", "dead") for i in out[1:]] == ["id-3", "id-1", "dead", "id-4", "id-2"]


def write_archive(root: Path, records: list[dict[str, object]], org_id: str = "") -> list[Path]:
    paths = []
    for key, data in cloudtrail_files(records, seed=1, org_id=org_id):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


@pytest.mark.parametrize("org_id", ["", "o-exampleorg1"])
def test_an_archive_directory_is_read_in_event_time_order_across_accounts(tmp_path: Path, org_id: str) -> None:
    rng = random.Random(5)
    records = [
        record(
            T0 + i * 7 + rng.random() * 5,
            account=rng.choice(["111111111111", "222222222222"]),
            region=rng.choice(["us-east-1", "eu-west-1"]),
            n=i,
        )
        for i in range(3000)
    ]
    paths = write_archive(tmp_path, records, org_id)
    assert len({p.parent.parent.parent.parent for p in paths}) == 4  # two accounts x two regions
    reader = Reader(resolve([str(tmp_path)]), DecodeStats())
    path_order = [e.time for e in reader.items()]  # type: ignore[union-attr]
    assert path_order != sorted(path_order)  # the layout alone is not time order
    reader = Reader(resolve([str(tmp_path)]), DecodeStats())
    times = [e.time for e in ordering.ordered(reader)]  # type: ignore[union-attr]
    assert len(times) == 3000 and times == sorted(times)
    assert reader.bytes_done == reader.total  # progress still counts every byte


def test_a_file_is_sorted_within_the_cap_and_beyond_it_keeps_its_order(tmp_path: Path) -> None:
    rng = random.Random(2)
    records = [record(T0 + rng.randrange(0, 10_000), n=i) for i in range(400)]
    lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
    (tmp_path / "small.jsonl.gz").write_bytes(gzip.compress(lines))
    (tmp_path / "whole.json").write_bytes(orjson.dumps({"Records": records}))
    for name in ("small.jsonl.gz", "whole.json"):
        reader = Reader(resolve([str(tmp_path / name)]))
        times = [e.time for e in ordering.ordered(reader)]  # type: ignore[union-attr]
        assert times == sorted(times) and len(times) == 400, name
    # JSON lines over the cap: streamed, in file order (memory stays bounded by the cap).
    reader = Reader(resolve([str(tmp_path / "small.jsonl.gz")]), max_size=len(lines) // 4)
    ids = [e.event_id for e in ordering.ordered(reader)]  # type: ignore[union-attr]
    assert ids == [r["eventID"] for r in records]


def test_standard_input_keeps_its_order(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record(T0 + 100 - i, n=i) for i in range(50)]
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    reader = Reader(resolve(["-"]))
    assert [e.event_id for e in ordering.ordered(reader)] == [r["eventID"] for r in records]  # type: ignore[union-attr]
