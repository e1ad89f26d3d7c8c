"""Absence is not inactivity: a silence that began with the person going out through the
door goes to the watch list, on every rule that would otherwise read it as a concern;
a person who comes home and then falls silent is judged as usual."""

from __future__ import annotations

from dolbom.alerts.model import Rule
from tests.alerts.enginekit import DAY, DOOR, MIN, PIR, PLUG, H, Home, local

T0 = local(2, 0)


def learned_home(days: int = 15) -> Home:
    """A home whose resident lived ``days`` ordinary days (moving 07-22 h, the door at
    10 h, the plug at noon): its habits are known, the door's too."""
    home = Home(start=T0)
    home.routine(days)
    return home


def leave(home: Home, at: int) -> None:
    """Out through the hall: the hall PIR sees them go, the door opens and closes."""
    home.activity(PIR, at)
    home.activity(DOOR, at + MIN, "door", "open")
    home.activity(DOOR, at + MIN + 5_000, "door", "closed")
    home.activity(PIR, at + MIN + 40_000)  # the hall PIR still holding, just after


def out_and_back(home: Home) -> int:
    """Out at 09:00 the next morning, back through the door three hours later; returns
    when they came back."""
    out = home.now + 11 * H
    home.run(out - 1)
    leave(home, out)
    back = out + 3 * H
    home.activity(DOOR, back, "door", "open")
    home.activity(DOOR, back + 5_000, "door", "closed")
    return back


def test_a_stay_nobody_announced_is_watched_on_every_tier_and_pushes_nothing() -> None:
    """Gone out at 09:00 and not back for five days (a hospital stay nobody told us of):
    each inactivity tier goes to the watch list as "not at home", and neither the
    inactivity tiers, the quiet concern, the plug, the door nor the two together push."""
    home = learned_home()
    out = home.now + 11 * H  # the next morning, 09:00
    home.run(out - 1)
    pushed_before = len(home.raised())
    leave(home, out)
    home.run(out + 5 * DAY)
    assert home.raised()[pushed_before:] == []
    watched = [w.reasons[0] for w in home.watched(Rule.INACTIVITY)]
    assert len(watched) == 3 and all("not at home" in r for r in watched)
    assert {w.rule for w in home.watched()} >= {Rule.INACTIVITY, Rule.NO_POWER_USE,
                                                Rule.NO_DOOR_USE}


def test_coming_home_and_then_silence_is_judged_as_silence_at_home() -> None:
    """Back through the door after hours out, and then nothing more: the door was an
    arrival, so the silence is inside the home, and the care worker is told within hours
    as for any silence at a time this person is always about. In this home whoever
    comes in is always seen within minutes, so it is told as what it may be: the
    motion sensor not seeing, or the resident unable to move (``test_rules_blind.py``);
    the 24 h alarm tier still comes."""
    home = learned_home()
    back = out_and_back(home)
    home.run(back + 40 * H)
    told = [r for r in home.raised() if r.at_ms > back]
    assert told[0].rule is Rule.SENSOR_BLIND and told[0].at_ms - back < 8 * H
    assert "unable to move" in told[0].detail["reasons"][0]
    assert [r.detail["tier"] for r in told if r.rule is Rule.INACTIVITY][:1] == [2]
    assert [w for w in home.watched(Rule.INACTIVITY) if w.at_ms > back
            and "not at home" in w.reasons[0]] == []


def test_coming_home_and_then_silence_where_arrivals_are_not_seen_is_the_concern() -> None:
    """The same, in a home whose motion sensor does not see the kettle (nor, so, tell
    whether it sees the door): the quiet concern is pushed within hours."""
    home = Home(start=T0)
    for d in range(15):
        base = local(2 + d, 0)
        for t in range(base + 7 * H, base + 22 * H, 20 * MIN):
            home.activity(PIR, t)
            if t == base + 12 * H:
                home.reading(PLUG, t + 5 * MIN, power_w=600.0)  # next seen 15 min later
    back = out_and_back(home)
    home.run(back + 10 * H)
    told = [r for r in home.raised(Rule.WELFARE_CONCERN) if r.at_ms > back]
    assert told and told[0].at_ms - back < 8 * H
    assert [w for w in home.watched(Rule.INACTIVITY) if w.at_ms > back] == []
    assert [r for r in home.raised(Rule.SENSOR_BLIND) if r.at_ms > back] == []


def test_a_door_used_while_someone_is_about_is_a_way_out_not_an_arrival() -> None:
    """The door used minutes after a movement inside is someone leaving (or a visitor
    leaving): the silence after it is watched as an absence, not pushed."""
    home = learned_home()
    out = home.now + 11 * H
    home.run(out - 1)
    home.activity(PIR, out)
    home.activity(DOOR, out + 5 * MIN, "door", "open")
    home.run(out + 14 * H)
    assert [r for r in home.raised() if r.at_ms > out] == []
    assert home.watched(Rule.WELFARE_CONCERN)
