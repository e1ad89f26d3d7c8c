"""The console's board and resident pages read each home from its site's cell's InfluxDB,
and ``/health`` pings every cell's; real InfluxDB servers of this module's own (emptied
before each test), one read-only user with the same password on all, as the API's
settings give it.

Each cell's server also holds a decoy for the other cell's home (a newer event, another
temperature): a page reading a home from the wrong server shows the decoy.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dolbom.api.console.i18n import ago, translator
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.query import InfluxReader, Row
from dolbom.registry import cells
from dolbom.registry import service as registry
from dolbom.registry.models import Locale, User
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB
from dolbom.stack.proc import free_port
from tests.api.conftest import World

pytestmark = pytest.mark.integration

HOUR = 3_600_000
MINUTE = 60_000


@pytest.fixture(scope="module")
def north(make_influx: Callable[[], InfluxDB]) -> InfluxDB:
    return make_influx()


@pytest.fixture(scope="module")
def south(make_influx: Callable[[], InfluxDB]) -> InfluxDB:
    return make_influx()


@pytest.fixture(autouse=True)
def empty(north: InfluxDB, south: InfluxDB, influx_users: InfluxUsers) -> None:
    """Each test reads only its own points (the last-activity query has no upper bound)."""
    for server in (north, south):
        InfluxHTTP(server.url, *influx_users.admin).query(
            "DROP SERIES FROM /.*/", db="care", method="POST")


def _write(server: InfluxDB, users: InfluxUsers, lines: list[str]) -> None:
    InfluxHTTP(server.url, *users.ingest).write([x.encode() for x in lines], db="care")


def _event(site: str, home: str, kind: str, at_ms: int) -> str:
    return (f"event,site={site},home={home},device=d-{home},type={kind} "
            f"seq=1i,boot=1i,hist=false {at_ms}")


def _temp(site: str, home: str, value: float, at_ms: int) -> str:
    return f"reading,site={site},home={home},device=d-{home} temperature_c={value} {at_ms}"


def _seed(north: InfluxDB, south: InfluxDB, users: InfluxUsers, now_ms: int) -> None:
    """h1 (site s1, cell north): motion 1 h ago and 21.5 °C, in north only; h4 (site s2,
    cell south): a door 3 h ago and 23.5 °C, in south only. The decoys: h4 moved 10
    minutes ago at 99.5 °C in north, h1 5 minutes ago at 88.5 °C in south."""
    _write(north, users, [_event("s1", "h1", "motion", now_ms - HOUR),
                          _temp("s1", "h1", 21.5, now_ms - 30 * MINUTE),
                          _event("s2", "h4", "motion", now_ms - 10 * MINUTE),
                          _temp("s2", "h4", 99.5, now_ms - 30 * MINUTE)])
    _write(south, users, [_event("s2", "h4", "door", now_ms - 3 * HOUR),
                          _temp("s2", "h4", 23.5, now_ms - 30 * MINUTE),
                          _event("s1", "h1", "motion", now_ms - 5 * MINUTE),
                          _temp("s1", "h1", 88.5, now_ms - 30 * MINUTE)])


def _world(make_world: Any, url: str, users: InfluxUsers, fallback: str | None = None
           ) -> World:
    """The settings' InfluxDB is a closed port unless given: a home read from it shows
    no activity at all."""
    user, pw = users.dashboard
    w: World = make_world(url, influx=InfluxSettings(
        url=fallback or f"http://127.0.0.1:{free_port()}", username=user, password=pw,
        timeout_s=2))
    with w.sessions.begin() as s:
        admin = s.get(User, w.users["admin"])
        assert admin is not None
        admin.locale = Locale.EN
    w.client.cookies.set("dolbom_access", w.token("admin"))  # the console's page loads
    return w


def _cells(w: World, north_url: str, south_url: str) -> None:
    with w.sessions.begin() as s:
        cells.add_cell(s, "north", broker_host="127.0.0.1", broker_port=8883,
                       influx_url=north_url, influx_db="care")
        cells.add_cell(s, "south", broker_host="127.0.0.1", broker_port=8884,
                       influx_url=south_url, influx_db="care")
        registry.set_site_cell(s, "s1", "north")
        registry.set_site_cell(s, "s2", "south")


def _board(w: World) -> dict[str, str]:
    """Each tile's last activity, by home."""
    r = w.client.get("/console/board")
    assert r.status_code == 200, r.text
    out = {}
    for m in re.finditer(r'<li class="tile[^"]*"[^>]*data-home="([^"]+)">(.*?)</li>', r.text,
                         re.S):
        found = re.search(r"Last activity</span>\s*([^<]*?)\s*</span>", m.group(2))
        assert found, m.group(2)
        out[m.group(1)] = html.unescape(found.group(1))
    return out


def _resident(w: World, home: str) -> str:
    r = w.client.get(f"/console/residents/{w.residents[home]}")
    assert r.status_code == 200, r.text
    return html.unescape(r.text)


@pytest.fixture()
def queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(server URL, InfluxQL) of every query a reader sends, sent on to the real server."""
    seen: list[tuple[str, str]] = []
    real = InfluxReader.query

    def query(self: InfluxReader, q: str, params: dict[str, Any]) -> list[Row]:
        seen.append((self.url, q))
        return real(self, q, params)

    monkeypatch.setattr(InfluxReader, "query", query)
    yield seen


def test_the_board_shows_each_home_from_its_cells_influxdb(
        make_world: Any, sqlite_url: str, north: InfluxDB, south: InfluxDB,
        influx_users: InfluxUsers, queries: list[tuple[str, str]]) -> None:
    """Homes of two cells on one board: each tile's last activity is its own cell's, each
    server is asked once for all its homes, none is asked of the settings' InfluxDB; a
    site moved to the other cell is read from there at the next page load."""
    w = _world(make_world, sqlite_url, influx_users)
    _seed(north, south, influx_users, int(w.clock().timestamp() * 1000))
    _cells(w, north.url, south.url)
    never = translator("en")("time.never")
    assert _board(w) == {"h1": ago(3600, "en"), "h2": never, "h3": never,
                         "h4": ago(3 * 3600, "en")}
    last = [url for url, q in queries if 'last("seq")' in q]
    assert sorted(last) == sorted([north.url, south.url])  # one per cell, not per home

    with w.sessions.begin() as s:
        registry.set_site_cell(s, "s2", "north")
    queries.clear()
    assert _board(w)["h4"] == ago(600, "en")  # north's (the decoy)
    assert [url for url, q in queries if 'last("seq")' in q] == [north.url]


def test_a_resident_page_reads_its_cells_influxdb(
        make_world: Any, sqlite_url: str, north: InfluxDB, south: InfluxDB,
        influx_users: InfluxUsers) -> None:
    """A resident's charts, temperature and last activity come from the home's cell."""
    w = _world(make_world, sqlite_url, influx_users)
    _seed(north, south, influx_users, int(w.clock().timestamp() * 1000))
    _cells(w, north.url, south.url)
    t = translator("en")
    page = _resident(w, "h4")
    assert t("resident.temp_now", t="23.5") in page and "99.5" not in page
    assert ago(3 * 3600, "en") in page and t("resident.history_down") not in page
    page = _resident(w, "h1")
    assert t("resident.temp_now", t="21.5") in page and "88.5" not in page
    assert ago(3600, "en") in page


def test_a_cells_influxdb_down_blanks_its_homes_only(
        make_world: Any, sqlite_url: str, north: InfluxDB, south: InfluxDB,
        influx_users: InfluxUsers) -> None:
    """South's InfluxDB does not answer: its home's tile shows no activity ("—", not
    "never") and its page says the history is unavailable; north's homes are shown."""
    w = _world(make_world, sqlite_url, influx_users)
    _seed(north, south, influx_users, int(w.clock().timestamp() * 1000))
    _cells(w, north.url, f"http://127.0.0.1:{free_port()}")
    tiles = _board(w)
    assert tiles["h4"] == "—" and tiles["h1"] == ago(3600, "en")
    down = translator("en")("resident.history_down")
    assert down in _resident(w, "h4")
    assert down not in _resident(w, "h1")


def test_health_reports_a_stopped_cells_influxdb(
        make_world: Any, sqlite_url: str, north: InfluxDB, influx_users: InfluxUsers,
        make_influx: Callable[[], InfluxDB]) -> None:
    """/health pings the settings' InfluxDB and every cell's: one stopped is "degraded",
    named in ``influxdb_cells``, though no page has read from it yet."""
    east = make_influx()
    w = _world(make_world, sqlite_url, influx_users, fallback=north.url)
    h = w.client.get("/health").json()
    assert h["status"] == "ok" and h["influxdb"] is True and h["influxdb_cells"] == {}
    _cells(w, north.url, east.url)
    h = w.client.get("/health").json()
    assert h["status"] == "ok" and h["influxdb_cells"] == {"north": True, "south": True}
    east.stop()
    h = w.client.get("/health").json()
    assert h == {"status": "degraded", "database": True, "influxdb": False,
                 "sse_subscribers": 0, "influxdb_cells": {"north": True, "south": False}}
