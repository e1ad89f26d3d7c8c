"""A motion sensor that heartbeats but sees nothing is a technical matter, never an
inactivity verdict (DESIGN.md §5, "silence is not safety" per sensor): two signs of life
hours apart with no movement, or one sign unseen in a home whose own days show that
such a sign is always seen. What one sign cannot tell apart from a fall just inside
the door is told in both words, and the alarm tier still comes."""

from __future__ import annotations

from typing import Any

from dolbom.alerts import engine
from dolbom.alerts.model import Rule
from dolbom.alerts.rules import blind
from dolbom.alerts.rules.state import Work
from tests.alerts.enginekit import DAY, DOOR, MIN, PIR, PLUG, H, Home, local

T0 = local(2, 0)


def learned_home(days: int = 15, plug_seen: bool = True) -> Home:
    """``days`` ordinary days: moving 07-22 h (a motion every 20 min), the plug switched on
    at noon (and off at 12:30). ``plug_seen``: the motion sensor sees the kettle (a
    movement the same minute); otherwise the kitchen is out of its sight (switched on at
    12:05, the next movement comes 15 min later)."""
    home = Home(start=T0)
    for d in range(days):
        base = local(2 + d, 0)
        for t in range(base + 7 * H, base + 22 * H, 20 * MIN):
            if t == base + 12 * H and plug_seen:
                home.reading(PLUG, t, power_w=600.0)
            home.activity(PIR, t)
            if t == base + 12 * H and not plug_seen:
                home.reading(PLUG, t + 5 * MIN, power_w=600.0)
            if t == base + 12 * H + 20 * MIN:
                home.reading(PLUG, t + 10 * MIN, power_w=0.0)
    return home


def learn(home: Home) -> dict[str, Any]:
    learned: dict[str, Any] = engine.state_to_json(home.state)["learn"]
    return learned


def after(actions: list[Any], at: int) -> list[Any]:
    return [a for a in actions if a.at_ms > at]


def test_a_home_learns_whether_its_signs_of_life_are_seen() -> None:
    assert learn(learned_home(10))["seen_bits"] & blind.LAST == 0b111_1111
    assert learn(learned_home(3))["seen_bits"] & blind.LAST == 0b111
    assert learn(learned_home(10, plug_seen=False))["seen_bits"] & blind.LAST == 0


def test_two_signs_hours_apart_with_no_movement_are_the_sensor_not_inactivity() -> None:
    """The kettle at 08:00 and again at 15:00, and the sensor has seen nothing since the
    night before: a blind sensor (medium, the care worker is told), and the inactivity
    tiers are set aside for that silence. (The quiet concern may come first: at 09:00
    one kettle is all there is, in a home whose kettle is out of the sensor's sight, so
    nothing yet sets the silence apart from a fall.)"""
    home = learned_home(plug_seen=False)
    day = local(17, 0)
    home.run(day + 8 * H - 1)
    for on in (day + 8 * H, day + 15 * H):
        home.reading(PLUG, on, power_w=600.0)
        home.reading(PLUG, on + 20 * MIN, power_w=0.0)
    home.run(day + 2 * DAY)
    [r] = after(home.raised(Rule.SENSOR_BLIND), day)
    assert "while the door, bed or plug showed someone" in r.detail["reasons"][0]
    assert after(home.raised(Rule.INACTIVITY), day) == []
    assert after(home.suppressed(Rule.INACTIVITY), day)


def test_one_unseen_sign_where_signs_are_always_seen_is_told_in_hours_in_both_words() -> None:
    """Up and about until 09:00, the kettle at 10:00, and then nobody is seen. In this home
    the kettle is always seen: the sensor may have gone blind, or the resident may have
    fallen in the kitchen. The care worker is told within hours (sensor_blind, medium,
    "the sensor may not see, or the resident may be unable to move; call"); the caution
    tier goes to the watch list and the 24 h alarm tier is still raised."""
    home = learned_home()
    day = local(17, 0)
    morning(home, day)
    home.reading(PLUG, day + 10 * H, power_w=600.0)
    home.reading(PLUG, day + 10 * H + 30 * MIN, power_w=0.0)
    home.run(day + 3 * DAY)
    [r] = after(home.raised(Rule.SENSOR_BLIND), day)
    assert r.at_ms - (day + 10 * H) <= 8 * H
    assert "unable to move" in r.detail["reasons"][0]
    assert "움직이지 못할" in r.detail["reasons_ko"][0]
    assert 1 <= r.detail["unseen_h"] <= 8  # what the push says (no reasons in a push)
    quiet = [c for c in home.raised(Rule.WELFARE_CONCERN)
             if c.detail.get("signal") in ("quiet", "trickle")]
    assert after(quiet, day) == []  # (the plug and the door unused for days: another matter)
    assert [w.reasons[0] for w in after(home.watched(Rule.INACTIVITY), day)][:1] == [
        f"no activity for 12 h of awake time; the motion sensor may not see ({blind.REASON})"]
    tiers = [a.detail["tier"] for a in after(home.raised(Rule.INACTIVITY), day)]
    assert tiers[:1] == [2]


def test_one_unseen_sign_is_nothing_where_signs_are_not_usually_seen() -> None:
    """The same day in a home whose kitchen is out of the sensor's sight: the kettle says
    nothing about the sensor, and the silence is the quiet concern's, as before."""
    home = learned_home(plug_seen=False)
    day = local(17, 0)
    morning(home, day)
    home.reading(PLUG, day + 10 * H, power_w=600.0)
    home.run(day + DAY)
    assert after(home.raised(Rule.SENSOR_BLIND), day) == []
    [r] = after(home.raised(Rule.WELFARE_CONCERN), day)
    assert r.at_ms - (day + 9 * H) <= 8 * H


def test_a_plug_that_switches_on_while_the_home_is_empty_is_no_sign() -> None:
    """Out through the door at 09:00; a lamp on a timer comes on at 11:00. Nobody is at
    home to be seen: the absence is watched, the sensor is not blamed."""
    home = learned_home()
    day = local(17, 0)
    morning(home, day)
    home.activity(DOOR, day + 9 * H + MIN, "door", "open")
    home.activity(DOOR, day + 9 * H + MIN + 5_000, "door", "closed")
    home.reading(PLUG, day + 11 * H, power_w=40.0)
    home.run(day + DAY)
    assert after(home.raised(), day) == []
    assert after(home.watched(), day)


def morning(home: Home, day: int) -> None:
    """Up at 07:00 and seen every 20 min until 09:00."""
    for t in range(day + 7 * H, day + 9 * H + 1, 20 * MIN):
        home.activity(PIR, t)


def test_a_movement_clears_it_and_a_sign_told_as_blind_teaches_nothing() -> None:
    home = learned_home()
    day = local(17, 0)
    morning(home, day)
    home.reading(PLUG, day + 10 * H, power_w=600.0)
    home.run(day + 16 * H)
    assert after(home.raised(Rule.SENSOR_BLIND), day)
    seen = learn(home)["seen_bits"]
    assert seen == blind.LONE | blind.LAST
    home.activity(PIR, day + 16 * H + MIN)
    assert [c.rule for c in after(home.cleared(), day + 16 * H)] == [Rule.SENSOR_BLIND]
    assert learn(home)["seen_bits"] == blind.LAST  # the sign is over, and taught nothing


def test_an_unseen_sign_in_an_ordinary_week_lowers_what_one_sign_is_worth() -> None:
    """The kettle used and nobody seen for half an hour, then the resident is back in
    view: that sign was not seen, and it counts against the next one."""
    home = learned_home()
    day = local(17, 0)
    morning(home, day)
    home.reading(PLUG, day + 9 * H + 10 * MIN, power_w=600.0)
    home.activity(PIR, day + 9 * H + 40 * MIN)
    assert learn(home)["seen_bits"] == 0b111_1110  # six of the last seven seen: enough
    home.reading(PLUG, day + 12 * H + 5 * MIN, power_w=600.0)
    home.activity(PIR, day + 12 * H + 30 * MIN)
    assert learn(home)["seen_bits"] == 0b111_1100  # five of seven: one sign is no longer
    assert not blind.alone(home.cfg, Work.thaw(home.state), day + 14 * H)
