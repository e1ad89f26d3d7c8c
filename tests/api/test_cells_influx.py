"""The API reads each home's readings from its site's cell's InfluxDB (the registry's
``cells`` table), else from the InfluxDB of its settings; two real InfluxDB servers, one
read-only user with the same password on both, as the API's settings give it."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from dolbom.api.deps import ApiContext
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.registry import cells
from dolbom.registry import service as registry
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB
from dolbom.stack.proc import free_port
from tests.api.conftest import World

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def south(make_influx: Callable[[], InfluxDB]) -> InfluxDB:
    """A second InfluxDB: the south cell's (the session's ``influx`` is north's)."""
    return make_influx()


def _write(server: InfluxDB, users: InfluxUsers, lines: list[str]) -> None:
    req = urllib.request.Request(
        f"{server.url}/write?db=care&precision=ms", data="\n".join(lines).encode(),
        method="POST", headers=InfluxHTTP(server.url, *users.ingest)._headers())
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204


def _temperatures(w: World, user: str, home: str) -> list[float] | int:
    r = w.get(user, f"/api/v1/residents/{w.residents[home]}/readings",
              params={"field": "temperature_c", "interval": "1h"})
    if r.status_code != 200:
        return int(r.status_code)
    return [p["value"] for s in r.json()["series"] for p in s["points"]]


def _seed(north: InfluxDB, south: InfluxDB, users: InfluxUsers, now_ms: int) -> None:
    """h1 (site s1) and h4 (site s2) have readings in both servers, different in each:
    the value read tells which server answered."""
    hour = 3_600_000
    for server, h1, h4 in ((north, 21.0, 14.0), (south, 91.0, 44.0)):
        _write(server, users, [
            f"reading,site=s1,home=h1,device=d-h1 temperature_c={h1} {now_ms - hour}",
            f"reading,site=s2,home=h4,device=d-h4 temperature_c={h4} {now_ms - hour}",
            f"event,site=s1,home=h1,device=d-h1,type=motion seq=1i,boot=1i,hist=false "
            f"{now_ms - hour}",
        ])


def _world(make_world: Any, url: str, fallback: str, users: InfluxUsers) -> World:
    user, pw = users.dashboard
    w: World = make_world(url, influx=InfluxSettings(url=fallback, username=user, password=pw,
                                                     timeout_s=2))
    # Away from the day other tests write into the session's InfluxDB (tests/api/
    # test_views.py): each reads only its own points. Before any sign-in.
    w.clock.advance(timedelta(days=400).total_seconds())
    return w


def test_each_home_is_read_from_its_cells_influxdb(make_world: Any, sqlite_url: str,
                                                   influx: InfluxDB, south: InfluxDB,
                                                   influx_users: InfluxUsers) -> None:
    """s1 in cell north, s2 in cell south: each home's readings, activity and last event
    come from its own cell's server, none from the settings' (a closed port here); a
    site moved to the other cell is read from there at the next request."""
    w = _world(make_world, sqlite_url, f"http://127.0.0.1:{free_port()}", influx_users)
    _seed(influx, south, influx_users, int(w.clock().timestamp() * 1000))
    with w.sessions.begin() as s:
        cells.add_cell(s, "north", broker_host="127.0.0.1", broker_port=8883,
                       influx_url=influx.url, influx_db="care")
        cells.add_cell(s, "south", broker_host="127.0.0.1", broker_port=8884,
                       influx_url=south.url + "/", influx_db="care")
        registry.set_site_cell(s, "s1", "north")
        registry.set_site_cell(s, "s2", "south")
    assert _temperatures(w, "w1", "h1") == [21.0]  # north's
    assert _temperatures(w, "w3", "h4") == [44.0]  # south's
    r = w.get("w1", f"/api/v1/residents/{w.residents['h1']}/activity")
    assert r.status_code == 200 and [e["type"] for e in r.json()] == ["motion"]
    r = w.get("w1", f"/api/v1/residents/{w.residents['h1']}/last-seen")
    assert r.status_code == 200 and r.json()[0]["last_event_at"] is not None
    ctx: ApiContext = w.client.app.state.ctx  # type: ignore[attr-defined]
    assert ctx.cell_readers.count == 3  # the settings' and one per cell, kept
    assert _temperatures(w, "w1", "h1") == [21.0]
    assert ctx.cell_readers.count == 3

    with w.sessions.begin() as s:
        registry.set_site_cell(s, "s1", "south")
    assert _temperatures(w, "w1", "h1") == [91.0]


def test_a_home_whose_cell_has_no_row_is_read_from_the_settings(
        make_world: Any, sqlite_url: str, influx: InfluxDB, south: InfluxDB,
        influx_users: InfluxUsers) -> None:
    """The settings' InfluxDB (north's server here) serves a site in a cell without a
    row, as before cells had endpoints; a row for that cell takes over at once."""
    w = _world(make_world, sqlite_url, influx.url, influx_users)
    _seed(influx, south, influx_users, int(w.clock().timestamp() * 1000))
    with w.sessions.begin() as s:
        registry.set_site_cell(s, "s2", "east")  # no row
    assert _temperatures(w, "w1", "h1") == [21.0]
    assert _temperatures(w, "w3", "h4") == [14.0]
    with w.sessions.begin() as s:
        cells.add_cell(s, "east", broker_host="127.0.0.1", broker_port=8883,
                       influx_url=south.url, influx_db="care")
    assert _temperatures(w, "w3", "h4") == [44.0]
    assert _temperatures(w, "w1", "h1") == [21.0]


def test_a_cells_influxdb_down_is_a_503_for_its_homes_only(
        make_world: Any, sqlite_url: str, influx: InfluxDB, south: InfluxDB,
        influx_users: InfluxUsers) -> None:
    """A cell whose InfluxDB does not answer: its homes' views say 503, the others' work."""
    w = _world(make_world, sqlite_url, influx.url, influx_users)
    _seed(influx, south, influx_users, int(w.clock().timestamp() * 1000))
    with w.sessions.begin() as s:
        cells.add_cell(s, "south", broker_host="127.0.0.1", broker_port=8883,
                       influx_url=f"http://127.0.0.1:{free_port()}", influx_db="care")
        registry.set_site_cell(s, "s2", "south")
    assert _temperatures(w, "w3", "h4") == 503
    assert _temperatures(w, "w1", "h1") == [21.0]
