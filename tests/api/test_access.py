"""The authorization matrix (DESIGN.md §6), as properties over random people and residents.

Each home has one resident, one device and one alert (conftest), so for a care worker
"may see resident r" must equal "may see r's home, its device and its alert", and all of
them must equal "is assigned to r". Anything not visible is a 404, never a 403.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.api.conftest import HOMES, World

WORKERS = ("w1", "w2", "w3")
DEVICE = {h: dev for h, (_, _, dev, _) in HOMES.items()}
SITE = {h: site for h, (site, _, _, _) in HOMES.items()}
LIFE_SAFETY = {"h1", "h3"}  # fall, button (conftest)


def _routes(w: World, home: str) -> list[tuple[str, str, dict[str, object] | None]]:
    rid, aid = w.residents[home], w.alerts[home]
    return [
        ("GET", f"/api/v1/residents/{rid}", None),
        ("GET", f"/api/v1/residents/{rid}/settings", None),
        ("GET", f"/api/v1/residents/{rid}/assignments", None),
        ("GET", f"/api/v1/homes/{home}", None),
        ("GET", f"/api/v1/devices/{DEVICE[home]}", None),
        ("GET", f"/api/v1/alerts/{aid}", None),
        ("POST", f"/api/v1/alerts/{aid}/notes", {"text": "checked"}),
    ]


def _sees(w: World, user: str, home: str) -> set[bool]:
    """For every route about ``home``: True for 2xx, False for 404 (anything else fails)."""
    seen = set()
    for method, path, body in _routes(w, home):
        r = w.client.request(method, path, headers=w.h(user), json=body)
        assert r.status_code in (200, 404), f"{user} {method} {path}: {r.status_code} {r.text}"
        if r.status_code == 404:
            assert r.json()["detail"].endswith("does not exist")
        seen.add(r.status_code == 200)
    listed = {x["id"] for x in w.get(user, "/api/v1/residents").json()}
    seen.add(w.residents[home] in listed)
    alerts = {x["id"] for x in w.get(user, "/api/v1/alerts").json()}
    seen.add(w.alerts[home] in alerts)
    return seen


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.sampled_from(WORKERS), st.sampled_from(sorted(HOMES)),
                                st.booleans()), min_size=1, max_size=4))
def test_care_worker_access_iff_assigned(world: World, pairs: list[tuple[str, str, bool]]
                                         ) -> None:
    """access(worker, resident) ⇔ assignment, on every resident/home/device/alert route,
    and a change of assignment takes effect at the very next request."""
    for worker, home, assigned in pairs:
        world.set_assigned(worker, home, assigned)
        assert _sees(world, worker, home) == {assigned}, (worker, home, assigned)


def test_assignment_removed_through_the_api_takes_effect_at_the_next_request(
        world: World) -> None:
    rid = world.residents["h1"]
    assert world.get("w1", f"/api/v1/residents/{rid}").status_code == 200
    r = world.client.delete(f"/api/v1/residents/{rid}/assignments/w1", headers=world.h("sup1"))
    assert r.status_code == 200 and r.json() == []
    assert world.get("w1", f"/api/v1/residents/{rid}").status_code == 404
    assert world.get("w1", f"/api/v1/alerts/{world.alerts['h1']}").status_code == 404


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(home=st.sampled_from(sorted(HOMES)))
def test_responder_sees_only_life_safety_alerts_and_the_address(world: World,
                                                                home: str) -> None:
    """A responder sees life-safety alerts of their site with name, address and phone,
    and nothing else: every resident, home and device route is a 404."""
    for method, path, body in _routes(world, home):
        r = world.client.request(method, path, headers=world.h("resp1"), json=body)
        should = "/alerts/" in path and home in LIFE_SAFETY and SITE[home] == "s1"
        assert r.status_code == (200 if should else 404), (path, r.status_code)
        if should and method == "GET":
            (who,) = r.json()["respond_to"]
            assert who["address"] == f"{home} street" and who["phone"] and who["name"]
    assert world.get("resp1", "/api/v1/residents").json() == []
    assert world.get("resp1", "/api/v1/homes").json() == []
    assert world.get("resp1", "/api/v1/devices").json() == []
    listed = {a["id"] for a in world.get("resp1", "/api/v1/alerts").json()}
    assert listed == {world.alerts[h] for h in LIFE_SAFETY}
    assert world.get("resp1", "/api/v1/reports/response-times").status_code == 403


def test_responder_loses_the_address_once_resolved(world: World) -> None:
    aid = world.alerts["h1"]
    r = world.post("sup1", f"/api/v1/alerts/{aid}/resolve", json={"outcome": "visited_ok"})
    assert r.status_code == 200
    assert world.get("resp1", f"/api/v1/alerts/{aid}").json()["respond_to"] == []


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(home=st.sampled_from(sorted(HOMES)), sup=st.sampled_from(["sup1", "sup2"]))
def test_supervisor_sees_exactly_their_site(world: World, home: str, sup: str) -> None:
    site = {"sup1": "s1", "sup2": "s2"}[sup]
    assert _sees(world, sup, home) == {SITE[home] == site}


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(home=st.sampled_from(sorted(HOMES)))
def test_admin_sees_everything(world: World, home: str) -> None:
    assert _sees(world, "admin", home) == {True}


def test_care_worker_cannot_manage_what_they_see(world: World) -> None:
    """Visible but not theirs to change: 403 (they know it exists); others' sites: 404."""
    rid = world.residents["h1"]
    r = world.client.put(f"/api/v1/residents/{rid}/settings/inactivity_caution_h",
                         headers=world.h("w1"), json={"value": 8})
    assert r.status_code == 403
    r = world.post("w1", "/api/v1/devices/d-h1/revoke")
    assert r.status_code == 403
    r = world.post("sup2", "/api/v1/devices/d-h1/revoke")
    assert r.status_code == 404
    r = world.post("w1", "/api/v1/homes", json={"id": "h9", "site_id": "s1"})
    assert r.status_code == 404  # a care worker does not "see" a site's registry
    r = world.client.put("/api/v1/homes/h1/mode", headers=world.h("w1"),
                         json={"mode": "hospital", "reason": "admitted"})
    assert r.status_code == 200 and r.json()["mode"] == "hospital"


def test_alert_can_only_be_assigned_to_someone_who_may_see_it(world: World) -> None:
    aid = world.alerts["h1"]
    r = world.post("sup1", f"/api/v1/alerts/{aid}/assign", json={"username": "w2"})
    assert r.status_code == 422
    r = world.post("sup1", f"/api/v1/alerts/{aid}/assign", json={"username": "w1"})
    assert r.status_code == 200 and r.json()["assignee"] == "w1"
    assert [a["id"] for a in world.get("sup1", "/api/v1/alerts",
                                       params={"worker": "w1"}).json()] == [aid]


def test_stream_filter_agrees_with_the_listing_for_everyone(world: World) -> None:
    """The live stream's filter (Scope.allows_alert, in Python) and the alert listing (SQL)
    are the same rule, for every person and every alert."""
    from dolbom.api import access
    from dolbom.registry.models import Alert, User

    with world.sessions() as s:
        alerts = list(s.scalars(select(Alert)))
        for user in s.scalars(select(User)):
            scope = access.scope_for(s, user)
            listed = {a.id for a in access.visible_alerts(
                s, scope, status=["open", "acknowledged", "resolved"], limit=1000)}
            by_rule = {a.id for a in alerts
                       if scope.allows_alert(a.site_id, a.home_id, a.klass, a.priority)}
            assert listed == by_rule, user.username
            assert by_rule, f"{user.username} should see some alert in this world"
