"""`python -m bench.compare`: what it reads from each bench's output, the verdict's direction, and the export of
a commit. No timing here: the figures come from running it."""

from __future__ import annotations

import subprocess

import pytest

from bench.compare import HIGHER_IS_BETTER, ROOT, _engine, _live, _stateful, export, verdict

ENGINE_OUTPUT = """== bench.engine
  stage                                                   events/s   seconds    /a
  (a) decode floor: gunzip + orjson only                   107,718      0.56  1.00
      decode + normalize only, no rules                     85,132      0.71  0.79
  (b) engine: decode + normalize + every match rule         52,247      1.15  0.49
      (b) + stateful fact extraction (router stage)         28,988      2.07  0.27
  b/a = 0.49 (target >= 0.6): below target
"""


def test_the_engine_figures_are_b_over_a_and_the_engine_rate() -> None:
    assert _engine(ENGINE_OUTPUT) == {"engine b/a": 0.49, "engine events/s": 52_247.0}


def test_an_engine_output_without_its_figures_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="no b/a"):
        _engine("== bench.engine\nsomething else\n")


def test_the_stateful_and_live_figures_come_from_their_json() -> None:
    assert _stateful('log line\n{"rules": 19, "facts_per_s": 35000.5}\n') == {
        "stage 2 facts/s": 35000.5,
        "stage 2 rules": 19.0,
    }
    live = '{"latency": {"p50_s": 0.17, "p99_s": 0.3, "max_s": 0.5}, "throughput": {}}'
    assert _live(live) == {"live p50 s": 0.17, "live p99 s": 0.3}


def test_the_verdict_looks_the_way_that_matters() -> None:
    rate, latency = HIGHER_IS_BETTER["stage 2 facts/s"], HIGHER_IS_BETTER["live p99 s"]
    assert verdict(rate, 100.0, 96.0, 0.05) == "within"
    assert verdict(rate, 100.0, 94.0, 0.05) == "OUTSIDE"
    assert verdict(rate, 100.0, 150.0, 0.05) == "within"
    assert verdict(latency, 0.30, 0.31, 0.05) == "within"
    assert verdict(latency, 0.30, 0.33, 0.05) == "OUTSIDE"
    assert verdict(latency, 0.30, 0.10, 0.05) == "within"


def test_a_commit_is_exported_once_under_build_and_a_bad_revision_is_named() -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)  # noqa: S607 (git from PATH)
    if head.returncode != 0:
        pytest.skip("not a git checkout (an sdist or an exported tree): nothing to export from")
    tree, sha = export("HEAD")
    assert sha == head.stdout.strip()
    assert tree.is_relative_to(ROOT / "build") and (tree / "bench" / "__main__.py").is_file()
    with pytest.raises(SystemExit, match="not a commit"):
        export("no-such-revision-here")
