"""Load: a sustained run on the emulator for TRAILWARDEN_LOAD_SECONDS (default 600) at the highest rate the
machine holds: background CloudTrail from the scenario generator (launches without tags among it, so
stage-2 state is created and expires), starting at TRAILWARDEN_LOAD_RATE events/s (default 200); every 10 s
the rate goes up 15% while the markers' lag stays under 2 s and the feeder reaches its rate, and down 25%
when the lag passes 5 s. The figure is the average rate over the whole run.

Measured: events/s put and taken through both stages; resident memory of each JVM, each record processor
and the emulator, sampled every 5 s (peak, and whether it stays flat: the last fifth of the run against the
second fifth); lag as the time from putting a marker (a security-group opening, one every 2 s) to its alert
in the SQS queue, maximum and in the last minute. Loopback only; every process is stopped by pid after.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from infra import emulator
from infra.trail_player import Player
from tests.support.live import SG_OPEN, Live, config_file, live_stack, open_sg, rss_kb

from .results import Row

SECONDS = float(os.environ.get("TRAILWARDEN_LOAD_SECONDS", "600"))
RATE = float(os.environ.get("TRAILWARDEN_LOAD_RATE", "200"))
MARKER_EVERY = 2.0
ADJUST_EVERY = 10.0
SAMPLE_EVERY = 5.0
MAX_LAG = float(os.environ.get("TRAILWARDEN_LOAD_MAX_LAG", "60"))
GROWTH = 1.3  # memory "flat": the last fifth's peak within 30% (+ 16 MB) of the second fifth's


pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + 600)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("load")
    with live_stack(directory, config_file(directory, 60)) as running:
        yield running


def feed(stack: Live, stop: threading.Event, control: dict[str, float]) -> None:
    """Background CloudTrail at control["rate"] events/s, event times near now: each second's events in one
    PutLogEvents call per log stream (as CloudTrail delivers in batches), then the rest of the second idle."""
    from pipeline.scenario import build

    player = Player(stack.target.client("logs"), stack.outputs["TrailLogGroupName"], streams_per_region=2)
    chunk = 0
    while not stop.is_set():
        began = time.monotonic()
        rate = control["rate"]
        records = build(int(rate), seed=chunk, attacks="none", start=time.time(), duration=1).events
        stats = player.play(records)
        spent = time.monotonic() - began
        control["events"] += stats.events
        control["achieved"] = stats.events / max(spent, 1.0)
        chunk += 1
        if spent < 1.0:
            stop.wait(1.0 - spent)


def adjust(control: dict[str, float], recent_lag: float) -> None:
    """Up 15% while the lag is low and the feeder keeps up; down 25% when the lag grows."""
    if recent_lag > 5:
        control["rate"] = max(20.0, control["rate"] * 0.75)
    elif recent_lag < 2 and control["achieved"] >= 0.9 * control["rate"]:
        control["rate"] = min(20_000.0, control["rate"] * 1.15)
    control["peak_rate"] = max(control["peak_rate"], control["rate"])


def test_load(stack: Live, reliability_row: Callable[[Row], Row], capsys: pytest.CaptureFixture) -> None:
    warm = f"sg-0warm{uuid.uuid4().hex[:8]}"
    stack.play([open_sg(warm, time.time())])
    assert stack.wait_for(lambda: stack.about(warm), 120), stack.logs()
    emulator_pid = (emulator.health(stack.target.endpoint_url or "") or {}).get("pid")

    control = {"rate": RATE, "events": 0.0, "achieved": RATE, "peak_rate": RATE}
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(stack, stop, control), daemon=True)
    markers = Player(stack.target.client("logs"), stack.outputs["TrailLogGroupName"], account="222233334444")
    sent: dict[str, float] = {}
    samples: list[tuple[float, dict[str, int]]] = []
    started, started_wall = time.monotonic(), time.time()
    feeder.start()
    next_marker = next_sample = started
    next_adjust = started + ADJUST_EVERY
    try:
        while time.monotonic() - started < SECONDS:
            now = time.monotonic()
            if now >= next_adjust:
                adjust(control, recent_lag(stack, sent, since=time.time() - ADJUST_EVERY))
                next_adjust = now + ADJUST_EVERY
            if now >= next_marker:
                group = f"sg-0m{uuid.uuid4().hex[:12]}"
                markers.play([open_sg(group, time.time())])
                sent[group] = time.time()
                next_marker = now + MARKER_EVERY
            if now >= next_sample:
                samples.append((now - started, memory(stack, emulator_pid)))
                next_sample = now + SAMPLE_EVERY
            stack.poll()
            assert all(stack.pipeline.alive().values()) and not stack.restarts(), stack.logs()
    finally:
        stop.set()
        feeder.join(timeout=30)
    fed = time.monotonic() - started
    put_events = int(control["events"])

    def arrived() -> dict[str, float]:
        out = {}
        for group in sent:
            alerts = [a for a in stack.about(group) if a.finding.rule_id == SG_OPEN]
            if alerts:
                out[group] = min(a.enqueued for a in alerts) - sent[group]
        return out

    drain_started = time.monotonic()
    stack.wait_for(lambda: len(arrived()) == len(sent), 300)
    drained = time.monotonic() - drain_started
    lags = arrived()
    by_time = sorted((sent[g], lag) for g, lag in lags.items())
    last_minute = [lag for t, lag in by_time if t >= by_time[-1][0] - 60] if by_time else []
    max_lag = max(lags.values(), default=float("inf"))
    peaks: dict[str, int] = {}
    for _, sample in samples:
        for name, kb in sample.items():
            peaks[name] = max(peaks.get(name, 0), kb)
    flat, growth = flatness(samples)
    median = statistics.median(lags.values()) if lags else 0.0
    with capsys.disabled():
        print(
            f"\n[load] {put_events:,} events in {fed:.0f}s = {put_events / fed:.0f} events/s put (rate adjusted "
            f"from {RATE:.0f} up to {control['peak_rate']:.0f}, last {control['rate']:.0f}); markers "
            f"{len(lags)}/{len(sent)}, lag max {max_lag:.1f}s, median {median:.1f}s, "
            f"last minute max {max(last_minute, default=0):.1f}s; backlog drained {drained:.0f}s after the feed "
            "stopped",
            flush=True,
        )
        print("[load] peak RSS MB: " + ", ".join(f"{k} {v / 1024:.0f}" for k, v in sorted(peaks.items())), flush=True)
        print(
            "[load] growth last fifth / second fifth: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(growth.items())),
            flush=True,
        )
    ok = len(lags) == len(sent) and max_lag <= MAX_LAG and flat
    figure = (
        f"{put_events / fed:.0f} events/s for {fed:.0f}s (peak rate {control['peak_rate']:.0f}); "
        f"lag max {max_lag:.1f}s "
        f"(last minute {max(last_minute, default=0):.1f}s); peak RSS MB "
        + ", ".join(f"{k} {v / 1024:.0f}" for k, v in sorted(peaks.items()))
        + (
            "; memory flat"
            if flat
            else "; memory GREW: " + ", ".join(f"{k} x{v:.2f}" for k, v in sorted(growth.items()) if v > GROWTH)
        )
    )
    row = reliability_row(
        Row(
            "load",
            1,
            put_events + len(sent),
            len(sent),
            len(lags),
            0,
            ok=ok,
            seconds=time.monotonic() - started,
            figure=figure,
        )
    )
    missing = {group: round(at - started_wall, 1) for group, at in sent.items() if group not in lags}
    assert not missing, (
        f"{len(missing)} markers never alerted (group: seconds into the feed it was put): {missing}\n{stack.logs()}"
    )
    assert max_lag <= MAX_LAG, max_lag
    assert flat, growth
    assert row.ok


def recent_lag(stack: Live, sent: dict[str, float], since: float) -> float:
    """The largest lag of the markers sent since `since`: alerted ones by their arrival, missing ones by now."""
    lags = []
    for group, at in sent.items():
        if at < since:
            continue
        alerts = [a.enqueued for a in stack.about(group)]
        lags.append((min(alerts) if alerts else time.time()) - at)
    return max(lags, default=0.0)


def memory(stack: Live, emulator_pid: int | None) -> dict[str, int]:
    """RSS in KiB: each JVM, the largest and the sum of each stage's processors, the emulator."""
    out: dict[str, int] = {}
    for stage, daemon in stack.pipeline.daemons.items():
        out[f"{stage} JVM"] = rss_kb(daemon.pid)
        kids = [rss_kb(p) for p in daemon.processors()]
        out[f"{stage} processor"] = max(kids, default=0)
    if emulator_pid:
        out["emulator"] = rss_kb(emulator_pid)
    return out


def flatness(samples: list[tuple[float, dict[str, int]]]) -> tuple[bool, dict[str, float]]:
    """Peak of the last fifth against the peak of the second fifth, per process (the first fifth is warm-up).
    The emulator is left out of the verdict: moto keeps every record and object it was sent."""
    if len(samples) < 10:
        return True, {}
    n = len(samples)
    second, last = samples[n // 5 : 2 * n // 5], samples[4 * n // 5 :]
    growth: dict[str, float] = {}
    flat = True
    for name in samples[0][1]:
        before = max(s[name] for _, s in second)
        after = max(s[name] for _, s in last)
        growth[name] = after / before if before else 0.0
        if name != "emulator" and after > GROWTH * before + 16 * 1024:
            flat = False
    return flat, growth
