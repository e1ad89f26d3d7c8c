"""No power use for 24 h in homes with a smart plug."""

from __future__ import annotations

from dolbom.alerts.model import Rule
from tests.alerts.enginekit import DAY, DOOR, MIN, PIR, PLUG, Home, local

T0 = local(2, 8)


def test_no_power_use_is_watched_past_the_habit_and_never_pushed_alone() -> None:
    """A plug used daily: unused for 1.5 x its usual gap goes to the watch list once;
    alone it is never pushed, even after a week (a plug is one appliance, not the
    person); the gap it was is learned when the plug is used again."""
    home = Home(start=T0)
    home.routine(8)  # the plug used daily at noon: the home knows its habit
    home.reading(PLUG, home.now + MIN, power_w=800.0)
    used = home.now
    home.reading(PLUG, used + 10 * MIN, power_w=5.0)  # standby is not use
    assert home.state.view().learn.plug_gap == 24 * 60  # used daily: 24 h is its habit
    home.run(used + 36 * 60 * MIN - 1)
    assert home.watched(Rule.NO_POWER_USE) == []
    home.run(used + 36 * 60 * MIN)  # 1.5 x the usual
    [w] = home.watched(Rule.NO_POWER_USE)
    assert w.reasons == ("plug not used for 36 h (usually at most 24 h)",)
    home.run(used + 8 * DAY)
    assert home.raised(Rule.NO_POWER_USE) == []
    assert len(home.watched(Rule.NO_POWER_USE)) == 1  # once per gap
    home.reading(PLUG, used + 8 * DAY + MIN, power_w=40.0)
    # the use ends the gap, and a habit that changed is learned (told once, not weekly)
    assert home.state.view().learn.plug_gap == 8 * 24 * 60 + 1


def test_a_new_home_is_only_watched() -> None:
    """While a home's habits are not known (its first week), an unused plug goes to the
    watch list once per gap and is never pushed."""
    home = Home(start=T0)
    home.run(T0 + 6 * DAY)
    assert [w.at_ms for w in home.watched(Rule.NO_POWER_USE)] == [T0 + DAY]
    assert home.raised(Rule.NO_POWER_USE) == []


def test_a_plug_used_every_other_day_is_not_news_at_24_hours() -> None:
    """This home's plug is used every 40 h: a 40 h gap is its habit (nothing at all), a
    gap past 1.5 x the usual goes to the watch list."""
    home = Home(start=T0)
    t = T0
    for _ in range(6):
        t += 40 * 60 * MIN
        home.routine(1, plug_at=None)
        home.run(t)
        home.reading(PLUG, t, power_w=700.0)
    usual = home.state.view().learn.plug_gap * MIN
    assert 30 * 60 * MIN <= usual <= 40 * 60 * MIN  # the 40 h habit (decaying daily)
    watched = len(home.watched(Rule.NO_POWER_USE))
    home.routine(3, plug_at=None, until=t + usual * 3 // 2)
    [w] = home.watched(Rule.NO_POWER_USE)[watched:]
    # 1.5 x the usual gap, which decays a little with each day learned meanwhile (DECAY)
    assert t + usual * 3 // 2 * 0.97**3 <= w.at_ms <= t + usual * 3 // 2
    home.routine(6, plug_at=None, until=t + usual * 3)
    assert home.raised(Rule.NO_POWER_USE) == []


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
