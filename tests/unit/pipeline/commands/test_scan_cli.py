"""`trailwarden scan`: inputs, output formats, summary, exit status; and the output/progress helpers."""

from __future__ import annotations

import copy
import gzip
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.cli import main
from pipeline.output import TableWriter, format_summary, safe
from pipeline.progress import Progress
from tests.support.corpus import STRATUS

REPO = Path(__file__).resolve().parents[4]


def corpus_records() -> list[dict[str, Any]]:
    return [r for p in sorted(STRATUS.glob("*.json")) for r in orjson.loads(p.read_bytes())]


def scan(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, str]:
    rc = main(["scan", *args])
    captured = capsysbinary.readouterr()
    return rc, captured.out, captured.err.decode()


def summary_count(err: str, label: str) -> int:
    match = re.search(rf"^{label}: ([\d,]+)$", err, re.MULTILINE)
    assert match, f"no {label!r} in summary:\n{err}"
    return int(match.group(1).replace(",", ""))


def findings(out: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


def cwl(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(
        orjson.dumps(
            {
                "messageType": "DATA_MESSAGE",
                "owner": "1",
                "logGroup": "g",
                "logStream": "s",
                "subscriptionFilters": ["f"],
                "logEvents": [
                    {"id": i, "timestamp": 1, "message": orjson.dumps(r).decode()} for i, r in enumerate(records)
                ],
            }
        )
    )


def test_corpus_directory_scans_without_dead_letters(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    dead = tmp_path / "dead.jsonl"
    rc, out, err = scan(capsysbinary, str(STRATUS), "--format", "json", "--dead-letters", str(dead))
    assert rc == 0, err
    assert summary_count(err, "events") == len(corpus_records())
    assert summary_count(err, "dead letters") == 0
    assert dead.read_bytes() == b""
    found = findings(out)
    assert found, "the pack finds nothing in 35 attack techniques"
    assert len({(f["id"], f["status"]) for f in found}) == len(found), "one line per finding id and status"
    assert summary_count(err, "findings") == len(found)
    for f in found:
        assert f["schema"] == "trailwarden.finding/1" and f["rule_id"] and f["event_ids"]


def test_files_gz_and_directory_recursion_match_one_plain_file(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    records = corpus_records()
    third = len(records) // 3
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / ".hidden").mkdir()
    (tree / "a.json").write_bytes(orjson.dumps({"Records": records[:third]}))
    middle = b"\n".join(orjson.dumps(r) for r in records[third : 2 * third])
    (tree / "sub" / "b.jsonl.gz").write_bytes(gzip.compress(middle))
    (tree / "sub" / "deeper" / "c.cwl").write_bytes(cwl(records[2 * third :]))
    (tree / ".hidden" / "junk.json").write_bytes(b"not json at all")
    (tree / ".junk").write_bytes(b"not json either")
    whole = tmp_path / "all.json"
    whole.write_bytes(orjson.dumps(records))

    rc, out_tree, err = scan(capsysbinary, str(tree), "--format", "json")
    assert rc == 0, err
    assert summary_count(err, "events") == len(records)
    assert summary_count(err, "dead letters") == 0  # hidden files were skipped
    assert summary_count(err, "sources") == 3
    rc, out_whole, _ = scan(capsysbinary, str(whole), "--format", "json")
    assert rc == 0
    assert {f["id"] for f in findings(out_tree)} == {f["id"] for f in findings(out_whole)}
    # Several paths at once, a file named twice is read twice.
    rc, _, err = scan(capsysbinary, str(tree / "a.json"), str(tree / "a.json"), "-q")
    assert rc == 0 and err == ""


def test_stdin_gzip_matches_the_file(tmp_path: Path) -> None:
    data = gzip.compress(orjson.dumps({"Records": corpus_records()}))
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "scan", "-", "-q"],
        input=data,
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    via_stdin = {f["id"] for f in findings(run.stdout)}  # not a terminal: json by default
    path = tmp_path / "trail.json.gz"
    path.write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "scan", str(path), "-q", "--format", "json"],
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and via_stdin == {f["id"] for f in findings(run.stdout)} and via_stdin


def test_missing_path_exits_2_with_a_message(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    good = tmp_path / "ok.json"
    good.write_bytes(b"[]")
    rc, out, err = scan(capsysbinary, str(good), str(tmp_path / "nope.json"))
    assert rc == 2 and out == b""
    assert "nope.json" in err and "no such file" in err


def test_dangling_symlink_and_permission_denied_exit_2(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "dangling.json"
    link.symlink_to(tmp_path / "gone.json")
    rc, _, err = scan(capsysbinary, str(link))
    assert rc == 2 and "dangling.json" in err and "cannot read" in err
    (tmp_path / "dir").mkdir()
    secret = tmp_path / "dir" / "secret.json"
    secret.write_bytes(b"[]")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p).name != "secret.json" and real_access(p, mode))
    rc, out, err = scan(capsysbinary, str(tmp_path / "dir"))
    assert rc == 2 and out == b"" and "secret.json: permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file_and_directory_exit_2(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    locked = tmp_path / "locked.json"
    locked.write_bytes(b"[]")
    locked.chmod(0)
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    (closed / "inner" / "x.json").write_bytes(b"[]")
    (closed / "inner").chmod(0)
    try:
        rc, _, err = scan(capsysbinary, str(locked))
        assert rc == 2 and "permission denied" in err and "locked.json" in err
        rc, _, err = scan(capsysbinary, str(closed))
        assert rc == 2 and "inner" in err
    finally:
        locked.chmod(0o600)
        (closed / "inner").chmod(0o700)


def test_bad_config_and_unknown_rule_exit_2(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    data = tmp_path / "d.json"
    data.write_bytes(b"[]")
    rc, _, err = scan(capsysbinary, str(data), "--config", str(tmp_path / "missing.toml"))
    assert rc == 2 and "missing.toml" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    rc, _, err = scan(capsysbinary, str(data), "--config", str(bad))
    assert rc == 2 and "bad.toml" in err
    rc, _, err = scan(capsysbinary, str(data), "--rules", "no-such-rule-id")
    assert rc == 2 and "no-such-rule-id" in err


def test_rules_option_narrows_the_pack(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    rc, out, _ = scan(capsysbinary, str(STRATUS), "--format", "json", "-q")
    rule_ids = sorted({f["rule_id"] for f in findings(out)})
    assert len(rule_ids) >= 2
    rc, out, _ = scan(capsysbinary, str(STRATUS), "--format", "json", "-q", "--rules", rule_ids[0])
    assert rc == 0 and {f["rule_id"] for f in findings(out)} == {rule_ids[0]}
    rc, out, _ = scan(capsysbinary, str(STRATUS), "--format", "json", "-q", "--rules", f"{rule_ids[0]},{rule_ids[1]}")
    assert rc == 0 and {f["rule_id"] for f in findings(out)} == set(rule_ids[:2])


def test_all_option_repeats_finding_ids(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    _, once, err = scan(capsysbinary, str(STRATUS), "--format", "json")
    _, every, _ = scan(capsysbinary, str(STRATUS), "--format", "json", "--all", "-q")
    assert len(findings(every)) == len(findings(once)) + summary_count(err, "repeats of a finding id")
    assert {f["id"] for f in findings(every)} == {f["id"] for f in findings(once)}


def test_dead_letters_file_and_summary(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "junk.txt").write_bytes(b"\x00\x01 definitely not CloudTrail")
    (tmp_path / "in" / "cut.json.gz").write_bytes(gzip.compress(b'{"Records": []}' * 50)[:-12])
    (tmp_path / "in" / "ok.json").write_bytes(b'{"Records": [null]}')
    dead = tmp_path / "dead.jsonl"
    rc, out, err = scan(capsysbinary, str(tmp_path / "in"), "--dead-letters", str(dead), "--format", "json")
    assert rc == 0 and out == b""
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [(Path(d["origin"]).name, d["kind"]) for d in letters] == [
        ("cut.json.gz", "truncated gzip"),
        ("junk.txt", "not JSON"),
        ("ok.json", "Records[]: record is a JSON null, not an object"),
    ]
    assert summary_count(err, "dead letters") == 3
    assert "truncated gzip" in err


def test_output_file_and_quiet(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    target = tmp_path / "findings.jsonl"
    rc, out, err = scan(capsysbinary, str(STRATUS), "--output", str(target), "-q")
    assert rc == 0 and out == b"" and err == ""
    assert findings(target.read_bytes())  # --output to a file defaults to json


def test_large_json_lines_are_streamed_past_the_size_limit(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    records = corpus_records()
    lines = b"\n".join(orjson.dumps(r) for r in records)
    repeat = 1024 * 1024 // len(lines) + 2
    big = tmp_path / "big.jsonl.gz"
    big.write_bytes(gzip.compress(b"\n".join([lines] * repeat) + b"\n{oops\n"))
    rc, _, err = scan(capsysbinary, str(big), "--max-size", "1", "--format", "json")
    assert rc == 0
    assert summary_count(err, "events") == len(records) * repeat
    assert summary_count(err, "dead letters") == 1  # the one bad line, not the file
    blob = tmp_path / "big.json"
    blob.write_bytes(orjson.dumps({"Records": records * repeat}))
    rc, _, err = scan(capsysbinary, str(blob), "--max-size", "1", "--format", "json")
    assert rc == 0 and summary_count(err, "events") == 0
    assert "too large to decode whole and not JSON lines" in err


def test_table_neutralizes_attacker_controlled_text(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\r\nFAKE ROW\u202e"
    records = []
    for r in corpus_records():
        r = copy.deepcopy(r)
        if isinstance(r.get("userIdentity"), dict):
            r["userIdentity"]["arn"] = evil + str(r["userIdentity"].get("arn"))
        records.append(r)
    path = tmp_path / "evil.json"
    path.write_bytes(orjson.dumps(records))
    rc, out, _ = scan(capsysbinary, str(path), "--format", "table")
    assert rc == 0
    text = out.decode()
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["TIME", "SEVERITY", "STATUS", "RULE"]
    assert len(lines) > 1
    assert not any(ch in text for ch in "\x1b\x07\r\u202e")
    assert "\\x1b]0;pwned" in text
    assert not any(line.startswith("FAKE") for line in lines)


def test_safe_escapes_and_truncates() -> None:
    assert safe("plain text") == "plain text"
    assert safe("a\x1b[31mb\x00\x7f\x9b") == "a\\x1b[31mb\\x00\\x7f\\x9b"
    assert safe("line1\nline2\u2028\u202e") == "line1\\x0aline2\\u2028\\u202e"
    assert safe("abcdefghij", 5) == "abcd…" and len(safe("x" * 100, 10)) == 10
    assert safe("\x1b" * 50, 8).startswith("\\x1b") and len(safe("\x1b" * 50, 8)) == 8
    assert safe(None) == "None" and safe("日本語") == "日本語"
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert safe(deep) == "<list nested too deeply to show>"


def test_table_rows_fit_their_columns() -> None:
    from pipeline.finding import Finding

    stream = io.BytesIO()
    writer = TableWriter(stream, width=200)
    f = Finding(
        id="x",
        rule_id="r" * 80,
        title="t",
        severity="high",
        attack=(),
        account="1" * 40,
        region="us-east-1",
        principal="p" * 300,
        source_ip="",
        user_agent="",
        resources=(),
        event_ids=(),
        event_time=1722431184.0,
        dedup_key="",
        window=0,
        summary="s" * 500,
    )
    writer.write(f)
    header, row = stream.getvalue().decode().splitlines()
    assert row.startswith("2024-07-31T13:06:24Z  high")
    assert len(row) <= 200 and "…" in row
    assert header.index("RULE") == row.index("r")


def test_format_summary_renders_any_added_statistic() -> None:
    text = format_summary(
        {
            "events": 1234,
            "findings": {"a": 1, "b": 3, "c": 0},
            "seconds": 0.5,
            "open_watches": {"untagged-instance": 7},
            "rule_error_samples": ["x\x1b"],
            "empty": [],
            "stateful": {"facts": 9, "evictions": {"r": 2}, "note": "", "watermark_time": 1722431184.0, "unset": None},
        }
    )
    lines = text.splitlines()
    assert "events: 1,234" in lines and "findings: 4" in lines and "seconds: 0.50" in lines
    assert lines.index("findings: 4") + 1 == lines.index(f"  {3:>10}  b")
    assert not any(line.endswith("  c") for line in lines)  # zero counts are left out
    assert "open watches: 7" in lines and "  x\\x1b" in lines and not any("empty" in line for line in lines)
    assert lines[lines.index("stateful:") + 1 :] == [
        "  facts: 9",
        "  evictions: 2",
        f"    {2:>10}  r",
        "  watermark time: 2024-07-31T13:06:24Z",
    ]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_only_on_a_terminal_for_large_or_slow_input() -> None:
    now = [0.0]
    tty = FakeTTY()
    bar = Progress(50 * 1024 * 1024, stream=tty, clock=lambda: now[0])
    bar.update(10 * 1024 * 1024, 5000)
    now[0] = 1.0
    bar.update(25 * 1024 * 1024, 100_000)
    assert "scanning" in tty.getvalue() and "50%" in tty.getvalue() and "events/s" in tty.getvalue()
    drawn = tty.getvalue()
    bar.update(26 * 1024 * 1024, 100_001)  # throttled: same instant
    assert tty.getvalue() == drawn
    bar.close()
    assert tty.getvalue().endswith("\r\x1b[K")

    small, now[0] = FakeTTY(), 0.0
    bar = Progress(1000, stream=small, clock=lambda: now[0])
    bar.update(500, 10)
    assert small.getvalue() == ""
    now[0] = 3.0  # small but slow: shown after 2 s
    bar.update(600, 12)
    assert "scanning" in small.getvalue()

    pipe = io.StringIO()
    bar = Progress(50 * 1024 * 1024, stream=pipe, clock=lambda: now[0])
    now[0] = 10.0
    bar.update(1, 1)
    bar.close()
    assert pipe.getvalue() == ""


def test_help_has_examples(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--help"])
    assert exc.value.code == 0
    text = capsysbinary.readouterr().out.decode()
    assert "examples:" in text and "trailwarden scan -" in text and "exit status" in text


def test_reader_streams_json_lines_and_tracks_bytes(tmp_path: Path) -> None:
    from pipeline.decode import DeadLetter, DecodeStats
    from pipeline.event import Event
    from pipeline.sources import Reader, resolve

    records = corpus_records()
    lines = b"\n".join(orjson.dumps(r) for r in records) + b"\n"
    (tmp_path / "a.jsonl").write_bytes(lines)
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(orjson.dumps({"Records": records})))
    cut = gzip.compress(lines * 3)
    (tmp_path / "c.jsonl.gz").write_bytes(cut[: len(cut) // 2])
    reader = Reader(resolve([str(tmp_path)]), DecodeStats())
    items = list(reader.items())
    assert reader.bytes_done == reader.total == sum(p.stat().st_size for p in tmp_path.iterdir())
    events = [i for i in items if isinstance(i, Event)]
    dead = [i for i in items if isinstance(i, DeadLetter)]
    # The truncated file's lines before the cut still decode; the cut itself is one dead letter.
    assert 2 * len(records) < len(events) < 5 * len(records)
    assert [(Path(d.origin.rsplit(":", 1)[0]).name, d.kind) for d in dead] in (
        [("c.jsonl.gz", "truncated gzip")],
        [("c.jsonl.gz", "truncated gzip"), ("c.jsonl.gz", "not JSON")],
    )
    assert events[0].origin.endswith("a.jsonl:1")


def test_json_output_survives_a_context_too_deep_to_write() -> None:
    from pipeline.finding import Finding
    from pipeline.output import JsonWriter

    deep: Any = []
    for _ in range(400):
        deep = [deep]
    f = Finding(
        id="x",
        rule_id="r",
        title="t",
        severity="low",
        attack=("T1",),
        account="1",
        region="r",
        principal="p",
        source_ip="",
        user_agent="",
        resources=("a",),
        event_ids=("e",),
        event_time=1722431184.0,
        dedup_key="",
        window=0,
        context={"value": deep},
    )
    stream = io.BytesIO()
    JsonWriter(stream).write(f)
    doc = orjson.loads(stream.getvalue())
    assert doc["id"] == "x" and doc["resources"] == ["a"]
    depth, node = 0, doc["context"]["value"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert node == "[nested too deep]" and depth < 10
