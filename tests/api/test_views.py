"""Resident views from the real InfluxDB: readings, activity, last seen (the reader's bound
parameters are tested in tests/influx/test_query.py)."""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from typing import Any

import pytest

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB
from tests.api.conftest import World

pytestmark = pytest.mark.integration


@pytest.fixture()
def vworld(make_world: Any, sqlite_url: str, influx: InfluxDB,
           influx_users: InfluxUsers) -> World:
    user, pw = influx_users.dashboard  # the read-only user
    w: World = make_world(sqlite_url, influx=InfluxSettings(url=influx.url, username=user,
                                                            password=pw))
    return w


def _write(influx: InfluxDB, users: InfluxUsers, lines: list[str]) -> None:
    req = urllib.request.Request(
        f"{influx.url}/write?db=care&precision=ms", data="\n".join(lines).encode(),
        method="POST", headers=InfluxHTTP(influx.url, *users.ingest)._headers())
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204


def test_readings_activity_and_last_seen(vworld: World, influx: InfluxDB,
                                         influx_users: InfluxUsers) -> None:
    """What the sensors of the resident's home reported, bucketed and per device; other
    homes' data (same device id, other home tag) is not included."""
    w = vworld
    now_ms = int(w.clock().timestamp() * 1000)
    hour = 3_600_000
    _write(influx, influx_users, [
        f"reading,site=s1,home=h1,device=d-h1 temperature_c=21.0 {now_ms - 3 * hour}",
        f"reading,site=s1,home=h1,device=d-h1 temperature_c=23.0 {now_ms - 3 * hour + 60_000}",
        f"reading,site=s1,home=h1,device=d-h1 temperature_c=30.0 {now_ms - hour}",
        f"reading,site=s1,home=h2,device=d-h2 temperature_c=99.0 {now_ms - hour}",
        f'event,site=s1,home=h1,device=d-h1,type=door val="open",seq=7i,boot=1i,hist=false '
        f"{now_ms - 2 * hour}",
        f"event,site=s1,home=h1,device=d-h1,type=motion seq=8i,boot=1i,hist=false "
        f"{now_ms - 30 * 60_000}",
        f"event,site=s1,home=h2,device=d-h2,type=motion seq=1i,boot=1i,hist=false {now_ms}",
    ])
    rid = w.residents["h1"]
    r = w.get("w1", f"/api/v1/residents/{rid}/readings",
              params={"field": "temperature_c", "interval": "1h"})
    assert r.status_code == 200, r.text
    (series,) = r.json()["series"]
    assert series["device"] == "d-h1"
    assert [p["value"] for p in series["points"]] == [22.0, 30.0]
    r = w.get("w1", f"/api/v1/residents/{rid}/activity")
    assert r.status_code == 200
    assert [(e["type"], e["val"]) for e in r.json()] == [("motion", None), ("door", "open")]
    r = w.get("w1", f"/api/v1/residents/{rid}/last-seen")
    assert r.status_code == 200
    (dev,) = r.json()
    assert dev["device"] == "d-h1" and dev["last_event_at"] is not None
    since = (w.clock() - timedelta(days=40)).isoformat()
    r = w.get("w1", f"/api/v1/residents/{rid}/readings",
              params={"field": "temperature_c", "interval": "1m", "since": since})
    assert r.status_code == 422  # a 1-minute series over 40 days is refused


@pytest.mark.parametrize("params", [
    {"field": 'temperature_c") FROM "reading"; DROP DATABASE "care'},
    {"field": "password"},
    {"field": "temperature_c", "interval": "1h) fill(0"},
    {"field": "temperature_c", "interval": "1ms"},
])
def test_field_and_interval_are_allow_listed(vworld: World, params: dict[str, str]) -> None:
    """Anything but a known reading field and interval is refused before any query."""
    r = vworld.get("w1", f"/api/v1/residents/{vworld.residents['h1']}/readings",
                   params=params)
    assert r.status_code == 422


def test_views_say_503_when_influxdb_is_down(world: World) -> None:
    """InfluxDB down: the views answer 503 with a reason (alerts are unaffected)."""
    r = world.get("w1", f"/api/v1/residents/{world.residents['h1']}/activity")
    assert r.status_code == 503 and "InfluxDB" in r.json()["detail"]
    assert world.get("w1", "/api/v1/alerts").status_code == 200
