"""Bad input answers 4xx saying what was wrong, never 500: report months out of range,
ids beyond their column's range on every API route and console page, times that overflow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import World
from tests.api.test_console_pages import csrf_of

HUGE = ("2147483648", "9223372036854775807", "9223372036854775808", "99999999999999999999999",
        "0", "-1")
MONTHS = ("0000-01", "9999-12", "1969-12", "2100-01", "2026-13", "2026-00", "20261-1", "abcd-ef")


@pytest.mark.parametrize("report", ["response-times", "false-alarms"])
@pytest.mark.parametrize("month", MONTHS)
def test_report_months_out_of_range_are_422(world: World, report: str, month: str) -> None:
    r = world.get("sup1", f"/api/v1/reports/{report}", params={"month": month})
    assert r.status_code == 422, r.text
    assert "month" in r.text


@pytest.mark.parametrize("month", ["1970-01", "2099-12"])
def test_the_edges_of_the_month_range_work(world: World, month: str) -> None:
    assert world.get("sup1", "/api/v1/reports/response-times",
                     params={"month": month}).status_code == 200


@pytest.mark.parametrize("n", HUGE)
def test_api_ids_out_of_range_are_4xx(world: World, n: str) -> None:
    """Every API route with a numeric id, for an admin (who could see any id)."""
    for method, path in [("GET", f"/api/v1/alerts/{n}"), ("POST", f"/api/v1/alerts/{n}/ack"),
                         ("GET", f"/api/v1/residents/{n}"),
                         ("GET", f"/api/v1/residents/{n}/settings"),
                         ("GET", f"/api/v1/residents/{n}/activity"),
                         ("GET", f"/api/v1/residents/{n}/assignments")]:
        r = world.client.request(method, path, headers=world.h("admin"))
        assert 400 <= r.status_code < 500, (method, path, r.status_code)
    if int(n) < 0 or int(n) > 2**63 - 1:  # others are places to resume the stream from
        r = world.get("admin", "/api/v1/alerts/stream", params={"after": n})
        assert r.status_code == 422, (n, r.status_code)


@pytest.fixture()
def console(world: World) -> Iterator[tuple[World, str]]:
    world.client.cookies.set("dolbom_access", world.token("admin"))
    page = world.client.get("/console/board")
    assert page.status_code == 200
    yield world, csrf_of(page.text)
    world.client.cookies.clear()


@pytest.mark.parametrize("n", HUGE)
def test_console_ids_out_of_range_are_404(console: tuple[World, str], n: str) -> None:
    """/console/alerts/<huge>, /console/residents/<huge>, .../row and the form POSTs."""
    w, token = console
    for path in (f"/console/alerts/{n}", f"/console/alerts/{n}/row",
                 f"/console/residents/{n}"):
        r = w.client.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
    for action in ("ack", "resolve", "note"):
        r = w.client.post(f"/console/alerts/{n}/{action}",
                          data={"csrf_token": token, "outcome": "false_alarm", "text": "x"})
        assert r.status_code in (404, 422), (action, r.status_code)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_times_that_overflow_are_422(world: World, value: str) -> None:
    rid = world.residents["h1"]
    for q in ("since", "until"):
        r = world.get("admin", f"/api/v1/residents/{rid}/activity", params={q: value})
        assert r.status_code == 422, (q, r.text)
