"""1-minute rollups per home (pure): means, sample counts, grace, late readings."""

from __future__ import annotations

from dolbom.ingest.rollup import Rollup
from tests.influx.lineproto import parse_line

M = 60_000
T0 = 1_763_700_000_000 // M * M  # a whole minute


def _points(lines: list[bytes]) -> dict[tuple[str, int], dict[str, object]]:
    out = {}
    for line in lines:
        measurement, tags, fields, ts = parse_line(line.decode())
        assert measurement == "reading_1m" and set(tags) == {"site", "home"}
        out[(tags["home"], ts)] = fields
    return out


def test_mean_per_home_and_minute_over_its_devices() -> None:
    r = Rollup(grace_s=30)
    r.add("s1", "h1", T0 + 1_000, {"temperature_c": 20.0, "humidity_pct": 40.0})
    r.add("s1", "h1", T0 + 30_000, {"temperature_c": 23.0})  # another device, same minute
    r.add("s1", "h2", T0 + 59_999, {"power_w": 5.0})
    r.add("s1", "h1", T0 + M, {"temperature_c": 30.0})  # the next minute
    assert r.due(T0 + M + 29_999) == []  # the minute ended, but within the grace
    pts = _points(r.due(T0 + M + 30_000))
    assert pts == {
        ("h1", T0): {"temperature_c": 21.5, "humidity_pct": 40.0, "samples": 3},
        ("h2", T0): {"power_w": 5.0, "samples": 1},
    }
    assert r.open_minutes == 1 and r.written == 2


def test_a_reading_for_a_written_minute_is_late_and_left_out() -> None:
    r = Rollup(grace_s=0)
    r.add("s1", "h1", T0, {"temperature_c": 20.0})
    assert len(r.due(T0 + M)) == 1
    r.add("s1", "h1", T0 + 10, {"temperature_c": 99.0})  # that minute is written
    assert r.late == 1 and r.due(T0 + 2 * M) == []


def test_unknown_readings_are_ignored_and_flush_all_writes_open_minutes() -> None:
    r = Rollup()
    r.add("s1", "h1", T0 + 5, {"temperature_c": 19.0, "not_a_reading": 1.0})
    r.add("s1", "h1", T0 + 3 * M, {"battery_pct": 80.0})
    pts = _points(r.flush_all())
    assert pts == {("h1", T0): {"temperature_c": 19.0, "samples": 1},
                   ("h1", T0 + 3 * M): {"battery_pct": 80.0, "samples": 1}}
    assert r.open_minutes == 0
    r.add("s1", "h1", T0 + 3 * M + 1, {"battery_pct": 70.0})
    assert r.late == 1  # written at shutdown: what follows is late


def test_tags_are_escaped() -> None:
    r = Rollup(grace_s=0)
    r.add("s 1", "h,1=x", T0, {"temperature_c": 1.0})
    (line,) = r.due(T0 + M)
    assert parse_line(line.decode())[1] == {"site": "s 1", "home": "h,1=x"}
