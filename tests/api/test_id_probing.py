"""Another site's home and device ids cannot be probed by a supervisor creating one: the
answer is the same whether the id exists elsewhere or not, and the attempt is audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from dolbom.registry.models import AuditEntry, Device, Home
from tests.api.conftest import World

P = "/api/v1"

# (route, body for an id, the seeded id another site (s2) uses, the model)
KINDS: dict[str, tuple[str, Any, str, type[Home] | type[Device]]] = {
    "home": ("/homes", lambda i: {"id": i, "site_id": "s1"}, "h4", Home),
    "device": ("/devices", lambda i: {"id": i, "site_id": "s1", "kind": "plug"}, "d-h4",
               Device),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_foreign_id_gets_the_same_answer_as_a_free_one(world: World, kind: str) -> None:
    """sup1 trying s2's id and an unused id (outside s1's namespace) gets one answer."""
    route, body, foreign, model = KINDS[kind]
    foreign_r = world.post("sup1", P + route, json=body(foreign))
    free_r = world.post("sup1", P + route, json=body("zz-free"))
    assert foreign_r.status_code == free_r.status_code == 422, (foreign_r.text, free_r.text)
    assert foreign_r.json()["detail"] == free_r.json()["detail"]
    with world.sessions() as s:
        assert s.get(model, "zz-free") is None
        owner = s.get(model, foreign)
        assert owner is not None and owner.site_id == "s2"  # nothing changed hands


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_site_namespace_works_and_a_taken_id_is_409_whoever_holds_it(
        world: World, kind: str) -> None:
    """Inside the namespace a new id is created; taken (own or by an admin for another
    site) it is one 409 with one text."""
    route, body, _, _ = KINDS[kind]
    r = world.post("sup1", P + route, json=body("s1-new"))
    assert r.status_code == 201, r.text
    own = world.post("sup1", P + route, json=body("s1-new"))
    other = {**body("s1-odd"), "site_id": "s2"}
    assert world.post("admin", P + route, json=other).status_code == 201
    foreign = world.post("sup1", P + route, json=body("s1-odd"))
    assert own.status_code == foreign.status_code == 409
    assert own.json()["detail"].replace("s1-new", "ID") == \
        foreign.json()["detail"].replace("s1-odd", "ID")


def test_refused_attempts_are_audited(world: World) -> None:
    """Each refused id (a probe of another site's ids) leaves an audit entry naming it."""
    world.post("sup1", f"{P}/homes", json={"id": "h4", "site_id": "s1"})
    world.post("sup1", f"{P}/devices", json={"id": "d-h4", "site_id": "s1", "kind": "plug"})
    with world.sessions() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action.like("%.refused"))))
    got = {(e.action, e.actor) for e in rows}
    assert got == {("home.add.refused", "sup1"), ("device.provision.refused", "sup1")}
    assert all("foreign" in e.detail and "h4" in e.detail for e in rows)
