"""No door use for 3 days; night exit for residents flagged for wandering."""

from __future__ import annotations

import pytest

from dolbom.alerts.engine import Raise, Suppressed
from dolbom.alerts.model import Priority, Rule, Thresholds
from dolbom.alerts.rules import door
from tests.alerts.enginekit import DAY, DOOR, MIN, PIR, PLUG, Home, local

T0 = local(2, 8)


def test_no_door_use_is_watched_at_three_days_and_never_pushed_alone() -> None:
    """A person who goes out daily (two weeks of habits): no door event for no_door_days
    goes to the watch list at that moment, not a ms before; alone it is never pushed,
    not at three times that either."""
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
    assert home.raised(Rule.NO_DOOR_USE) == []
    assert len(home.watched(Rule.NO_DOOR_USE)) == 1


def test_a_new_homes_unused_door_is_only_watched() -> None:
    """In a home's first two weeks its door habits are unknown: an unused door is watched
    once per gap, never pushed."""
    home = Home(start=T0)
    home.run(T0 + 7 * DAY)
    assert [w.at_ms for w in home.watched(Rule.NO_DOOR_USE)] == [T0 + 3 * DAY]
    assert home.raised(Rule.NO_DOOR_USE) == []


@pytest.mark.parametrize("val", ["open", "closed"])
def test_an_unused_door_is_watched_never_pushed_and_a_door_event_restarts(val: str) -> None:
    """Past 1.5 x the usual gap the door is watched once; alone it is never pushed (some
    people rarely go out); any door event ends the gap, which is learned, so the next
    gap of the same length is nobody's business."""
    home = Home(start=T0, thresholds=Thresholds(no_door_days=1.0))
    home.routine(15)
    home.activity(DOOR, home.now + MIN, "door", "closed")
    used = home.now
    watch = door.limit(home.cfg, home.state.view())
    assert watch == DAY * 3 // 2  # 1.5 x the usual day
    home.routine(6, door_at=None, until=used + 6 * DAY)
    # The usual gap decays a little with each day of the gap (baseline.DECAY).
    [w] = home.watched(Rule.NO_DOOR_USE)
    assert used + watch * 0.97**3 <= w.at_ms <= used + watch
    assert home.raised(Rule.NO_DOOR_USE) == []
    again = used + 6 * DAY + MIN
    home.activity(DOOR, again, "door", val)
    assert door.limit(home.cfg, home.state.view()) >= 6 * DAY * 3 // 2  # learned
    home.routine(6, door_at=None, until=again + 6 * DAY)
    assert len(home.watched(Rule.NO_DOOR_USE)) == 1


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
