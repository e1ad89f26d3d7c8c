"""The engine as a whole: state lifecycle, configuration changes, persistence, size."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from dolbom.alerts.engine import (
    ActivityObs,
    Clear,
    HomeConfig,
    HomeState,
    Seen,
    initial_state,
    next_deadline,
    observe,
    state_from_json,
    state_to_json,
    tick,
)
from dolbom.alerts.model import Rule, Thresholds
from dolbom.alerts.rules.baseline import Learned
from tests.alerts.enginekit import (
    BED,
    BUTTON,
    DOOR,
    MIN,
    PIR,
    PLUG,
    SIX,
    SMOKE,
    Home,
    deep_size,
    local,
)

T0 = local(2, 8)
STATE_BUDGET = 1024  # DESIGN.md §7: ≤ 1 KB of service state per home; this is the rules' part


def test_a_new_home_is_not_inactive_since_1970() -> None:
    """initial_state starts every clock now: nothing is due before a heartbeat is missed."""
    cfg = HomeConfig("s1", "h1", "normal", Thresholds(), SIX)
    st = initial_state(cfg, T0)
    assert next_deadline(cfg, st) == T0 + 180_000  # the first mains device could be lost
    st2, acts = tick(cfg, st, T0 + 179_999)
    assert (acts, st2) == ([], st)


def test_unchanged_state_is_the_same_object_and_input_is_never_modified() -> None:
    """A call that changes nothing returns the state it got; others leave it untouched."""
    cfg = HomeConfig("s1", "h1", "normal", Thresholds(), SIX)
    st = initial_state(cfg, T0)
    again, acts = observe(cfg, st, Seen("pir-1", T0 - 1))  # older than what we know
    assert again is st and acts == []
    frozen = (st.tag, st.devs, st.home)
    newer, _ = observe(cfg, st, Seen("pir-1", T0 + 1))
    assert newer != st and (st.tag, st.devs, st.home) == frozen


def test_reordered_devices_keep_their_records() -> None:
    """The registry lists the devices in another order: a lost device stays lost, by id."""
    home = Home(start=T0)
    home.silence(SMOKE)
    home.run(T0 + 16 * MIN)
    assert [r.device for r in home.raised(Rule.DEVICE_LOST)] == ["smoke-1"]
    home.reconfigure(devices=tuple(reversed(SIX)))
    home.run(T0 + 6 * 60 * MIN)
    assert [r.device for r in home.raised(Rule.DEVICE_LOST)] == ["smoke-1"]
    assert home.cleared() == []
    home.revive(SMOKE, T0 + 6 * 60 * MIN + 1)
    assert [c.rule for c in home.cleared()] == [Rule.DEVICE_LOST]


def test_a_new_device_starts_as_just_heard_and_a_removed_one_clears() -> None:
    """Adding a device does not make it lost at once; removing the lost one clears the alert."""
    home = Home(devices=(PIR, DOOR, SMOKE), start=T0)
    home.silence(SMOKE)
    home.run(T0 + 20 * MIN)
    home.reconfigure(devices=(PIR, DOOR, BED))
    home.next_hb[BED.device] = T0 + 21 * MIN
    home.tick(T0 + 20 * MIN)
    assert home.cleared() == [
        Clear(Rule.DEVICE_LOST, T0 + 20 * MIN, "device removed from the home")]
    home.run(T0 + 60 * MIN)
    assert [r.device for r in home.raised(Rule.DEVICE_LOST)] == ["smoke-1"]


def test_new_thresholds_retime_inactivity() -> None:
    """Lowering the caution tier to 6 h mid-silence raises at 6 h, not at 12 h."""
    home = Home(start=T0)
    home.run(T0 + 60 * MIN)
    home.reconfigure(thresholds=Thresholds(inactivity_caution_h=6))
    assert home.deadline() is not None
    home.run(local(2, 14, 1))
    assert [r.at_ms for r in home.raised(Rule.INACTIVITY)] == [local(2, 14)]


def test_next_deadline_with_a_changed_configuration_is_not_late() -> None:
    """Before the state has seen the new configuration, next_deadline already uses it."""
    home = Home(devices=(PIR, DOOR), start=T0)
    home.reconfigure(devices=(DOOR, PIR, PLUG))
    assert home.deadline() == T0 + 180_000


def test_state_fits_the_budget() -> None:
    """The rule state of a typical 6-device home, its baselines included, stays well under
    1 KB after a busy day."""
    home = Home(start=T0)
    home.reading(PIR, T0 + MIN, temperature_c=33.0, battery_pct=15.0)
    home.activity(BED, local(3, 1), "bed", "out")
    home.run(local(3, 9))
    size = deep_size(home.state)
    print(f"rule state per home (6 devices): {size} bytes")
    assert size <= STATE_BUDGET * 5 // 8  # baselines included (110 B), leaving room for the rest


def test_homes_alike_share_one_profile() -> None:
    """Homes of one site with the same mode, thresholds and kinds of device share their
    Profile: another such home costs only its own object, ids and tag."""
    a = HomeConfig("s1", "h1", "normal", Thresholds(), SIX)
    b = HomeConfig("s1", "h2", "normal", Thresholds(),
                   tuple(replace(d, device=f"{d.device}-h2") for d in SIX))
    assert b.profile is a.profile and a.devices == SIX and b.device(0).device == "pir-1-h2"
    assert a == HomeConfig("s1", "h1", "normal", Thresholds(), SIX) != b
    assert HomeConfig("s1", "h1", "away", Thresholds(), SIX).profile is not a.profile
    extra = deep_size([a, b]) - deep_size([a])
    print(f"configuration per further home (6 devices): {extra} bytes")
    assert extra <= 640


def test_a_state_read_back_shares_the_configuration_tag() -> None:
    """A state read from JSON holds a copy of the tag; the next call swaps in the
    configuration's own, so that a home keeps one tag in memory, not two."""
    cfg = HomeConfig("s1", "h1", "normal", Thresholds(), SIX)
    saved = orjson.loads(orjson.dumps(state_to_json(initial_state(cfg, T0))))
    for obs in (Seen("pir-1", T0 + 1), ActivityObs("pir-1", "motion", None, T0 + 1, False)):
        st = state_from_json(saved)
        assert st.tag == cfg.tag and st.tag is not cfg.tag
        assert observe(cfg, st, obs)[0].tag is cfg.tag


@pytest.mark.parametrize("bad", [
    {},
    {"v": 2},
    "not a dict",
    {**state_to_json(initial_state(HomeConfig("s", "h", "normal", Thresholds(), SIX), T0)),
     "devs": [[1, 2, 3]]},
    {**state_to_json(initial_state(HomeConfig("s", "h", "normal", Thresholds(), SIX), T0)),
     "raised": ["no_such_rule"]},
    {**state_to_json(initial_state(HomeConfig("s", "h", "normal", Thresholds(), SIX), T0)),
     "activity_ms": "yesterday"},
    {**state_to_json(initial_state(HomeConfig("s", "h", "normal", Thresholds(), SIX), T0)),
     "mode": "holiday"},
])
def test_state_from_json_refuses_what_it_did_not_write(bad: Any) -> None:
    """Anything but a written state is a ValueError, never a crash elsewhere later."""
    with pytest.raises(ValueError):
        state_from_json(bad)


def test_state_json_is_plain_json_and_round_trips() -> None:
    """state_to_json is JSON-serialisable and state_from_json restores it exactly."""
    home = Home(start=T0)
    home.silence(BUTTON)
    home.reading(PIR, T0 + MIN, temperature_c=35.0)
    home.run(local(3, 10))
    d = orjson.loads(orjson.dumps(state_to_json(home.state)))
    assert state_from_json(d) == home.state
    assert d["raised"] == ["device_lost", "heat", "inactivity", "welfare_concern"]
    assert d["v"] == 2 and len(d["learn"]["p"]) == 48


def test_a_version_1_state_is_read_with_fresh_baselines() -> None:
    """A state saved before baselines existed loads: its timers and alerts as they were,
    its baselines fresh (learned again from the next activity)."""
    home = Home(start=T0)
    home.silence(BUTTON)
    home.run(local(3, 10))
    d = state_to_json(home.state)
    old = {k: v for k, v in d.items() if k != "learn"} | {"v": 1}
    st = state_from_json(old)
    assert st.devs == home.state.devs and st.home == home.state.home
    assert st.view().learn == Learned.fresh()


def test_a_damaged_baseline_is_refused() -> None:
    """A learn block with a wrong bin count or a value out of range is a ValueError."""
    home = Home(start=T0)
    d = state_to_json(home.state)
    with pytest.raises(ValueError, match="48"):
        state_from_json(d | {"learn": d["learn"] | {"p": [1, 2]}})
    with pytest.raises(ValueError):
        state_from_json(d | {"learn": d["learn"] | {"eager": 1000}})


def test_home_config_refuses_bad_settings() -> None:
    """A bad mode, sleep window or time zone fails when the configuration is built."""
    with pytest.raises(ValueError, match="mode"):
        HomeConfig("s", "h", "holiday", Thresholds(), SIX)
    with pytest.raises(ValueError, match="HH:MM"):
        HomeConfig("s", "h", "normal", Thresholds(sleep_start="25:00"), SIX)
    with pytest.raises(ValueError, match="time zone"):
        HomeConfig("s", "h", "normal", Thresholds(timezone="Mars/Olympus"), SIX)
    with pytest.raises(ValueError, match="twice"):
        HomeConfig("s", "h", "normal", Thresholds(), (PIR, PIR))


def test_repr_names_the_fields() -> None:
    """The packed state prints its fields by name (for logs and failing tests)."""
    st = initial_state(HomeConfig("s", "h", "normal", Thresholds(), SIX), T0)
    assert f"activity_ms={T0}" in repr(st) and isinstance(st, HomeState)
