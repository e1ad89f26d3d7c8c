"""Away and hospital mode suppress the welfare rules, once per episode, and say why."""

from __future__ import annotations

import pytest

from dolbom.alerts.engine import Suppressed
from dolbom.alerts.model import RULE_CLASS, AlertClass, Rule, Thresholds
from tests.alerts.enginekit import BED, DAY, DOOR, MIN, PIR, PLUG, Home, S, local

T0 = local(2, 8)
MODES = ["away", "hospital"]


@pytest.mark.parametrize("mode", MODES)
def test_three_days_away_suppress_every_silence_rule_once(mode: str) -> None:
    """Each silence rule is suppressed once, saying why; technical rules still raise."""
    home = Home(start=T0, mode=mode)
    home.silence(PLUG)
    home.run(T0 + 3 * DAY + 10 * MIN)
    reason = f"home is in {mode} mode"
    concern = home.suppressed(Rule.WELFARE_CONCERN)
    assert [(s.reason, T0 < s.at_ms < local(2, 20)) for s in concern] == [(reason, True)]
    assert [s for s in home.suppressed() if s.rule is not Rule.WELFARE_CONCERN] == [
        Suppressed(Rule.INACTIVITY, local(2, 20), reason),
        Suppressed(Rule.NO_POWER_USE, T0 + DAY, reason),
        Suppressed(Rule.NO_DOOR_USE, T0 + 3 * DAY, reason),
    ]
    assert [r.rule for r in home.raised()] == [Rule.DEVICE_LOST]


@pytest.mark.parametrize("mode", MODES)
def test_away_suppresses_heat_bed_and_night_exit(mode: str) -> None:
    """Reading- and event-driven welfare rules are suppressed too, once per episode."""
    home = Home(start=local(2, 21), mode=mode, thresholds=Thresholds(wandering=True))
    for minute in range(0, 60, 5):
        home.reading(PIR, local(2, 21) + minute * MIN, temperature_c=35.0)
    home.activity(DOOR, local(2, 23), "door", "open")
    home.activity(DOOR, local(2, 23, 5), "door", "open")
    home.activity(BED, local(3, 1), "bed", "out")
    home.run(local(3, 2))
    welfare = [r for r in home.raised() if RULE_CLASS[r.rule] is AlertClass.WELFARE]
    assert welfare == []
    assert sorted(s.rule for s in home.suppressed()) == sorted(
        [Rule.HEAT, Rule.NIGHT_EXIT, Rule.OUT_OF_BED_AT_NIGHT])


def test_back_to_normal_restarts_the_welfare_clocks() -> None:
    """Home from hospital: silence counts from the switch, not from before the stay."""
    home = Home(start=T0, mode="hospital")
    home.run(T0 + 5 * DAY)
    home.set_mode("normal")
    home.tick(T0 + 5 * DAY)  # the service ticks when it changes a home's mode
    home.run(local(7, 20) - 1)
    assert [r.rule for r in home.fixed() if r.rule is not Rule.DEVICE_LOST] == []
    home.run(local(7, 20, 1))
    assert [r.rule for r in home.fixed()] == [Rule.INACTIVITY]
    assert home.fixed()[0].detail["since_ms"] == local(7, 8)
    # The quiet concern too counts from the return, not from before the stay.
    assert [r.detail["since_ms"] for r in home.raised(Rule.WELFARE_CONCERN)] == [local(7, 8)]


def test_a_hot_episode_suppressed_away_raises_once_back() -> None:
    """Heat suppressed while away raises with the first reading after the return."""
    home = Home(start=T0, mode="away")
    for minute in (0, 30, 40):
        home.reading(PIR, T0 + minute * MIN, temperature_c=34.0)
    assert [s.rule for s in home.suppressed()] == [Rule.HEAT]
    home.set_mode("normal")
    home.reading(PIR, T0 + 50 * MIN, temperature_c=34.0)
    assert [r.at_ms for r in home.raised(Rule.HEAT)] == [T0 + 50 * MIN]


def test_a_pending_verdict_confirmed_after_going_away_is_suppressed() -> None:
    """Matured in normal mode, confirmed after the switch to away: suppressed, not raised."""
    home = Home(start=T0, thresholds=Thresholds(no_door_days=1.0))
    home.next_hb[DOOR.device] = T0 + 100 * S  # wakes at 100 s past each 5 minutes
    home.run(T0 + DAY + MIN)  # matured at T0 + 1 day, waiting for the door's next wake
    home.set_mode("away")
    home.run(T0 + DAY + 10 * MIN)
    assert home.raised(Rule.NO_DOOR_USE) == []
    assert home.suppressed(Rule.NO_DOOR_USE) == [
        Suppressed(Rule.NO_DOOR_USE, T0 + DAY, "home is in away mode")]
