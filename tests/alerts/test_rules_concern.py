"""The quiet concern: a quiet spell far beyond this person's usual for the time of day
(personal baselines, DESIGN.md §5), with an injected clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dolbom.alerts.engine import feedback, state_from_json, state_to_json
from dolbom.alerts.model import Outcome, Rule
from dolbom.alerts.rules import baseline
from tests.alerts.enginekit import BED, DAY, DOOR, MIN, PIR, PIR_ONLY, PLUG, H, Home, local

T0 = local(2, 0)


def learned_home(days: int = 10, **kw: object) -> Home:
    """A home whose resident has lived ``days`` ordinary days (07:00-22:00, moving about)."""
    home = Home(start=T0, **kw)  # type: ignore[arg-type]
    home.routine(days)
    return home


def concerns(home: Home) -> list[int]:
    return [r.at_ms for r in home.raised(Rule.WELFARE_CONCERN)]


def test_a_morning_collapse_of_an_active_person_is_told_within_hours() -> None:
    """Someone always moving about from 07:00: stillness from 09:00 is told within 5 h,
    with its reasons in plain words, long before the 12 h tier."""
    home = learned_home()
    fall = local(12, 9)
    home.run(local(12, 0))
    home.routine(1, until=fall)  # up at 07:00 as always
    home.run(fall + 12 * H)
    [t] = [c for c in concerns(home) if c > fall]
    assert fall + H <= t <= fall + 5 * H
    [r] = [r for r in home.raised(Rule.WELFARE_CONCERN) if r.at_ms == t]
    assert "far beyond what is usual for this person" in r.detail["reasons"][0]
    assert r.detail["reasons_ko"]


def test_activity_collapsing_to_a_trickle_is_told_within_hours() -> None:
    """Someone always moving about collapses at 09:00 but still moves a little, every 80
    minutes: every brief movement ends the quiet spell (none reaches the concern on its
    own), yet the evidence carries over them, and the concern is told within hours, as
    a trickle, while the fixed tiers (reset by each movement) would never come."""
    home = learned_home()
    fall = local(12, 9)
    home.run(local(12, 0))
    home.routine(1, until=fall)  # up at 07:00 as always
    for k in range(1, 9):
        home.activity(PIR, fall + k * 80 * MIN)
    home.run(fall + 12 * H)
    told = [r for r in home.raised(Rule.WELFARE_CONCERN) if r.at_ms > fall]
    assert told and told[0].at_ms <= fall + 8 * H
    assert told[0].detail["signal"] == "trickle"
    assert "brief movements" in told[0].detail["reasons"][0]
    assert home.raised(Rule.INACTIVITY) == []


def test_a_trickle_told_is_not_told_again_at_each_movement() -> None:
    """Once the trickle is told, the movements that follow (two in one half hour)
    resolve it and start afresh: no new concern at each movement."""
    home = learned_home()
    fall = local(12, 9)
    home.run(local(12, 0))
    home.routine(1, until=fall)
    t = fall
    while not [r for r in home.raised(Rule.WELFARE_CONCERN) if r.at_ms > fall]:
        t += 80 * MIN
        home.activity(PIR, t)
        assert t < fall + 12 * H
    told = home.raised(Rule.WELFARE_CONCERN)[-1].at_ms
    now = home.now
    home.activity(PIR, now + MIN)
    home.activity(PIR, now + 3 * MIN)
    home.run(now + 2 * H)
    assert [r.at_ms for r in home.raised(Rule.WELFARE_CONCERN) if r.at_ms > fall] == [told]


def test_a_trickle_is_never_told_at_the_very_movement() -> None:
    """However much evidence a trickle carries, a movement is not itself the concern: the
    next spell needs some stillness of its own (a concern raised at each movement would
    flap open and resolved all night)."""
    home = learned_home()
    L = home.state.view().learn
    since = local(12, 10, 25)
    L.carry = 50_000  # far beyond any threshold
    L.run_ms = since - 8 * H
    t, trickle = baseline.quick_crossing(L, "Asia/Seoul", since)
    assert trickle and t is not None and t >= since + 10 * MIN


def test_a_daily_fragmented_afternoon_is_learned_not_told_daily() -> None:
    """Every afternoon this person sits 100 minutes still, gets up briefly, and sits
    another 100 minutes: at most one concern in two weeks (the first may be told;
    the run is learned as theirs)."""
    home = Home(start=T0)
    for d in range(14):
        base = local(2 + d, 0)
        for t in range(base + 7 * H, base + 22 * H, 20 * MIN):
            if base + 13 * H <= t < base + 16 * H + 40 * MIN and t != base + 14 * H + 40 * MIN:
                continue  # sitting, with one brief movement in the middle
            home.activity(PIR, t)
    assert len(concerns(home)) <= 1


def test_ordinary_days_give_no_concern() -> None:
    """Ten ordinary days and nights: sleep and the usual gaps are nobody's business."""
    home = learned_home(12)
    assert concerns(home) == []


def test_a_napper_is_learned_and_told_at_most_once() -> None:
    """A daily three-hour afternoon nap: at most one concern in two weeks (the first nap
    may be told; once told it is learned, and the next naps are not)."""
    home = Home(start=T0)
    for d in range(14):
        base = local(2 + d, 0)
        for t in range(base + 7 * H, base + 22 * H, 20 * MIN):
            if base + 13 * H <= t < base + 16 * H:
                continue  # the nap
            home.activity(PIR, t)
    assert len(concerns(home)) <= 1


def test_the_concern_waits_for_every_motion_sensor_and_is_set_aside_when_one_is_lost() -> None:
    """A quiet spell while one of two motion sensors is dead is that sensor's problem
    (device_lost), not a concern."""
    from dolbom.alerts.engine import DeviceInfo

    pir2 = DeviceInfo("pir-2", "pir", "mains", 60)
    home = Home(start=T0, devices=(PIR, pir2, DOOR, PLUG))
    home.routine(10)
    home.silence(pir2)
    quiet = local(12, 9)
    home.routine(1, until=quiet)
    home.run(quiet + 8 * H)
    assert [c for c in concerns(home) if c > quiet] == []
    assert [s.reason for s in home.suppressed(Rule.WELFARE_CONCERN)][-1:] == [
        "motion sensors lost"]


def test_a_silence_that_began_with_the_door_is_watched_not_pushed() -> None:
    """Out through the door and not seen since: the watch list, not a push."""
    home = learned_home()
    out = local(12, 9)
    home.routine(1, until=out)
    home.activity(DOOR, out + MIN, "door", "open")
    home.run(out + 24 * H)
    assert [c for c in concerns(home) if c > out] == []
    assert any("door" in w.reasons[0] for w in home.watched(Rule.WELFARE_CONCERN))


def test_motion_resolves_the_concern() -> None:
    """The person moves again: the concern resolves itself."""
    home = learned_home()
    still = local(12, 9)
    home.routine(1, until=still)
    home.run(still + 6 * H)
    assert concerns(home)
    home.activity(PIR, still + 6 * H + MIN)
    assert [c.reason for c in home.cleared(Rule.WELFARE_CONCERN)] == ["activity resumed"]


def test_a_new_home_waits_longer_than_a_learned_one() -> None:
    """A home with no history uses the conservative default (≈ 8 h of daytime quiet)."""
    home = Home(start=local(2, 9), devices=PIR_ONLY)
    home.run(local(2, 9) + 14 * H)
    [t] = concerns(home)
    assert t - local(2, 9) >= 6 * H


@pytest.mark.parametrize(("outcome", "later"), [(Outcome.FALSE_ALARM, True),
                                                 (Outcome.NEEDS_CARE, False)])
def test_outcomes_move_the_threshold(outcome: Outcome, later: bool) -> None:
    """A false alarm makes the concern less eager (later), needs_care more (earlier)."""
    plain, taught = learned_home(), learned_home()
    taught.state = feedback(taught.cfg, taught.state, Rule.WELFARE_CONCERN, outcome)
    still = local(12, 9)
    for home in (plain, taught):
        home.routine(1, until=still)
        home.run(still + 12 * H)
    a = next(c for c in concerns(plain) if c > still)
    b = next(c for c in concerns(taught) if c > still)
    assert (b > a) if later else (b < a)


def test_feedback_is_bounded_and_ignores_other_rules() -> None:
    """Three steps at most either way; a rule without a concern is not taught."""
    home = learned_home(1)
    st0 = home.state
    assert feedback(home.cfg, st0, Rule.NO_DOOR_USE, Outcome.FALSE_ALARM) is st0
    st1 = st0
    for _ in range(10):
        st1 = feedback(home.cfg, st1, Rule.INACTIVITY, Outcome.FALSE_ALARM)
    assert st1.view().learn.eager == baseline.EAGER_MIN


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40 * 24 * 60), st.sampled_from(["pir", "door", "bed"])),
                max_size=120))
def test_baselines_stay_bounded_and_round_trip(events: list[tuple[int, str]]) -> None:
    """Whatever the activity, the learned state keeps its size, its values in range, and
    survives the JSON round trip."""
    home = Home(start=T0, devices=(PIR, DOOR, BED, PLUG))
    size = len(home.state.data)
    for minute, kind in sorted(events):
        at = T0 + minute * MIN
        if kind == "pir":
            home.activity(PIR, at)
        elif kind == "door":
            home.activity(DOOR, at, "door", "open")
        else:
            home.activity(BED, at, "bed", "out")
    assert len(home.state.data) == size
    L = home.state.view().learn
    assert all(0 <= p <= 255 for p in L.p) and all(0 <= e <= 65_535 for e in L.emax)
    assert state_from_json(state_to_json(home.state)) == home.state


def test_plug_and_door_unused_together_are_one_concern_with_both_reasons() -> None:
    """A person who cooks and goes out daily stops doing both: each gap alone is watched;
    both at once are told as the home's one welfare concern, with both reasons; movement
    does not resolve it, using the plug does."""
    home = learned_home(10)
    stop = home.now
    home.routine(4, plug_at=None, door_at=None, until=stop + 3 * DAY)
    [c] = home.raised(Rule.WELFARE_CONCERN)
    assert len(c.detail["reasons"]) == 2 and c.detail["signal"] == "combined"
    assert {w.rule for w in home.watched()} >= {Rule.NO_POWER_USE, Rule.NO_DOOR_USE}
    assert home.raised(Rule.NO_POWER_USE) == []  # the concern tells it: no second push
    assert home.cleared(Rule.WELFARE_CONCERN) == []  # moving about is no answer
    home.reading(PLUG, home.now + MIN, power_w=800.0)
    assert [x.reason for x in home.cleared(Rule.WELFARE_CONCERN)] == ["plug used"]


def test_a_collapse_during_an_open_concern_is_still_told() -> None:
    """With the plug-and-door concern open, a quiet spell far beyond the usual is told again
    on it (a worse state), not swallowed."""
    home = learned_home(10)
    stop = home.now
    home.routine(4, plug_at=None, door_at=None, until=stop + 4 * DAY)
    fall = home.now + H
    home.activity(PIR, fall)
    home.run(fall + 10 * H)
    raised = home.raised(Rule.WELFARE_CONCERN)
    assert [r.detail["signal"] for r in raised][:2] == ["combined", "quiet"]
    assert raised[1].detail["tier"] == 2


@pytest.mark.parametrize(("after_door", "pushed"), [(40_000, False), (10 * MIN, True)])
def test_a_movement_just_after_the_door_is_the_way_out(after_door: int, pushed: bool) -> None:
    """Door, then the hall PIR within a minute, then nothing: gone out (watched, not
    pushed). Door, then movement minutes later, then nothing: someone is home (pushed)."""
    home = learned_home()
    out = local(12, 9)
    home.routine(1, until=out)
    home.activity(DOOR, out + MIN, "door", "open")
    home.activity(PIR, out + MIN + after_door)
    home.run(out + 12 * H)
    assert bool([c for c in concerns(home) if c > out]) is pushed


def test_the_caution_tier_is_not_a_second_alert_for_a_spell_the_concern_told() -> None:
    """An active person falls still at 09:00: the concern tells it within hours; the
    12 h caution tier adds nothing (one concern per home), the 24 h alarm tier is told."""
    home = learned_home()
    fall = local(12, 9)
    home.run(local(12, 0))
    home.routine(1, until=fall)
    home.run(fall + 56 * H)  # 36 h of awake time: the nights do not count
    assert [c for c in concerns(home) if c > fall]
    tiers = [r.detail["tier"] for r in home.raised(Rule.INACTIVITY)]
    assert tiers == [2, 3]
    assert home.watched(Rule.INACTIVITY) == []


def test_the_caution_tier_is_watched_when_such_spells_are_usual_for_the_person() -> None:
    """A home with one motion sensor and no door sensor: the person spends every third
    day out from 08:00 to 22:00. Two weeks learn it; the next such day reaches the 12 h
    caution tier, which is not pushed: it goes to the watch list, or the quiet concern
    has told the spell already (in its first week, without habits, it was told)."""
    home = Home(start=T0, devices=(PIR, PLUG))
    for d in range(16):
        base = local(2 + d, 0)
        for t in range(base + 7 * H, base + 23 * H, 20 * MIN):
            if d % 3 == 2 and base + 8 * H < t < base + 22 * H:
                continue  # a day out
            home.activity(PIR, t)
    learned = local(2 + 8, 0)  # the first week is told on the fixed tiers
    assert home.raised(Rule.INACTIVITY)
    assert [r for r in home.raised(Rule.INACTIVITY) if r.at_ms > learned] == []
    # each later day out: watched as usual, or told once by the concern (not both pushed)
    later = [w for w in home.watched(Rule.INACTIVITY)
             if w.at_ms > learned and "usual for this person" in w.reasons[0]]
    assert later or [c for c in concerns(home) if c > learned]


@pytest.mark.parametrize("every_min", [45, 60, 90])
def test_a_long_trickle_at_random_moments_is_told_within_12_h(every_min: int) -> None:
    """A collapsed person who keeps moving a little for the whole day, at random moments
    (on average every ``every_min`` minutes, sometimes in half hours running): each
    movement resets the fixed tiers, so only the trickle can tell it, and it must,
    within 12 h, whatever the moments (eight draws)."""
    for seed in range(8):
        rng = random.Random(seed)
        home = learned_home()
        fall = local(12, 9)
        home.run(local(12, 0))
        home.routine(1, until=fall)  # up at 07:00 as always
        t = fall
        while t < fall + 24 * H:
            t += MIN + round(rng.expovariate(1 / every_min) * MIN)
            home.activity(PIR, t)
        home.run(fall + 24 * H)
        told = [r.at_ms for r in home.raised() if r.at_ms > fall
                and r.rule in (Rule.WELFARE_CONCERN, Rule.INACTIVITY)]
        assert told and min(told) <= fall + 12 * H, (seed, told)


def test_a_trickle_told_is_learned_up_to_its_threshold_not_told_every_time() -> None:
    """Every other day this person gets up two hours late, is about for an hour and a
    half, and is then gone all day (a home without a door sensor): the first such day may
    be told, as a trickle; the run is then learned as theirs, like a quiet spell, and
    the same day is not told every time it comes."""
    home = learned_home(devices=PIR_ONLY)
    told_days: list[int] = []
    for day in range(11, 27):
        home.run(local(day, 0))
        if day % 2:
            home.routine(1)
            continue
        for t in range(local(day, 9), local(day, 10, 30), 10 * MIN):
            home.activity(PIR, t)
        for t in range(local(day, 19), local(day, 22), 20 * MIN):
            home.activity(PIR, t)
        home.run(local(day, 23))
        if [r for r in home.raised(Rule.WELFARE_CONCERN)
                if local(day, 10, 30) < r.at_ms < local(day, 19)]:
            told_days.append(day)
    assert len(told_days) <= 2, told_days
