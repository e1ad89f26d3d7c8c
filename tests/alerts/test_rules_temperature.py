"""Indoor heat and cold: 30 min held (by readings and between them), 1 °C hysteresis,
one per 24 h."""

from __future__ import annotations

import pytest

from dolbom.alerts.engine import DeviceInfo
from dolbom.alerts.model import Priority, Rule
from tests.alerts.enginekit import BED, MIN, PIR, Home, local

T0 = local(2, 13)


def feed(home: Home, series: list[tuple[float, float]], dev: DeviceInfo = PIR) -> None:
    """Readings as (minutes after T0, °C)."""
    for minute, celsius in series:
        home.reading(dev, T0 + round(minute * MIN), temperature_c=celsius)


# (readings as (minute, °C), minutes of the Raise or None, minute of the Clear or None)
HEAT = [
    ([(0, 32.0), (29.99, 33.0)], None, None),  # 29.99 min is not 30
    ([(0, 32.0), (30, 33.0)], 30, None),  # exactly 30 min by reading times
    ([(0, 33.0), (10, 31.5), (30, 31.2)], 30, None),  # above 31 °C the hot condition holds
    ([(0, 33.0), (10, 30.9), (15, 33.0), (40, 33.0), (45, 33.0)], 45, None),  # < 31 ended it
    ([(0, 33.0), (30, 33.0), (40, 31.0)], 30, None),  # 31.0 is not below 31
    ([(0, 33.0), (30, 33.0), (40, 30.9)], 30, 40),
    ([(0, 31.9), (30, 31.9)], None, None),
]


@pytest.mark.parametrize(("series", "raise_min", "clear_min"), HEAT)
def test_heat_by_reading_times_with_hysteresis(
        series: list[tuple[float, float]], raise_min: int | None, clear_min: int | None) -> None:
    """≥ 32 °C held (until < 31 °C) for 30 min of reading time raises; < 31 °C clears."""
    home = Home(start=T0)
    feed(home, series)
    raised = home.raised(Rule.HEAT)
    assert [r.at_ms for r in raised] == ([] if raise_min is None else [T0 + raise_min * MIN])
    for r in raised:
        assert (r.priority, r.device) == (Priority.MEDIUM, "pir-1")
        since = r.detail["since_ms"]
        assert isinstance(since, int) and since <= r.at_ms - 30 * MIN
    cleared = home.cleared(Rule.HEAT)
    assert [c.at_ms for c in cleared] == ([] if clear_min is None else [T0 + clear_min * MIN])


def test_a_battery_sensor_between_readings_is_told_when_the_30_min_are_up() -> None:
    """A sensor that reads every 14 min: hot from minute 14, the 30 min are up at
    minute 44, between its readings. The alert comes then, on its last reading, not at
    the next reading 12 minutes later."""
    home = Home(start=T0)
    feed(home, [(0, 31.0), (14, 32.5), (28, 32.8), (42, 33.0)])
    home.run(T0 + 50 * MIN)
    [r] = home.raised(Rule.HEAT)
    assert r.at_ms == T0 + 44 * MIN
    assert r.detail["since_ms"] == T0 + 14 * MIN and r.detail["temperature_c"] == 33.0
    feed(home, [(56, 33.1)])
    assert len(home.raised(Rule.HEAT)) == 1  # the reading that follows adds nothing


def test_no_alert_between_readings_from_a_lost_sensor() -> None:
    """The timer judges on the last reading only while the sensor is alive: a sensor lost
    since its hot reading is not told on it (device_lost is)."""
    home = Home(start=T0)
    feed(home, [(0, 33.0)])
    home.silence(PIR)
    home.run(T0 + 40 * MIN)
    assert home.raised(Rule.HEAT) == []
    assert Rule.DEVICE_LOST in [r.rule for r in home.raised()]


COLD = [
    ([(0, 10.0), (30, 9.0)], 30, None),
    ([(0, 10.6), (30, 9.0)], None, None),  # 10.6 is beyond the sensor's accuracy
    ([(0, 10.5), (30, 9.0)], 30, None),  # 10.5 may be a room at 10 °C: it counts
    ([(0, 9.0), (30, 10.5), (35, 11.0), (40, 11.1)], 30, 40),  # clears only above 11 °C
]


@pytest.mark.parametrize(("series", "raise_min", "clear_min"), COLD)
def test_cold_mirrors_heat(series: list[tuple[float, float]], raise_min: int | None,
                           clear_min: int | None) -> None:
    """≤ 10 °C for 30 min raises COLD; it clears above 11 °C."""
    home = Home(start=T0)
    feed(home, series)
    assert [r.at_ms for r in home.raised(Rule.COLD)] == (
        [] if raise_min is None else [T0 + raise_min * MIN])
    assert [c.at_ms for c in home.cleared(Rule.COLD)] == (
        [] if clear_min is None else [T0 + clear_min * MIN])


def test_a_condition_matures_between_readings_at_its_level() -> None:
    """35 °C is level 2 (told after half of the 30 min): with no reading since, the alert
    comes at 15 min on the last reading, between readings."""
    home = Home(start=T0)
    feed(home, [(0, 35.0)])
    home.run(T0 + 15 * MIN - 1)
    assert home.raised(Rule.HEAT) == []
    home.run(T0 + 20 * MIN)
    assert [(r.at_ms, r.detail["tier"]) for r in home.raised(Rule.HEAT)] == [
        (T0 + 15 * MIN, 2)]


def test_at_most_one_heat_alert_of_a_level_a_day() -> None:
    """A second hot spell the same afternoon is not told again; the next day's is, as
    soon as it matures (a heatwave is told each hot day, not 24 h after the last)."""
    home = Home(start=T0)  # 13:00
    feed(home, [(0, 33.0), (30, 33.0), (60, 25.0)])  # raised at 30, cleared at 60
    feed(home, [(120, 33.0), (150, 33.0), (180, 33.0)])  # matured at 150: same day
    assert [r.at_ms for r in home.raised(Rule.HEAT)] == [T0 + 30 * MIN]
    feed(home, [(200, 25.0)])
    next_day = 23 * 60  # 12:00 the next day, 22.5 h after the first alert
    feed(home, [(next_day, 33.0), (next_day + 30, 33.0)])
    assert [r.at_ms for r in home.raised(Rule.HEAT)] == [T0 + 30 * MIN,
                                                         T0 + (next_day + 30) * MIN]
    assert [c.at_ms for c in home.cleared(Rule.HEAT)] == [T0 + 60 * MIN]  # nothing else open


def test_a_spell_after_midnight_is_still_the_same_days_limit() -> None:
    """A spell just after midnight, less than half of temp_repeat_h after the last alert,
    is within the limit (a room hovering around 32 °C all night is told once)."""
    home = Home(start=local(2, 20))
    feed_at = local(2, 20)
    for minute, c in ((0, 33.0), (30, 33.0), (60, 25.0), (250, 33.0), (280, 33.0)):
        home.reading(PIR, feed_at + minute * MIN, temperature_c=c)  # 20:00 ... 00:40
    assert [r.at_ms for r in home.raised(Rule.HEAT)] == [feed_at + 30 * MIN]


def test_two_warm_sensors_raise_heat_and_it_clears_when_all_are_cool() -> None:
    """Per device: a sensor a little cooler (within DISAGREE_C) does not hide a hot one;
    the clear waits for every sensor."""
    home = Home(start=T0)
    for minute in (0, 10, 20, 30):
        feed(home, [(minute, 34.0)], PIR)
        feed(home, [(minute + 0.5, 31.5)], BED)
    [r] = home.raised(Rule.HEAT)
    assert (r.at_ms, r.device) == (T0 + 30 * MIN, "pir-1")
    feed(home, [(40, 34.0)], BED)
    feed(home, [(41, 25.0)], PIR)
    assert home.cleared() == []
    feed(home, [(42, 25.0)], BED)
    assert [c.at_ms for c in home.cleared(Rule.HEAT)] == [T0 + 42 * MIN]


def test_a_sensor_the_other_contradicts_is_technical_not_heat() -> None:
    """34 °C on one sensor while another in the home reads 24 °C: the room is not hot, the
    sensor is (sun, a heat source): a low technical alert for the operators, no heat."""
    home = Home(start=T0)
    for minute in (0, 10, 20, 30, 40):
        feed(home, [(minute, 34.0)], PIR)
        feed(home, [(minute + 0.5, 24.0)], BED)
    assert home.raised(Rule.HEAT) == []
    [r] = home.raised(Rule.SENSOR_DISAGREES)
    assert (r.priority, r.device, r.at_ms) == (Priority.LOW, "pir-1", T0 + 30 * MIN)
    assert "24.0" in r.detail["reasons"][0]
    feed(home, [(50, 25.0)], PIR)
    assert [c.rule for c in home.cleared()] == [Rule.SENSOR_DISAGREES]


def test_a_jump_is_not_the_room_until_it_lasts() -> None:
    """A single sensor that leaps 6 °C in ten minutes is not room air: technical, not
    heat; if the condition lasts JUMP_TRUST_MS it is taken as the room's."""
    home = Home(start=T0)
    feed(home, [(0, 27.0), (10, 33.0), (20, 33.5), (30, 33.5), (40, 33.5)])
    assert home.raised(Rule.HEAT) == []
    assert [r.device for r in home.raised(Rule.SENSOR_DISAGREES)] == ["pir-1"]
    feed(home, [(m, 33.5) for m in range(50, 200, 10)])
    assert [r.at_ms for r in home.raised(Rule.HEAT)] == [T0 + 190 * MIN]


def test_a_slow_rise_is_heat_in_thirty_minutes() -> None:
    """Room air warming by a degree or two an hour is a hot room: raised 30 min after the
    readings came within the sensor's accuracy (0.5 °C) of the limit, once one reached it."""
    home = Home(start=T0)
    feed(home, [(0, 30.5), (15, 31.0), (30, 31.6), (45, 32.1), (60, 32.4), (75, 32.6)])
    [r] = home.raised(Rule.HEAT)
    assert (r.at_ms, r.detail["tier"], r.detail["since_ms"]) == (T0 + 60 * MIN, 1, T0 + 30 * MIN)


@pytest.mark.parametrize(("series", "raise_min"), [
    # crept at 31.5-31.9 for 40 min, then reached 32: told at once
    ([(0, 31.5), (20, 31.8), (40, 31.9), (45, 32.0)], 45),
    # a reading below 31.5 ends the run: the 30 min start again at 31.6
    ([(0, 31.6), (20, 31.4), (25, 31.6), (45, 32.0), (55, 32.1)], 55),
    # a sensor silent for over an hour: its old readings do not count
    ([(0, 31.8), (70, 31.9), (80, 32.0), (95, 32.2), (100, 32.2)], 100),
])
def test_readings_within_the_sensors_accuracy_count_toward_the_30_min(
        series: list[tuple[float, float]], raise_min: int) -> None:
    """A sensor may read up to 0.5 °C under a room at the limit: a contiguous run of
    readings within 0.5 °C counts from its start, once a reading reaches 32 °C."""
    home = Home(start=T0)
    feed(home, series)
    assert [r.at_ms for r in home.raised(Rule.HEAT)] == [T0 + raise_min * MIN]


def test_a_jump_inside_the_band_is_still_a_jump() -> None:
    """28 → 31.6 → 35.7 °C in twenty minutes: the sun on the sensor, not the room, even
    though the run began below the jump."""
    home = Home(start=T0)
    feed(home, [(0, 28.0), (10, 31.6), (20, 35.7), (30, 35.8), (40, 35.8), (50, 35.9)])
    assert home.raised(Rule.HEAT) == []
    assert [r.device for r in home.raised(Rule.SENSOR_DISAGREES)] == ["pir-1"]


def test_a_worse_level_is_told_again() -> None:
    """Level 2 (heat_c + 3 °C) reached while the level 1 alert is open raises again with
    a higher tier (the store notifies a worse tier); the same level is not repeated."""
    home = Home(start=T0)
    feed(home, [(0, 32.5), (30, 33.0), (40, 33.5), (50, 34.0)])
    feed(home, [(60, 35.2), (70, 35.4), (80, 35.5), (90, 35.6)])
    assert [r.detail["tier"] for r in home.raised(Rule.HEAT)] == [1, 2]


def test_replayed_readings_do_not_move_the_trigger() -> None:
    """hist temperature readings are history: they neither start nor end a condition."""
    home = Home(start=T0)
    home.reading(PIR, T0 - 60 * MIN, hist=True, temperature_c=40.0)
    feed(home, [(0, 33.0)])
    home.reading(PIR, T0 + MIN, hist=True, temperature_c=20.0)
    feed(home, [(29, 33.0), (30, 33.0)])
    [r] = home.raised(Rule.HEAT)
    assert (r.priority, r.at_ms, r.device) == (Priority.MEDIUM, T0 + 30 * MIN, "pir-1")
    assert (r.detail["temperature_c"], r.detail["since_ms"]) == (33.0, T0)
