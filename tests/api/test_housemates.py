"""Per-resident access inside a shared home: a care worker assigned to one resident sees the
home's alerts, but never a housemate's name, phone or address, on any route or page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dolbom.registry import service as registry
from tests.api.conftest import World

HOUSEMATE = ("한지민", "010-9876-5432", "비밀로 7길 42")


@pytest.fixture()
def shared(world: World) -> Iterator[tuple[World, int]]:
    """h1 (w1's resident 김영희, a fall alert) gets a housemate w1 is not assigned to."""
    name, phone, address = HOUSEMATE
    with world.sessions.begin() as s:
        mate = registry.add_resident(s, "h1", name, phone=phone, address=address).id
    yield world, mate
    world.client.cookies.clear()


def _leaks(body: str) -> list[str]:
    return [x for x in HOUSEMATE if x in body]


def test_alert_detail_names_only_the_workers_own_resident(shared: tuple[World, int]) -> None:
    """GET /alerts/{id}: respond_to of a care worker lists their resident, not the housemate."""
    w, _ = shared
    r = w.get("w1", f"/api/v1/alerts/{w.alerts['h1']}")
    assert r.status_code == 200, r.text
    assert [p["resident_id"] for p in r.json()["respond_to"]] == [w.residents["h1"]]
    assert _leaks(r.text) == []


@pytest.mark.parametrize("who", ["resp1", "sup1", "admin"])
def test_responders_and_supervisors_see_everyone_at_the_home(shared: tuple[World, int],
                                                              who: str) -> None:
    """Those who respond get every resident of the home with address and phone."""
    w, mate = shared
    r = w.get(who, f"/api/v1/alerts/{w.alerts['h1']}")
    assert r.status_code == 200, r.text
    ids = {p["resident_id"] for p in r.json()["respond_to"]}
    assert ids == {w.residents["h1"], mate}
    assert _leaks(r.text) == list(HOUSEMATE)


def test_no_api_route_or_console_page_shows_the_housemate_to_the_worker(
        shared: tuple[World, int]) -> None:
    """Every API listing and detail, and every console page, w1 can open: no housemate data
    (and the housemate's own routes are 404)."""
    w, mate = shared
    mine, alert = w.residents["h1"], w.alerts["h1"]
    api = ["/api/v1/alerts", f"/api/v1/alerts/{alert}", "/api/v1/residents",
           "/api/v1/residents?home_id=h1", f"/api/v1/residents/{mine}", "/api/v1/homes",
           "/api/v1/homes/h1", "/api/v1/devices", "/api/v1/me",
           f"/api/v1/residents/{mine}/assignments"]
    for path in api:
        r = w.get("w1", path)
        assert r.status_code == 200, (path, r.text)
        assert _leaks(r.text) == [], path
    for path in (f"/api/v1/residents/{mate}", f"/api/v1/residents/{mate}/settings",
                 f"/api/v1/residents/{mate}/assignments"):
        assert w.get("w1", path).status_code == 404, path
    w.client.cookies.set("dolbom_access", w.token("w1"))
    pages = ["/console/board", "/console/alerts", "/console/watch", f"/console/alerts/{alert}",
             f"/console/alerts/{alert}/row", f"/console/residents/{mine}"]
    for path in pages:
        r = w.client.get(path, follow_redirects=False)
        assert r.status_code == 200, (path, r.status_code)
        assert _leaks(r.text) == [], path
        assert "김영희" in r.text or path == "/console/watch", path
    assert w.client.get(f"/console/residents/{mate}").status_code == 404


def test_the_console_alert_page_shows_the_housemate_to_a_responder(
        shared: tuple[World, int]) -> None:
    """The filter is per person, not a blanket removal: the responder's page names both."""
    w, _ = shared
    w.client.cookies.set("dolbom_access", w.token("resp1"))
    r = w.client.get(f"/console/alerts/{w.alerts['h1']}")
    assert r.status_code == 200
    assert _leaks(r.text) == list(HOUSEMATE)
