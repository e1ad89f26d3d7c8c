"""The registry's change number (migration 0007): raised by the triggers on what the
rules read, per home; not by ingest's last-seen writes. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dolbom.registry import service as registry
from dolbom.registry.models import Device, Home, RegistryChange, RegistryVersion, Resident


def _version(s: Session) -> int:
    return s.scalars(select(RegistryVersion.n)).one()


def _since(s: Session, n: int) -> set[str]:
    return set(s.scalars(select(RegistryChange.home_id).where(RegistryChange.n > n)))


def _setup(factory: sessionmaker[Session]) -> int:
    with factory.begin() as s:
        registry.add_site(s, "s1", "Site 1")
        registry.add_home(s, "h1", "s1")
        registry.add_home(s, "h2", "s1")
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
        registry.add_device(s, "ms-h2", "s1", "h2", "multisensor")
        registry.add_resident(s, "h1", "김영희")
    with factory() as s:
        assert _since(s, 0) == {"h1", "h2"}
        return _version(s)


def test_last_seen_writes_change_nothing(factory: sessionmaker[Session]) -> None:
    n = _setup(factory)
    with factory.begin() as s:
        registry.update_device_seen(s, [("ms-h1", datetime(2026, 12, 4, tzinfo=UTC),
                                         "ok", 3, "1.2.0")])
    with factory.begin() as s:  # an update of no column the rules read
        s.execute(update(Device).where(Device.id == "ms-h2").values(fw="1.3.0"))
    with factory() as s:
        assert s.get_one(Device, "ms-h1").last_state == "ok"  # the write happened
        assert _version(s) == n and _since(s, n) == set()


def test_each_change_the_rules_read_names_its_homes(factory: sessionmaker[Session]) -> None:
    n = _setup(factory)
    with factory.begin() as s:
        registry.set_home_mode(s, "h2", "away", "on holiday")
    with factory() as s:
        assert _version(s) > n and _since(s, n) == {"h2"}
        n = _version(s)
    with factory.begin() as s:
        rid = s.scalars(select(Resident.id).where(Resident.home_id == "h1")).one()
        registry.set_resident_setting(s, rid, "inactivity_h", 10)
    with factory() as s:
        assert _since(s, n) == {"h1"}
        n = _version(s)
    with factory.begin() as s:  # a device moved: both homes
        s.get_one(Device, "ms-h1").home_id = "h2"
    with factory() as s:
        assert _since(s, n) == {"h1", "h2"}
        n = _version(s)
    with factory.begin() as s:
        registry.revoke_device(s, "ms-h2")
    with factory() as s:
        assert _since(s, n) == {"h2"}
        n = _version(s)
    with factory.begin() as s:
        s.get_one(Resident, rid).wandering = True
    with factory() as s:
        assert _since(s, n) == {"h1"}
        n = _version(s)
    with factory.begin() as s:
        s.execute(delete(Device).where(Device.id == "ms-h1"))
    with factory() as s:
        assert _since(s, n) == {"h2"}
        n = _version(s)
    with factory.begin() as s:  # labels are not for the rules
        registry.add_home(s, "h3", "s1", label="c-17")
    with factory() as s:
        assert _since(s, n) == {"h3"}
        n = _version(s)
    with factory.begin() as s:
        s.get_one(Home, "h3").label = "c-18"
    with factory() as s:
        assert _version(s) == n
