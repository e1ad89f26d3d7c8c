"""A registry refresh reads only what changed (the change number of migration 0007):
nothing changed, one small query; a change, only the homes it names. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.registry import service as registry
from dolbom.registry.models import Resident
from tests.alerts.conftest import People


@contextmanager
def _statements(svc: AlertService) -> Iterator[list[str]]:
    """The SQL statements the service's sessions run meanwhile."""
    bind = svc.sessions.kw["bind"]
    assert isinstance(bind, Engine)
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(bind, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", note)


async def _service(s: Session, db_url: str) -> AlertService:
    with s.begin():
        for i in range(5):
            registry.add_home(s, f"hx{i}", "s1")
            registry.add_device(s, f"ms-hx{i}", "s1", f"hx{i}", "multisensor")
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
    svc = AlertService(AlertsSettings(database_url=db_url, alerts=AlertOptions(metrics_port=0)),
                       clock=lambda: 1_700_000_000.0)
    await svc.registry.load()
    return svc


async def test_an_unchanged_registry_is_not_read_again(
        care_db: tuple[Session, People], db_url: str) -> None:
    s, _ = care_db
    svc = await _service(s, db_url)
    homes, devices = svc.homes, svc.rules.device_home
    with s.begin():  # ingest's last-seen writes are no change to the rules
        registry.update_device_seen(s, [("ms-h1", datetime(2026, 12, 4, tzinfo=UTC),
                                         "ok", 1, "1.0.0")])
    with _statements(svc) as seen:
        await svc.registry.refresh()
        await svc.registry.refresh()
    assert len(seen) == 2 and all("registry_version" in q for q in seen)
    assert svc.homes is homes and svc.rules.device_home is devices


async def test_a_change_rereads_only_its_homes(
        care_db: tuple[Session, People], db_url: str) -> None:
    s, _ = care_db
    svc = await _service(s, db_url)
    before = dict(svc.homes)
    with s.begin():
        rid = s.scalars(select(Resident.id).where(Resident.home_id == "h1")).one()
        registry.set_resident_setting(s, rid, "inactivity_caution_h", 10)
        registry.set_home_mode(s, "hx2", "away", "on holiday")
    with _statements(svc) as seen:
        await svc.registry.refresh()
    assert svc.homes["h1"].thresholds.inactivity_caution_h == 10
    assert svc.homes["hx2"].mode == "away"
    assert before["h1"].thresholds.inactivity_caution_h != 10
    # the other homes keep their very configurations: they were not read again
    assert all(svc.homes[h] is cfg for h, cfg in before.items() if h not in ("h1", "hx2"))
    # the homes read: only h1 and hx2 (one IN list per table)
    reads = [q for q in seen if "FROM homes" in q or "FROM devices" in q]
    assert reads and all("IN (" in q for q in reads)
    with _statements(svc) as seen:  # and then nothing more
        await svc.registry.refresh()
    assert len(seen) == 1


async def test_a_new_device_and_a_new_home_are_found(
        care_db: tuple[Session, People], db_url: str) -> None:
    s, _ = care_db
    svc = await _service(s, db_url)
    assert svc.rules.route("btn-h2") is None
    with s.begin():
        registry.add_device(s, "btn-h2", "s1", "h2", "button", power="battery", hb_s=300)
    # a life-safety event from a device not yet known looks the registry up
    assert await svc._lookup("btn-h2") == ("s1", "h2")
    with s.begin():
        registry.add_home(s, "h9", "s1")
        registry.add_device(s, "ms-h9", "s1", "h9", "multisensor")
        registry.revoke_device(s, "ms-hx0")
    await svc.registry.refresh()
    assert svc.rules.route("ms-h9") == ("s1", "h9") and "h9" in svc.states
    assert svc.rules.route("ms-hx0") is None and svc.homes["hx0"].ids == ()
    assert svc.rules.route("ms-hx1") == ("s1", "hx1")
