"""Properties over random observation sequences: the actions do not depend on when the
timer runs, next_deadline is never late, and the state survives JSON (a restart)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from unittest import mock

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dolbom.alerts import engine
from dolbom.alerts.engine import (
    Action,
    ActivityObs,
    DeviceEventObs,
    HomeConfig,
    HomeState,
    LifeSafetyObs,
    Observation,
    ReadingObs,
    Seen,
    StatusObs,
    initial_state,
    next_deadline,
    observe,
    state_from_json,
    state_to_json,
    tick,
)
from dolbom.alerts.model import Thresholds
from tests.alerts.enginekit import GATEWAY, MIN, SIX, H, S, local

T0 = local(2, 20, 17) + 123
# Short clocks so that a few dozen observations reach every rule.
FAST = Thresholds(
    inactivity_caution_h=1, inactivity_alarm_h=2, inactivity_danger_h=3, no_door_days=0.25,
    no_power_h=2, temp_minutes=10, out_of_bed_minutes=10, temp_repeat_h=3, wandering=True)
DEVICES = (*SIX, GATEWAY)
ACTIVITY = [("motion", None), ("presence", None), ("door", "open"), ("door", "closed"),
            ("bed", "in"), ("bed", "out")]


@dataclass(frozen=True)
class Step:
    gap: int  # ms after the previous step (hist: how far back the event is)
    kind: str
    dev: int
    pick: int
    value: float


steps = st.lists(st.builds(
    Step,
    gap=st.one_of(st.integers(0, 3 * MIN), st.integers(0, 2 * H), st.just(0)),
    kind=st.sampled_from(["seen", "seen", "seen", "activity", "hist_activity", "reading",
                          "hist_reading", "status", "event", "life", "mode", "reorder"]),
    dev=st.integers(0, len(DEVICES) - 1),
    pick=st.integers(0, 1000),
    value=st.floats(0, 40, allow_nan=False),
), max_size=20)


def _obs(step: Step, dev: str, now: int) -> Observation:
    k, p, v = step.kind, step.pick, step.value
    if k == "seen":
        return Seen(dev, now)
    if k in ("activity", "hist_activity"):
        type_, val = ACTIVITY[p % len(ACTIVITY)]
        hist = k == "hist_activity"
        return ActivityObs(dev, type_, val, now - p * MIN if hist else now, hist)
    if k in ("reading", "hist_reading"):
        names = ["temperature_c", "power_w", "battery_pct"]
        readings = {n: (v * 3 if n == "battery_pct" else v) for i, n in enumerate(names)
                    if p >> i & 1} or {"temperature_c": v}
        hist = k == "hist_reading"
        return ReadingObs(dev, readings, now - p * MIN if hist else now, hist)
    if k == "status":
        state = ["ready", "sleeping", "lost", "disconnected"][p % 4]
        return StatusObs(dev, state, 60, [None, 60, 300, 900][p // 4 % 4], now)
    if k == "event":
        return DeviceEventObs(dev, ["tamper", "battery_low"][p % 2], now)
    types = ["button", "fall", "smoke", "gas", "sos_voice"]
    return LifeSafetyObs(dev, types[p % 5], 1, p, now - 5, now, bool(p & 8))


def _next_minute(t: int) -> int:
    return (t // MIN + 1) * MIN


def run(seq: list[Step], ticking: str, check: bool = False) -> tuple[list[Action], HomeState]:
    """Feed ``seq``; ``ticking`` is "minute" (tick at every whole minute), "deadline" (tick
    at each next_deadline) or "end" (only at the end). Ticks come strictly before an
    observation's time, so at an equal ms the observation goes first in every driver."""
    cfg = HomeConfig("s1", "h1", "normal", FAST, DEVICES)
    state = initial_state(cfg, T0)
    now, last_tick = T0, T0
    out: list[Action] = []

    def ticks_before(t: int) -> None:
        nonlocal state, last_tick
        if ticking == "minute":
            m = _next_minute(last_tick)
            while m < t:
                state, acts = tick(cfg, state, m)
                out.extend(acts)
                last_tick, m = m, m + MIN
        elif ticking == "deadline":
            while (d := next_deadline(cfg, state)) is not None and d < t:
                if check:  # never late: nothing fires before the deadline
                    assert tick(cfg, state, d - 1)[1] == []
                state, acts = tick(cfg, state, d)
                out.extend(acts)

    for step in seq:
        t = now + (0 if step.kind.startswith("hist") else step.gap)
        ticks_before(t)
        now = t
        if step.kind == "mode":
            cfg = HomeConfig("s1", "h1", ["normal", "away", "hospital"][step.pick % 3], FAST,
                             cfg.devices)
            state, acts = tick(cfg, state, now)  # the service ticks when it changes a home
        elif step.kind == "reorder":
            cfg = HomeConfig("s1", "h1", cfg.mode, FAST, tuple(reversed(cfg.devices)))
            state, acts = tick(cfg, state, now)
        else:
            obs = _obs(step, cfg.devices[step.dev].device, now)
            state, acts = observe(cfg, state, obs)
        out.extend(acts)
        if check:
            restored = state_from_json(orjson.loads(orjson.dumps(state_to_json(state))))
            assert restored == state
    end = now + 4 * H
    ticks_before(end + 1)
    state, acts = tick(cfg, state, end)
    out.extend(acts)
    return out, state


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_actions_do_not_depend_on_when_the_timer_runs(seq: list[Step]) -> None:
    """Ticking at each deadline, every minute or only at the end gives the same actions."""
    by_deadline, st_d = run(seq, "deadline", check=True)
    by_minute, st_m = run(seq, "minute")
    at_end, st_e = run(seq, "end")
    assert by_deadline == by_minute == at_end
    assert st_d == st_m == st_e


@settings(max_examples=60, deadline=None)
@given(steps)
def test_state_json_round_trip(seq: list[Step]) -> None:
    """Any reachable state survives JSON exactly and then behaves as the original."""
    _, state = run(seq, "end")
    text = orjson.dumps(state_to_json(state))
    restored = state_from_json(orjson.loads(text))
    assert restored == state
    cfg = HomeConfig("s1", "h1", "normal", FAST, DEVICES)
    later = T0 + 400 * H
    assert tick(cfg, restored, later) == tick(cfg, state, later)


def _json_ok(d: dict[str, Any]) -> bool:
    return isinstance(orjson.loads(orjson.dumps(d)), dict)


def test_time_passes_in_whole_seconds_too() -> None:
    """A sanity run of the drivers on a fixed busy sequence (a regression anchor)."""
    seq = [Step(30 * S, "activity", 4, 5, 0), Step(5 * MIN, "reading", 0, 1, 35.0),
           Step(11 * MIN, "reading", 0, 1, 35.0), Step(0, "mode", 0, 1, 0),
           Step(2 * H, "seen", 0, 0, 0), Step(0, "mode", 0, 0, 0)]
    a, _ = run(seq, "deadline", check=True)
    b, _ = run(seq, "minute")
    assert a == b and a
    assert _json_ok({"n": len(a)})


@settings(max_examples=50, deadline=None)
@given(steps)
def test_heartbeat_shortcut_matches_the_general_path(seq: list[Step]) -> None:
    """The heartbeat shortcut gives the same states and actions as the general path."""
    fast = run(seq, "deadline")
    with mock.patch.object(engine, "heartbeat", return_value=None):
        slow = run(seq, "deadline")
    assert fast == slow


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.booleans(), st.lists(
    st.one_of(st.none(), st.integers(0, 2 * MIN), st.integers(-10 * MIN, 10 * MIN)),
    min_size=len(DEVICES), max_size=len(DEVICES)))
def test_every_device_heard_at_once_matches_one_seen_at_a_time(
        seq: list[Step], revive: bool, offsets: list[int | None]) -> None:
    """A restart applies when each device was last heard in one pass over the state
    (``engine.heard``): the same state and actions as one ``Seen`` per device in turn,
    whatever came before (lost devices, timers due, a mode change, re-ordered devices)."""
    _, state = run(seq, "deadline")
    end = T0 + sum(x.gap for x in seq if not x.kind.startswith("hist")) + 4 * H
    cfg = HomeConfig("s1", "h1", "normal", FAST, DEVICES)
    state, _ = tick(cfg, state, end)  # re-keyed, if the sequence re-ordered the devices
    if revive:  # every device heard at the end: none lost, the timers of a lived-in home
        for dev in cfg.ids:
            state, _ = observe(cfg, state, Seen(dev, end))
    times = [None if o is None else end + o for o in offsets]
    fast = engine.heard(cfg, state, times)
    slow_state, slow_acts = state, []
    for dev, at in zip(cfg.ids, times, strict=True):
        if at is not None:
            slow_state, acts = observe(cfg, slow_state, Seen(dev, at))
            slow_acts += acts
    assert fast == (slow_state, slow_acts)
