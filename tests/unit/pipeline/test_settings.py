"""`pipeline.settings`: every TRAILWARDEN_* variable, its default, what a bad value says, and the environment a
child process is given reading back as what was meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import DedupeMode, ReplaySettings, Settings, SettingsError, SinkName, Var, environment


def test_defaults_with_an_empty_environment() -> None:
    s = Settings({"HOME": "/home/u"})
    assert s.config is None and s.target == "" and s.java is None and s.resources is None
    assert s.state_dir == Path.home() / ".local" / "state" / "trailwarden"
    assert s.sinks == (SinkName.SNS, SinkName.FIREHOSE) and s.dedupe is DedupeMode.TABLE
    assert s.overrides == {} and s.snapshot_seconds == 0.0 and s.replay is None
    assert s.log_level == "WARNING" and s.kcl_log_level == "WARN"
    assert Settings({"XDG_STATE_HOME": "/x"}).state_dir == Path("/x/trailwarden")
    assert Settings({Var.STATE_DIR: " /s "}).state_dir == Path("/s")


def test_the_findings_file_adds_the_file_sink() -> None:
    s = Settings({Var.SINKS: "firehose", Var.FINDINGS_FILE: "/tmp/f.jsonl"})
    assert s.sinks == (SinkName.FIREHOSE, SinkName.FILE) and s.findings_file == Path("/tmp/f.jsonl")


@pytest.mark.parametrize(
    "var,value,words",
    [
        (Var.SINKS, "sns,pagerduty", "sns, firehose, file"),
        (Var.DEDUPE, "sometimes", "read-only"),
        (Var.SNAPSHOT_SECONDS, "soon", "number of seconds"),
        (Var.SNAPSHOT_SECONDS, "-1", "0 or more"),
        (Var.RESOURCES, "{not json", "valid JSON"),
        (Var.RESOURCES, "[1]", "JSON object"),
        (Var.OVERRIDES, '{"rule": 3}', "parameter"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_takes(var: Var, value: str, words: str) -> None:
    s = Settings({var: value})
    attribute = {
        Var.SINKS: "sinks",
        Var.DEDUPE: "dedupe",
        Var.SNAPSHOT_SECONDS: "snapshot_seconds",
        Var.RESOURCES: "resources",
        Var.OVERRIDES: "overrides",
    }[var]
    with pytest.raises(SettingsError) as caught:
        getattr(s, attribute)
    assert var.value in str(caught.value) and words in str(caught.value)
    assert Settings({var: value}).config is None  # another setting is still readable


def test_a_replay_needs_all_its_variables() -> None:
    with pytest.raises(SettingsError, match="TRAILWARDEN_REPLAY_DIR"):
        _ = Settings({Var.REPLAY_RUN: "r1", Var.REPLAY_FROM: "1", Var.REPLAY_TO: "2"}).replay
    with pytest.raises(SettingsError, match="epoch seconds"):
        _ = Settings(
            {Var.REPLAY_RUN: "r1", Var.REPLAY_DIR: "/d", Var.REPLAY_FROM: "yesterday", Var.REPLAY_TO: "2"}
        ).replay


def test_what_environment_writes_settings_reads_back(tmp_path: Path) -> None:
    replay = ReplaySettings("r9", tmp_path, 1_700_000_000.25, 1_700_000_600.5, ("a-rule", "b-rule"))
    env = environment(
        resources={"TrailStreamName": "t"},
        config=tmp_path / "c.toml",
        overrides={"a-rule": {"n": 2}},
        sinks=[SinkName.FIREHOSE],
        dedupe=DedupeMode.READ_ONLY,
        log_level="INFO",
        replay=replay,
    )
    s = Settings(env)
    assert s.resources == {"TrailStreamName": "t"} and s.config == (tmp_path / "c.toml").resolve()
    assert s.overrides == {"a-rule": {"n": 2}} and s.sinks == (SinkName.FIREHOSE,)
    assert s.dedupe is DedupeMode.READ_ONLY and s.log_level == "INFO" and s.replay == replay
    assert environment() == {}
