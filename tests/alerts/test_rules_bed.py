"""Out of bed at night for more than 30 min."""

from __future__ import annotations

import pytest

from dolbom.alerts.engine import Clear, Suppressed
from dolbom.alerts.model import Priority, Rule
from tests.alerts.enginekit import BED, DOOR, MIN, PIR, PLUG, Home, S, local

T0 = local(2, 20)


@pytest.mark.parametrize(("out", "back", "raise_at"), [
    ((3, 2, 0), None, (3, 2, 30)),
    ((3, 2, 0), (3, 2, 29), None),
    ((3, 2, 0), (3, 2, 30), None),  # "in" at the very ms of the verdict wins
    ((3, 5, 50), None, (3, 6, 20)),  # out inside the night, verdict after it ended
    ((2, 21, 0), None, None),  # out before the night window
    ((3, 6, 0), None, None),
])
def test_out_of_bed_at_night(out: tuple[int, int, int], back: tuple[int, int, int] | None,
                             raise_at: tuple[int, int, int] | None) -> None:
    """"out" in the night window and no "in" within 30 min raises at out + 30 min."""
    home = Home(start=T0)
    home.activity(BED, local(*out), "bed", "out")
    if back:
        home.activity(BED, local(*back), "bed", "in")
    home.run(local(3, 8))
    rs = home.raised(Rule.OUT_OF_BED_AT_NIGHT)
    assert [r.at_ms for r in rs] == ([local(*raise_at)] if raise_at else [])
    assert all(r.priority is Priority.MEDIUM and r.detail["out_since_ms"] == local(*out)
               for r in rs)


def test_back_in_bed_clears() -> None:
    """"in" after the alert clears it; the next night's "out" starts a new episode."""
    home = Home(start=T0)
    home.activity(BED, local(3, 1), "bed", "out")
    home.run(local(3, 1, 45))
    home.activity(BED, local(3, 1, 50), "bed", "in")
    assert home.cleared(Rule.OUT_OF_BED_AT_NIGHT) == [
        Clear(Rule.OUT_OF_BED_AT_NIGHT, local(3, 1, 50), "back in bed")]
    home.activity(PIR, local(3, 21, 30))  # an evening about the home, then bed
    home.activity(BED, local(3, 21, 40), "bed", "in")
    home.activity(BED, local(3, 23), "bed", "out")
    home.run(local(3, 23, 31))
    assert [r.at_ms for r in home.raised(Rule.OUT_OF_BED_AT_NIGHT)] == [
        local(3, 1, 30), local(3, 23, 30)]


def test_replayed_out_starts_nothing() -> None:
    """A hist "out" is history: no out-of-bed episode."""
    home = Home(start=T0)
    home.run(local(3, 3))
    home.activity(BED, local(3, 2), "bed", "out", hist=True)
    home.run(local(3, 4))
    assert home.raised(Rule.OUT_OF_BED_AT_NIGHT) == []


def test_a_lost_bed_sensor_suppresses_the_verdict() -> None:
    """A bed sensor lost after "out" gives DEVICE_LOST and a suppressed out-of-bed verdict."""
    home = Home(start=T0)
    home.activity(BED, local(3, 2) - 30 * S, "bed", "out")
    home.silence(BED)
    home.run(local(3, 4))
    assert home.raised(Rule.OUT_OF_BED_AT_NIGHT) == []
    assert home.suppressed(Rule.OUT_OF_BED_AT_NIGHT) == [
        Suppressed(Rule.OUT_OF_BED_AT_NIGHT, local(3, 2) + 29 * MIN + 30 * S, "bed sensor lost")]
    assert [r.rule for r in home.raised()] == [Rule.DEVICE_LOST]


def _night(home: Home, *, evening_motion: bool = True) -> None:
    """An evening about the home (unless not), in bed at 22:00, up at 02:00."""
    if evening_motion:
        home.activity(PIR, local(2, 21, 50))
    home.activity(BED, local(2, 22), "bed", "in")
    home.activity(BED, local(3, 2), "bed", "out")


def test_up_and_moving_is_a_restless_night_on_the_watch_list() -> None:
    """Out of bed with movement since: watched once that night, never raised."""
    home = Home(start=T0)
    _night(home)
    home.activity(PIR, local(3, 2, 5))
    home.activity(PIR, local(3, 2, 25))
    home.run(local(3, 4))
    assert home.raised(Rule.OUT_OF_BED_AT_NIGHT) == []
    assert [w.at_ms for w in home.watched(Rule.OUT_OF_BED_AT_NIGHT)] == [local(3, 2, 30)]


def test_up_and_still_with_a_seeing_motion_sensor_is_raised() -> None:
    """Out of bed and no movement since, while the motion sensor is alive and saw the
    evening: possibly fallen, raised."""
    home = Home(start=T0)
    _night(home)
    home.run(local(3, 4))
    rs = home.raised(Rule.OUT_OF_BED_AT_NIGHT)
    assert [r.at_ms for r in rs] == [local(3, 2, 30)]
    assert "possibly fallen" in rs[0].detail["reasons"][0]


def test_a_dead_motion_sensor_does_not_vouch_for_stillness() -> None:
    """The motion sensor died before the night (not yet declared lost at 02:30): its
    silence is not "no movement", so the episode is only watched."""
    home = Home(start=T0, devices=(PIR, DOOR, BED, PLUG))
    _night(home)
    home.catch_up(local(3, 1, 58))
    home.silence(PIR)  # its last heartbeat was before the person got up
    home.run(local(3, 2, 31))
    assert home.raised(Rule.OUT_OF_BED_AT_NIGHT) == []
    assert len(home.watched(Rule.OUT_OF_BED_AT_NIGHT)) == 1


def test_a_motion_sensor_blind_since_the_day_before_does_not_vouch() -> None:
    """The motion sensor heartbeats but has seen nothing since the morning before (blind):
    "no movement since getting up" says nothing, so the episode is only watched."""
    home = Home(start=local(2, 8))
    home.activity(PIR, local(2, 9))
    home.activity(BED, local(2, 13), "bed", "in")  # life the blind sensor does not see
    home.activity(BED, local(2, 13, 30), "bed", "out")
    home.activity(BED, local(2, 22), "bed", "in")
    home.activity(BED, local(3, 2), "bed", "out")
    home.run(local(3, 3))
    assert home.raised(Rule.OUT_OF_BED_AT_NIGHT) == []
    assert len(home.watched(Rule.OUT_OF_BED_AT_NIGHT)) == 1
