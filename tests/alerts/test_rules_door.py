"""No door use for 3 days; night exit for residents flagged for wandering."""

from __future__ import annotations

import pytest

from dolbom.alerts.engine import Clear, Raise, Suppressed
from dolbom.alerts.model import Priority, Rule, Thresholds
from dolbom.alerts.rules import door
from tests.alerts.enginekit import DAY, DOOR, MIN, PIR, PLUG, Home, local

T0 = local(2, 8)


def test_no_door_use_is_watched_at_three_days_and_raised_at_nine() -> None:
    """A person who goes out daily (two weeks of habits): no door event for no_door_days
    goes to the watch list at that moment, not a ms before; three times that is raised."""
    home = Home(start=T0)
    home.routine(15)  # out every morning at 10:00
    home.activity(DOOR, home.now + MIN, "door", "closed")
    used = home.now
    home.routine(7, door_at=None, until=used + 3 * DAY - 1)
    assert home.watched(Rule.NO_DOOR_USE) == []
    home.run(used + 3 * DAY + 5 * MIN)  # the door sensor's next wake vouches for it
    usual = home.state.view().learn.door_gap / 1440
    [w] = home.watched(Rule.NO_DOOR_USE)
    assert (w.at_ms, w.reasons) == (
        used + 3 * DAY, (f"door not used for 3.0 days (usually at most {usual:.1f} days)",))
    assert w.reasons_ko == (f"문 사용 3.0일 없음 (평소 최장 {usual:.1f}일)",)
    assert home.raised(Rule.NO_DOOR_USE) == []
    home.routine(10, door_at=None, until=used + 9 * DAY + 5 * MIN)
    [r] = home.raised(Rule.NO_DOOR_USE)
    assert (r.priority, r.at_ms, r.detail["days"], r.detail["since_ms"]) == (
        Priority.MEDIUM, used + 9 * DAY, 9.0, used)


def test_a_new_homes_unused_door_is_only_watched() -> None:
    """In a home's first two weeks its door habits are unknown: an unused door is watched
    once per gap, never pushed."""
    home = Home(start=T0)
    home.run(T0 + 7 * DAY)
    assert [w.at_ms for w in home.watched(Rule.NO_DOOR_USE)] == [T0 + 3 * DAY]
    assert home.raised(Rule.NO_DOOR_USE) == []


@pytest.mark.parametrize("val", ["open", "closed"])
def test_a_door_event_clears_and_restarts(val: str) -> None:
    """Any door event clears the alert; the next one matures again after it."""
    # ... and is sent with the door sensor's next wake, which vouches for the silence.
    home = Home(start=T0, thresholds=Thresholds(no_door_days=1.0))
    home.routine(15)
    home.activity(DOOR, home.now + MIN, "door", "closed")
    used = home.now
    watch, push = door.limits(home.cfg, home.state.view())
    assert (watch, push) == (DAY * 3 // 2, DAY * 3)  # 1.5 and 3 x the usual day
    home.routine(4, door_at=None, until=used + push + 5 * MIN)
    # The usual gap decays a little with each day of the gap (baseline.DECAY).
    [first] = home.raised(Rule.NO_DOOR_USE)
    assert used + push * 0.97**3 <= first.at_ms <= used + push
    assert used + watch * 0.97**3 <= home.watched(Rule.NO_DOOR_USE)[-1].at_ms <= used + watch
    home.activity(DOOR, used + push + 6 * MIN, "door", val)
    assert home.cleared(Rule.NO_DOOR_USE) == [
        Clear(Rule.NO_DOOR_USE, used + push + 6 * MIN, "door used")]
    # The raised gap is learned too (a changed habit is told once): the next push
    # comes later than the first.
    again = home.now
    push2 = door.limits(home.cfg, home.state.view())[1]
    assert push2 > push
    home.routine(8, door_at=None, until=again + push2 + 5 * MIN)
    [_, second] = home.raised(Rule.NO_DOOR_USE)
    assert second.at_ms - again > first.at_ms - used


def test_only_homes_with_a_door_sensor() -> None:
    """A home without a door sensor never gets a no-door-use verdict."""
    home = Home(devices=(PIR, PLUG), start=T0)
    home.run(T0 + 5 * DAY)
    assert home.raised(Rule.NO_DOOR_USE) == []
    assert home.suppressed(Rule.NO_DOOR_USE) == []


def test_a_lost_door_sensor_suppresses_and_restarts_when_back() -> None:
    """Door sensor lost: the verdict is suppressed with the reason; back, the 3 days restart."""
    home = Home(start=T0)
    home.silence(DOOR)
    home.run(T0 + 3 * DAY + MIN)
    assert home.raised(Rule.NO_DOOR_USE) == []
    assert home.suppressed(Rule.NO_DOOR_USE) == [
        Suppressed(Rule.NO_DOOR_USE, T0 + 3 * DAY, "door sensor lost")]
    home.revive(DOOR, T0 + 4 * DAY)
    home.run(T0 + 7 * DAY - 1)
    assert home.watched(Rule.NO_DOOR_USE) == []
    home.run(T0 + 7 * DAY)
    assert [r.at_ms for r in home.watched(Rule.NO_DOOR_USE)] == [T0 + 7 * DAY]


# (local time of a door event, its value, wandering flag, hist, raises)
NIGHT = [
    ((2, 23, 30), "open", True, False, True),
    ((3, 5, 59), "open", True, False, True),
    ((2, 22, 0), "open", True, False, True),  # the window starts at 22:00
    ((3, 6, 0), "open", True, False, False),  # and ends before 06:00
    ((2, 21, 59), "open", True, False, False),
    ((2, 23, 30), "closed", True, False, False),
    ((2, 23, 30), "open", False, False, False),  # not flagged for wandering
    ((2, 23, 30), "open", True, True, False),  # replayed backlog is not an exit now
]


@pytest.mark.parametrize(("when", "val", "wandering", "hist", "raises"), NIGHT)
def test_night_exit(when: tuple[int, int, int], val: str, wandering: bool, hist: bool,
                    raises: bool) -> None:
    """A live door "open" in the night window raises NIGHT_EXIT at once, for wanderers."""
    home = Home(start=local(2, 20), thresholds=Thresholds(wandering=wandering))
    at = local(*when)
    if hist:
        home.run(at + MIN)
    acts = home.activity(DOOR, at, "door", val, hist=hist)
    expected = [Raise(Rule.NIGHT_EXIT, Priority.MEDIUM, at, device="door-1",
                      detail={"device": "door-1"})]
    assert [a for a in acts if isinstance(a, Raise)] == (expected if raises else [])
