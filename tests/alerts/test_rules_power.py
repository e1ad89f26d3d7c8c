"""No power use for 24 h in homes with a smart plug."""

from __future__ import annotations

from dolbom.alerts.engine import Clear, Raise
from dolbom.alerts.model import Priority, Rule
from tests.alerts.enginekit import DAY, DOOR, MIN, PIR, PLUG, Home, local

T0 = local(2, 8)


def test_no_power_use_at_exactly_24_hours_and_use_clears() -> None:
    """No power_w above 5 W for 24 h raises then; a use clears it."""
    home = Home(start=T0)
    home.reading(PLUG, T0 + 60 * MIN, power_w=800.0)
    home.reading(PLUG, T0 + 70 * MIN, power_w=5.0)  # standby is not use
    home.run(T0 + 60 * MIN + DAY - 1)
    assert home.raised(Rule.NO_POWER_USE) == []
    home.run(T0 + 60 * MIN + DAY)
    assert home.raised(Rule.NO_POWER_USE) == [Raise(
        Rule.NO_POWER_USE, Priority.MEDIUM, T0 + 60 * MIN + DAY,
        detail={"hours": 24.0, "since_ms": T0 + 60 * MIN})]
    home.reading(PLUG, T0 + 2 * DAY, power_w=40.0)
    assert home.cleared(Rule.NO_POWER_USE) == [
        Clear(Rule.NO_POWER_USE, T0 + 2 * DAY, "power used")]


def test_only_homes_with_a_plug() -> None:
    """Without a smart plug there is no power rule."""
    home = Home(devices=(PIR, DOOR), start=T0)
    home.run(T0 + 3 * DAY)
    assert home.raised(Rule.NO_POWER_USE) == []


def test_replayed_use_moves_the_clock_but_raises_nothing() -> None:
    """hist power use newer than the last counts as use; older changes nothing."""
    home = Home(start=T0)
    home.run(T0 + 2 * 60 * MIN)
    assert home.reading(PLUG, T0 + 60 * MIN, hist=True, power_w=900.0) == []
    home.reading(PLUG, T0 + 30 * MIN, hist=True, power_w=900.0)
    home.run(T0 + 60 * MIN + DAY)
    assert [r.at_ms for r in home.raised(Rule.NO_POWER_USE)] == [T0 + 60 * MIN + DAY]
