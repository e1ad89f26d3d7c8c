"""Messages → line protocol: the right points, and escaping that cannot be subverted."""

from __future__ import annotations

import time
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.ingest.points import to_points
from dolbom.protocol import Envelope, Event, Kind, Sample, Status, Telemetry, Topic
from dolbom.stack.influx import InfluxDB
from tests.influx.lineproto import parse_line

NOW = 1_763_700_000_000
ENV = Envelope(17, 1234, NOW - 500, 2)


def parsed(points: list) -> list:  # type: ignore[type-arg]
    return [parse_line(p.line.decode()) for p in points]


def test_event_point() -> None:
    """An event is one `event` point with site/home/device/type tags and seq/boot/hist/val."""
    m = Event(Topic(Kind.EVENT, "s1", "pir-h01", "door"), ENV, "open")
    (p,) = to_points(m, "h01", NOW)
    assert p.event
    assert parse_line(p.line.decode()) == (
        "event", {"site": "s1", "home": "h01", "device": "pir-h01", "type": "door"},
        {"val": "open", "seq": 1234, "boot": 17, "hist": False}, NOW - 500)


def test_reading_points_batch() -> None:
    """A batch becomes one `reading` point per sample, each at its own time."""
    m = Telemetry(Topic(Kind.TELEMETRY, "s1", "d"), ENV,
                  (Sample(NOW - 60_500, {"temperature_c": 21.5}),
                   Sample(NOW - 500, {"temperature_c": 22.0, "humidity_pct": 40.0}),
                   Sample(NOW, {})))
    rows = parsed(to_points(m, "h01", NOW))
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("reading", {"temperature_c": 21.5}, NOW - 60_500),
        ("reading", {"temperature_c": 22.0, "humidity_pct": 40.0}, NOW - 500),
    ]


def test_status_point_and_unassigned_device() -> None:
    """A status is stored at receive time; a device with no home has no home tag."""
    m = Status(Topic(Kind.STATUS, "s1", "d"), "ready", 3, "1.2.0", "door", 60, None)
    ((meas, tags, fields, ts),) = parsed(to_points(m, None, NOW))
    assert (meas, tags, ts) == ("device_status", {"site": "s1", "device": "d"}, NOW)
    assert fields == {"state": "ready", "boot": 3, "fw": "1.2.0", "kind": "door", "hb": 60}


NASTY = st.text(alphabet=st.sampled_from(list('a\n\r\t ,"=\\\'x#{}\x00\u00e9돌')), max_size=20)


@given(home=NASTY, val=NASTY, fw=NASTY)
def test_escaping_cannot_make_a_second_point_or_move_series(home: str, val: str, fw: str) -> None:
    """No value (newline, comma, quote, space, equals, backslash) splits a point or adds tags."""
    ev = Event(Topic(Kind.EVENT, "s1", "d1", "bed"), ENV, val)
    st_ = Status(Topic(Kind.STATUS, "s1", "d1"), "ready", 1, fw, fw, None, None)
    for m in (ev, st_):
        points = to_points(m, home or None, NOW)
        assert len(points) == 1
        line = points[0].line.decode()
        _meas, tags, fields, _ = parse_line(line)
        assert set(tags) <= {"site", "home", "device", "type"}
        assert tags["site"] == "s1" and tags["device"] == "d1"
        if home:
            # control characters may be blanked, but the home can never be another's tag set
            assert tags["home"] == "".join(
                " " if ord(c) < 32 else "/" if c == "\\" else c for c in home)
        if m is ev:
            assert fields["val"] == "".join(" " if ord(c) < 32 else c for c in val)


@pytest.mark.integration
@settings(max_examples=25, deadline=None)
@given(home=NASTY.filter(bool), val=NASTY)
def test_escaping_against_real_influxdb(influx: InfluxDB, influx_users: InfluxUsers,
                                        home: str, val: str) -> None:
    """Written to the real InfluxDB, a hostile value is stored as exactly one point."""
    now = int(time.time() * 1000)
    m = Event(Topic(Kind.EVENT, "esc", "d1", "bed"), Envelope(1, 1, now, 2), val)
    (p,) = to_points(m, home, now)
    admin = InfluxHTTP(influx.url, *influx_users.admin)
    admin.query('DROP SERIES FROM "event" WHERE "site" = \'esc\'', "care", method="POST")
    req = urllib.request.Request(
        f"{influx.url}/write?db=care&precision=ms", data=p.line, method="POST",
        headers=admin._headers())
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204
    rows = admin.rows('SELECT * FROM "event" WHERE "site" = \'esc\'', "care")
    assert len(rows) == 1
    assert rows[0]["device"] == "d1" and rows[0]["type"] == "bed"
    assert rows[0]["home"] == "".join(" " if ord(c) < 32 else "/" if c == "\\" else c
                                      for c in home)
    assert rows[0]["val"] == "".join(" " if ord(c) < 32 else c for c in val)
