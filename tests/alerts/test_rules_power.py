"""No power use for 24 h in homes with a smart plug."""

from __future__ import annotations

from dolbom.alerts.engine import Clear, Watch
from dolbom.alerts.model import Priority, Rule
from tests.alerts.enginekit import DAY, DOOR, MIN, PIR, PLUG, Home, local

T0 = local(2, 8)


def test_no_power_use_is_watched_at_24_hours_raised_at_72_and_use_clears() -> None:
    """A new home: no power_w above 5 W for 24 h goes to the watch list then, not a push;
    at 72 h (three times the default) it is raised; a use clears it."""
    home = Home(start=T0)
    home.reading(PLUG, T0 + 60 * MIN, power_w=800.0)
    home.reading(PLUG, T0 + 70 * MIN, power_w=5.0)  # standby is not use
    home.run(T0 + 60 * MIN + DAY - 1)
    assert home.watched(Rule.NO_POWER_USE) == []
    home.run(T0 + 60 * MIN + DAY)
    assert home.watched(Rule.NO_POWER_USE) == [Watch(
        Rule.NO_POWER_USE, T0 + 60 * MIN + DAY,
        ("plug not used for 24 h (usually at most 1 h)",))]
    home.run(T0 + 60 * MIN + 3 * DAY - 1)
    assert home.raised(Rule.NO_POWER_USE) == []
    home.run(T0 + 60 * MIN + 3 * DAY)
    [r] = home.raised(Rule.NO_POWER_USE)
    assert (r.priority, r.at_ms, r.detail["hours"], r.detail["since_ms"]) == (
        Priority.MEDIUM, T0 + 60 * MIN + 3 * DAY, 72.0, T0 + 60 * MIN)
    assert "far beyond" in r.detail["reasons"][0]
    home.reading(PLUG, T0 + 4 * DAY, power_w=40.0)
    assert home.cleared(Rule.NO_POWER_USE) == [
        Clear(Rule.NO_POWER_USE, T0 + 4 * DAY, "power used")]


def test_a_plug_used_every_other_day_is_not_news_at_24_hours() -> None:
    """This home's plug is used every 40 h: a 30 h gap is its habit (nothing at all), a
    gap past 1.5 x the usual goes to the watch list, one far past it is raised."""
    home = Home(start=T0)
    t = T0
    for _ in range(6):
        t += 40 * 60 * MIN
        home.run(t)
        home.reading(PLUG, t, power_w=700.0)
    watched = len(home.watched(Rule.NO_POWER_USE))
    home.run(t + 59 * 60 * MIN)
    assert len(home.watched(Rule.NO_POWER_USE)) == watched  # 59 h < 1.5 x 40 h
    home.run(t + 60 * 60 * MIN)
    assert len(home.watched(Rule.NO_POWER_USE)) == watched + 1
    home.run(t + 100 * 60 * MIN - 1)
    assert home.raised(Rule.NO_POWER_USE) == []
    home.run(t + 100 * 60 * MIN)  # 2.5 x 40 h
    assert [r.at_ms for r in home.raised(Rule.NO_POWER_USE)] == [t + 100 * 60 * MIN]


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
    assert [r.at_ms for r in home.watched(Rule.NO_POWER_USE)] == [T0 + 60 * MIN + DAY]
    assert home.raised(Rule.NO_POWER_USE) == []
