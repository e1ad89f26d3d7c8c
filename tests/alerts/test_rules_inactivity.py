"""Inactivity tiers: 12 / 24 / 36 h of awake silence, sleep-window aware (DESIGN.md §5)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dolbom.alerts.engine import DeviceInfo, Raise, Suppressed
from dolbom.alerts.model import Priority, Rule, Thresholds
from dolbom.alerts.rules.clock import awake_between, awake_crossing
from tests.alerts.enginekit import (
    BUTTON,
    DOOR,
    MIN,
    PIR,
    PIR_ONLY,
    PLUG,
    SIX,
    H,
    Home,
    S,
    local,
)

# (last activity, sleep window, tier 1, tier 2, tier 3), local times as (day, hh, mm)
TIERS = [
    # 08:00: 14 h awake until 22:00 covers tier 1; sleep 22-07 pushes the others
    ((2, 8, 0), ("22:00", "07:00"), (2, 20, 0), (3, 17, 0), (4, 14, 0)),
    # an hour before bedtime: the night does not count
    ((2, 21, 0), ("22:00", "07:00"), (3, 18, 0), (4, 15, 0), (5, 12, 0)),
    # silent since the middle of the night: counting starts when the window ends
    ((2, 2, 0), ("22:00", "07:00"), (2, 19, 0), (3, 16, 0), (4, 13, 0)),
    # no sleep window (start == end): wall-clock hours
    ((2, 8, 0), ("00:00", "00:00"), (2, 20, 0), (3, 8, 0), (3, 20, 0)),
    # a window that does not wrap midnight (an afternoon nap)
    ((2, 8, 0), ("13:00", "15:00"), (2, 22, 0), (3, 10, 0), (4, 0, 0)),
]


@pytest.mark.parametrize(("start", "window", "t1", "t2", "t3"), TIERS)
def test_tiers_fire_at_exactly_the_awake_silence(
        start: tuple[int, int, int], window: tuple[str, str], t1: tuple[int, int, int],
        t2: tuple[int, int, int], t3: tuple[int, int, int]) -> None:
    """Tiers 1, 2, 3 raise at 12, 24 and 36 h of awake silence to the ms, not before."""
    home = Home(start=local(*start),
                thresholds=Thresholds(sleep_start=window[0], sleep_end=window[1]))
    for tier, t in enumerate((t1, t2, t3), 1):
        at = local(*t)
        home.run(at - 1)
        assert len(home.raised(Rule.INACTIVITY)) == tier - 1
        home.run(at + 2 * MIN)  # the PIR's next heartbeat vouches for the silence
        r = home.raised(Rule.INACTIVITY)[-1]
        assert (r.at_ms, r.priority, r.detail["tier"]) == (at, Priority.MEDIUM, tier)
        assert r.detail["silent_h"] == 12.0 * tier
        assert r.detail["since_ms"] == local(*start)
    home.run(local(*t3) + 10 * 24 * H)
    assert len(home.raised(Rule.INACTIVITY)) == 3  # nothing after danger


def test_a_night_of_sleep_does_not_count() -> None:
    """Silent from 21:00 to 16:00 the next day is 10 awake hours: no alert."""
    home = Home(start=local(2, 21))
    home.run(local(3, 16))
    assert home.fixed() == []


def test_activity_clears_and_restarts_the_clock() -> None:
    """Motion after tier 1 clears the alert; the next tier 1 is 12 awake hours later."""
    home = Home()
    home.run(local(2, 20, 5))
    assert [r.detail["tier"] for r in home.raised(Rule.INACTIVITY)] == [1]
    home.activity(PIR, local(2, 20, 10))
    [c] = home.cleared(Rule.INACTIVITY)
    assert (c.at_ms, c.reason) == (local(2, 20, 10), "activity resumed")
    home.run(local(3, 17, 10) - 1)  # 1 h 50 min + 10 h 10 min - 1 ms awake
    assert len(home.raised(Rule.INACTIVITY)) == 1
    home.run(local(3, 17, 12))
    assert home.raised(Rule.INACTIVITY)[-1].detail["tier"] == 1


@pytest.mark.parametrize(("type_", "val", "dev"), [
    ("motion", None, PIR), ("presence", None, PIR), ("door", "open", DOOR),
    ("door", "closed", DOOR), ("bed", "in", PIR), ("bed", "out", PIR),
])
def test_every_activity_event_is_a_sign_of_life(type_: str, val: str | None,
                                                dev: DeviceInfo) -> None:
    """Motion, presence, door and bed events, from any device, reset the silence."""
    home = Home()
    home.run(local(2, 19))
    home.activity(dev, local(2, 19), type_, val)
    home.run(local(3, 7))
    assert home.raised(Rule.INACTIVITY) == []


def test_activity_at_the_crossing_ms_wins() -> None:
    """Motion at exactly 12 h is activity, not inactivity."""
    home = Home()
    home.run(local(2, 20) - 1)
    home.activity(PIR, local(2, 20))
    home.run(local(2, 21))
    assert home.fixed() == []


def test_old_backlog_activity_changes_nothing() -> None:
    """Replayed activity older than the last activity neither resets nor clears."""
    home = Home()
    home.run(local(2, 20, 5))
    home.activity(PIR, local(2, 7), hist=True)  # before the start of the silence
    assert home.cleared() == []
    home.run(local(3, 17, 5))
    assert [r.detail["tier"] for r in home.raised(Rule.INACTIVITY)] == [1, 2]


def test_newer_backlog_activity_resets_but_raises_nothing_itself() -> None:
    """Replayed activity newer than the last one moves the silence; it never raises."""
    home = Home()
    home.run(local(2, 12))
    assert home.activity(PIR, local(2, 11), hist=True) == []
    home.run(local(3, 9))
    [r] = home.raised(Rule.INACTIVITY)  # 11 awake hours to 22:00, the 12th after 07:00
    assert (r.at_ms, r.detail["since_ms"]) == (local(3, 8), local(2, 11))


def test_a_dead_pir_gives_device_lost_and_never_inactivity() -> None:
    """Only PIR silent: DEVICE_LOST medium, one Suppressed, never inactivity for it; the
    lost alert is told again when the home has been unseen for a day (devices.unwatched)."""
    home = Home(devices=PIR_ONLY)
    home.run(local(2, 10))
    home.silence(PIR)
    home.run(local(4, 10))  # two days
    lost, again = home.fixed()
    assert (again.rule, again.at_ms, again.detail["unwatched_h"]) == (
        Rule.DEVICE_LOST, local(3, 17), 31)
    assert (lost.rule, lost.priority, lost.device) == (Rule.DEVICE_LOST, Priority.MEDIUM, "pir-1")
    assert lost.at_ms == local(2, 10) + 3 * MIN
    assert lost.detail == {"device": "pir-1", "kind": "multisensor",
                           "last_seen_ms": local(2, 10), "promised_s": 60}
    assert home.suppressed(Rule.INACTIVITY) == [
        Suppressed(Rule.INACTIVITY, local(2, 20), "activity sensors lost")]
    home.revive(PIR, local(4, 10))
    [c] = home.cleared()
    assert (c.rule, c.at_ms) == (Rule.DEVICE_LOST, local(4, 10))
    home.run(local(4, 22) - 1)
    assert home.raised(Rule.INACTIVITY) == []  # 12 awake hours from the return, not before
    home.run(local(4, 22, 2))
    [r] = home.raised(Rule.INACTIVITY)
    assert (r.at_ms, r.detail["since_ms"]) == (local(4, 22), local(4, 10))


def test_a_pir_dying_just_before_the_verdict_gives_device_lost_not_inactivity() -> None:
    """PIR dead a minute before 12 h: DEVICE_LOST before and instead of inactivity."""
    home = Home(devices=PIR_ONLY)
    home.run(local(2, 19, 59))
    home.silence(PIR)
    home.run(local(3, 12))
    assert [r.rule for r in home.fixed()] == [Rule.DEVICE_LOST]
    assert home.suppressed(Rule.INACTIVITY) == [
        Suppressed(Rule.INACTIVITY, local(2, 20, 2), "activity sensors lost")]


def test_the_verdict_waits_for_the_next_heartbeat_and_keeps_its_time() -> None:
    """The verdict comes with the next sensor message and is stamped with the crossing."""
    home = Home(devices=PIR_ONLY)
    home.next_hb[PIR.device] = local(2, 8) + 25 * S  # heartbeats at hh:mm:25
    home.run(local(2, 20) + 24 * S)
    assert home.fixed() == []
    home.run(local(2, 20) + 25 * S)
    [(when, r)] = [(t, a) for t, a in home.log
                   if isinstance(a, Raise) and a.rule is Rule.INACTIVITY]
    assert (when, r.at_ms) == (local(2, 20) + 25 * S, local(2, 20))


def test_a_lost_motion_sensor_pauses_inactivity_even_with_door_and_bed() -> None:
    """The home's only motion sensor lost: door and bed alone do not vouch for a silence,
    so the care worker hears of the lost sensor (medium) and inactivity is set aside; 12
    awake hours with no sign of anyone, the lost alert is told again (not inactivity)."""
    home = Home(devices=SIX)
    home.silence(PIR)
    home.run(local(2, 20, 5))
    assert [(r.rule, r.priority, r.at_ms) for r in home.raised()] == [
        (Rule.DEVICE_LOST, Priority.MEDIUM, local(2, 8, 3)),
        (Rule.DEVICE_LOST, Priority.MEDIUM, local(2, 20))]
    assert home.raised()[1].detail["unwatched_h"] == 12
    assert [(s.rule, s.reason) for s in home.suppressed()] == [
        (Rule.WELFARE_CONCERN, "motion sensors lost")]


def test_a_blind_home_where_the_door_and_plug_show_life_is_not_told_again() -> None:
    """The motion sensor is dead but the resident uses the door and the kettle every day:
    someone is about, so the lost alert is said once, not again and again."""
    home = Home(devices=SIX)
    home.silence(PIR)
    for day in range(2, 6):
        for hh in (8, 12, 18):
            home.reading(PLUG, local(day, hh), power_w=600.0)
            home.reading(PLUG, local(day, hh, 10), power_w=0.0)
            if hh == 12:
                home.activity(DOOR, local(day, 14), "door", "open")
    home.run(local(6, 8))
    assert [(r.rule, r.priority) for r in home.raised()] == [
        (Rule.DEVICE_LOST, Priority.MEDIUM)]


def test_a_home_without_activity_sensors_suppresses_inactivity_once() -> None:
    """Nothing can see the resident: inactivity is suppressed once, never raised."""
    home = Home(devices=(BUTTON,))
    home.run(local(5, 8))
    assert home.fixed() == []
    assert home.suppressed() == [Suppressed(Rule.INACTIVITY, local(2, 20), "no activity sensor")]


@pytest.mark.parametrize(("a", "b", "awake_h"), [
    ((2, 8), (2, 20), 12), ((2, 21), (3, 8), 2), ((2, 23), (3, 6), 0), ((2, 8), (4, 8), 30),
])
def test_awake_between_and_crossing_agree(a: tuple[int, int], b: tuple[int, int],
                                          awake_h: int) -> None:
    """The awake time between two instants, and the crossing that inverts it."""
    args = ("Asia/Seoul", "22:00", "07:00")
    assert awake_between(local(*a), local(*b), *args) == awake_h * H
    if awake_h:
        assert awake_crossing(local(*a), awake_h * H, *args) <= local(*b)


def test_the_sleep_window_follows_the_wall_clock_across_daylight_saving() -> None:
    """On a spring-forward night the 22:00-07:00 window lasts 8 real hours, not 9."""
    ny = "America/New_York"
    evening = round(datetime(2025, 3, 8, 20, tzinfo=ZoneInfo(ny)).timestamp() * 1000)
    morning = round(datetime(2025, 3, 9, 9, tzinfo=ZoneInfo(ny)).timestamp() * 1000)
    assert morning - evening == 12 * H
    assert awake_between(evening, morning, ny, "22:00", "07:00") == 4 * H
    assert awake_crossing(evening, 4 * H, ny, "22:00", "07:00") == morning
