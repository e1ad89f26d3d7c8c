"""The audit log: every route about a resident writes an entry; the chain detects tampering."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import sessionmaker

from dolbom.api import audit
from dolbom.cli import main
from dolbom.influx.admin import InfluxUsers as Users
from dolbom.registry.db import make_engine
from dolbom.registry.models import AuditEntry, User
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB
from tests.api.conftest import SECRET, World

OBJECT_PARAMS = ("{resident_id}", "{home_id}", "{device_id}", "{alert_id}")


def _requests(w: World) -> dict[tuple[str, str], tuple[dict[str, Any], set[Any]]]:
    """(method, route) → (request kwargs, resident ids the entry must name). In order."""
    r1, a1 = w.residents["h1"], w.alerts["h1"]
    one: set[Any] = {r1}
    ids: dict[str, Any] = {"resident_id": r1, "home_id": "h1", "device_id": "d-h1",
                           "alert_id": a1, "key": "inactivity_caution_h", "username": "w2"}
    p = "/api/v1"
    table: dict[tuple[str, str], tuple[dict[str, Any], set[Any]]] = {
        ("GET", f"{p}/residents"): ({}, set(w.residents.values())),
        ("POST", f"{p}/residents"): ({"json": {"home_id": "h2", "name": "새 주민"}}, set()),
        ("GET", f"{p}/residents/{{resident_id}}"): ({}, one),
        ("GET", f"{p}/residents/{{resident_id}}/settings"): ({}, one),
        ("PUT", f"{p}/residents/{{resident_id}}/settings/{{key}}"): ({"json": {"value": 8}},
                                                                     one),
        ("DELETE", f"{p}/residents/{{resident_id}}/settings/{{key}}"): ({}, one),
        ("GET", f"{p}/residents/{{resident_id}}/assignments"): ({}, one),
        ("PUT", f"{p}/residents/{{resident_id}}/assignments/{{username}}"): ({}, one),
        ("DELETE", f"{p}/residents/{{resident_id}}/assignments/{{username}}"): ({}, one),
        ("GET", f"{p}/residents/{{resident_id}}/activity"): ({}, one),
        ("GET", f"{p}/residents/{{resident_id}}/last-seen"): ({}, one),
        ("GET", f"{p}/residents/{{resident_id}}/readings"): (
            {"params": {"field": "temperature_c"}}, one),
        ("GET", f"{p}/homes/{{home_id}}"): ({}, one),
        ("PUT", f"{p}/homes/{{home_id}}/mode"): ({"json": {"mode": "away",
                                                           "reason": "family visit"}}, one),
        ("POST", f"{p}/devices"): ({"json": {"id": "d-new", "site_id": "s1",
                                             "home_id": "h1", "kind": "door"}}, one),
        ("GET", f"{p}/devices/{{device_id}}"): ({}, one),
        ("POST", f"{p}/devices/{{device_id}}/revoke"): ({}, one),
        ("GET", f"{p}/alerts/{{alert_id}}"): ({}, one),
        ("POST", f"{p}/alerts/{{alert_id}}/ack"): ({}, one),
        ("POST", f"{p}/alerts/{{alert_id}}/assign"): ({"json": {"username": "w1"}}, one),
        ("POST", f"{p}/alerts/{{alert_id}}/notes"): ({"json": {"text": "called"}}, one),
        ("POST", f"{p}/alerts/{{alert_id}}/resolve"): ({"json": {"outcome": "visited_ok"}},
                                                       one),
    }
    table[("_", "_ids")] = (ids, set())
    return table


def _entries(w: World) -> list[AuditEntry]:
    with w.sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


@pytest.fixture()
def influx_world(make_world: Any, sqlite_url: str, influx: InfluxDB,
                 influx_users: Users) -> World:
    user, pw = influx_users.dashboard
    w: World = make_world(sqlite_url, influx=InfluxSettings(url=influx.url, username=user,
                                                            password=pw))
    return w


def test_every_resident_data_route_writes_an_audit_entry(influx_world: World) -> None:
    """Enumerates the app's routes: any route about a resident, home, device or alert that
    is missing from the table, or answers without an audit entry, fails this test."""
    w = influx_world
    table = _requests(w)
    ids = table.pop(("_", "_ids"))[0]
    schema_routes = {(m.upper(), path)
                     for path, ops in w.client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
                     for m in ops
                     if any(x in path for x in OBJECT_PARAMS) or path.startswith(
                         "/api/v1/residents")}
    schema_routes.discard(("GET", "/api/v1/alerts/stream"))  # ids only, no resident data
    missing = schema_routes - set(table)
    assert not missing, f"routes without an audit check (add them to _requests): {missing}"
    for (method, route), (kw, expected) in table.items():
        before = len(_entries(w))
        path = route.format(**ids)
        r = w.client.request(method, path, headers=w.h("admin"), **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        new = _entries(w)[before:]
        assert new, f"{method} {route} wrote no audit entry"
        assert {e.route for e in new} == {route}
        assert all(e.actor == "admin" and e.actor_id == w.users["admin"] and e.action
                   and e.client_ip == "testclient" for e in new)
        residents = {r.json()["id"]} if (method, route) == ("POST", "/api/v1/residents") \
            else expected
        assert {e.resident_id for e in new} == residents, route
    with w.sessions() as s:
        assert audit.verify_chain(s, audit.load_key(w.settings)).ok


def test_reads_without_resident_data_write_nothing_and_denied_reads_neither(
        world: World) -> None:
    """Lists of ids only (alerts, devices) are not resident data; a 404 wrote no entry."""
    world.get("w1", "/api/v1/alerts")
    world.get("w1", "/api/v1/devices")
    assert world.get("w1", f"/api/v1/residents/{world.residents['h2']}").status_code == 404
    assert _entries(world) == []


def _run_cli(w: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("DOLBOM_API__DATABASE_URL", w.url)
    monkeypatch.setenv("DOLBOM_API__JWT_SECRET", SECRET)
    return main(["api", *args])


@pytest.mark.parametrize("tamper", ["update", "delete"])
def test_tampering_breaks_the_chain_and_the_cli_says_where(
        store_world: World, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tamper: str) -> None:
    """UPDATE (or DELETE) one row in SQL: verification fails naming the first broken entry,
    and `dolbom api audit-verify` exits non-zero."""
    w = store_world
    for home in ("h1", "h2", "h3"):
        assert w.get("admin", f"/api/v1/residents/{w.residents[home]}").status_code == 200
    assert _run_cli(w, monkeypatch, "audit-verify") == 0
    assert "3 entries" in capsys.readouterr().out
    entries = _entries(w)
    victim = entries[1].id
    with w.sessions.begin() as s:
        if tamper == "update":
            s.execute(text("UPDATE audit_log SET resident_id = 999 WHERE id = :id"),
                      {"id": victim})
        else:
            s.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": victim})
    with w.sessions() as s:
        result = audit.verify_chain(s, audit.load_key(w.settings))
    broken = victim if tamper == "update" else entries[2].id
    assert not result.ok and result.first_bad_id == broken
    assert _run_cli(w, monkeypatch, "audit-verify") != 0
    err = capsys.readouterr().err
    assert f"entry {broken}" in err and "\n" not in err.strip()


def test_concurrent_writers_never_fork_the_chain(store_world: World) -> None:
    """Four writers, each with its own engine (as separate API instances), append at once:
    one linear chain, every entry kept (PostgreSQL: advisory lock; SQLite: write lock)."""
    w = store_world
    per_thread, threads = 15, 4
    with w.sessions() as s:
        actor = s.get(User, w.users["admin"])
        assert actor is not None
        s.expunge(actor)
    errors: list[BaseException] = []
    start = threading.Barrier(threads)
    key = audit.load_key(w.settings)

    def writer(n: int) -> None:
        engine = make_engine(w.url)
        try:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            start.wait()
            for i in range(per_thread):
                with factory.begin() as s:
                    audit.record(s, key, actor=actor, action="test.concurrent", resident_id=i,
                                 client_ip=f"10.0.0.{n}", route="/test")
        except BaseException as e:
            errors.append(e)
        finally:
            engine.dispose()

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not errors, errors
    with w.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == per_thread * threads
        result = audit.verify_chain(s, audit.load_key(w.settings))
    assert result.ok and result.entries == per_thread * threads


def test_audit_log_records_client_ip_and_time_from_the_clock(world: World) -> None:
    world.get("sup1", f"/api/v1/residents/{world.residents['h2']}")
    (e,) = _entries(world)
    assert e.at == world.clock() and e.client_ip == "testclient"
    assert e.action == "resident.read" and e.resident_id == world.residents["h2"]
