"""Registry operations (dolbom.registry.service) on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from dolbom.registry import service as svc
from dolbom.registry.broker import mosquitto_hash
from dolbom.registry.db import make_engine
from dolbom.registry.errors import AlreadyExists, InvalidInput, NotFound
from dolbom.registry.models import (
    Assignment,
    DeadLetter,
    Device,
    Home,
    HomeMode,
    Power,
    Resident,
    ResidentSetting,
    ServiceAccount,
    ServiceRole,
    User,
    UserRole,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KST = timezone(timedelta(hours=9))


@pytest.fixture()
def registry(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """A registry with site s1 (homes h1, h2) and site s2 (home h9)."""
    with factory.begin() as s:
        svc.add_site(s, "s1", "Seoul centre")
        svc.add_site(s, "s2", "Busan centre")
        svc.add_home(s, "h1", "s1", "case-0001")
        svc.add_home(s, "h2", "s1")
        svc.add_home(s, "h9", "s2")
    return factory


def _hash_matches(stored: str, password: str) -> bool:
    _, _, iterations, salt, _ = stored.split("$")
    return mosquitto_hash(password, base64.b64decode(salt), int(iterations)) == stored


@contextmanager
def _count_queries(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = session.get_bind()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_provisioning_stores_sites_homes_residents_and_devices(
    registry: sessionmaker[Session],
) -> None:
    """Adding a resident and a device stores them with defaults and a hash of the password."""
    with registry.begin() as s:
        r = svc.add_resident(s, "h1", "김영희", phone="010-1234-5678", address="서울시 …",
                             birth_year=1941, wandering=True)
        _, password = svc.add_device(s, "esp32-a1b2c3", "s1", "h1", "multisensor")
        rid = r.id
    with registry() as s:
        home = s.get(Home, "h1")
        assert home is not None and home.mode is HomeMode.NORMAL and home.label == "case-0001"
        resident = s.get(Resident, rid)
        assert resident is not None
        assert (resident.name, resident.wandering, resident.birth_year) == ("김영희", True, 1941)
        d = s.get(Device, "esp32-a1b2c3")
        assert d is not None
        assert (d.site_id, d.home_id, d.kind, d.power, d.hb_s) == (
            "s1", "h1", "multisensor", Power.MAINS, 60)
        assert d.created_at.tzinfo is UTC and d.revoked_at is None
        assert password not in d.mqtt_hash and _hash_matches(d.mqtt_hash, password)
        assert len(password) == 32  # token_urlsafe(24)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: svc.add_site(s, "S1", "x"), InvalidInput, "site id 'S1' is not valid"),
        (lambda s: svc.add_site(s, "s1", "again"), AlreadyExists, "site 's1' already exists"),
        (lambda s: svc.add_site(s, "s3", "  "), InvalidInput, "site name must not be empty"),
        (lambda s: svc.add_home(s, "h3", "nope"), NotFound, "site 'nope' does not exist"),
        (lambda s: svc.add_home(s, "h1", "s1"), AlreadyExists, "home 'h1' already exists"),
        (lambda s: svc.add_resident(s, "h01", "x"), NotFound, "home 'h01' does not exist"),
        (lambda s: svc.add_resident(s, "h1", "x", birth_year=1850), InvalidInput, "birth year"),
        (lambda s: svc.add_device(s, "gw", "s1", None, "gateway"), InvalidInput, "reserved"),
        (lambda s: svc.add_device(s, "a/b", "s1", None, "door"), InvalidInput, "not valid"),
        (lambda s: svc.add_device(s, "d1", "s1", "h9", "door"), InvalidInput,
         "home 'h9' is in site 's2', not 's1'"),
        (lambda s: svc.add_device(s, "d1", "s1", None, "toaster"), InvalidInput,
         "device kind 'toaster'"),
        (lambda s: svc.add_device(s, "d1", "s1", None, "door", power="solar"), InvalidInput,
         "power 'solar'"),
        (lambda s: svc.add_device(s, "d1", "s1", None, "door", hb_s=0), InvalidInput,
         "heartbeat interval"),
        (lambda s: svc.add_device(s, "d1", "s3", None, "door"), NotFound,
         "site 's3' does not exist"),
        (lambda s: svc.revoke_device(s, "d404"), NotFound, "device 'd404' does not exist"),
        (lambda s: svc.ensure_service_account(s, "ingest", "root", "pw"), InvalidInput,
         "service role 'root'"),
        (lambda s: svc.list_dead_letters(s, limit=0), InvalidInput, "limit"),
    ],
)
def test_bad_requests_raise_a_clear_registry_error(
    registry: sessionmaker[Session], call: Any, error: type[Exception], message: str
) -> None:
    """Each invalid request raises the right RegistryError naming the id and the problem."""
    with registry() as s, pytest.raises(error, match=message.replace("(", r"\(")):
        call(s)


def test_devices_and_service_accounts_share_one_mqtt_namespace(
    registry: sessionmaker[Session],
) -> None:
    """A device id cannot be a service account name, nor the other way round (one broker user)."""
    with registry.begin() as s:
        svc.add_device(s, "d1", "s1", None, "door")
        svc.ensure_service_account(s, "ingest", "ingest", "pw")
    with registry() as s:
        with pytest.raises(AlreadyExists, match="'ingest' is already a service account"):
            svc.add_device(s, "ingest", "s1", None, "door")
        with pytest.raises(AlreadyExists, match="'d1' is already a device"):
            svc.ensure_service_account(s, "d1", "operator", "pw")
        with pytest.raises(AlreadyExists, match="'d1' is already a device"):
            svc.add_device(s, "d1", "s1", None, "door")


def test_ensure_service_account_creates_then_updates(registry: sessionmaker[Session]) -> None:
    """A second call with a new role and password updates the account in place."""
    with registry.begin() as s:
        svc.ensure_service_account(s, "svc", "ingest", "one")
    with registry.begin() as s:
        svc.ensure_service_account(s, "svc", "alerts", "two")
    with registry() as s:
        (acct,) = s.scalars(select(ServiceAccount)).all()
        assert acct.role is ServiceRole.ALERTS and _hash_matches(acct.mqtt_hash, "two")


def test_revoked_devices_leave_the_index_and_keep_their_id(registry: sessionmaker[Session]) -> None:
    """device_index lists active devices only; revoking twice is harmless; the id stays taken."""
    with registry.begin() as s:
        svc.add_device(s, "d1", "s1", "h1", "door", power="battery", hb_s=300)
        svc.add_device(s, "d2", "s1", None, "gateway")
        first = svc.revoke_device(s, "d1").revoked_at
    with registry.begin() as s:
        assert svc.revoke_device(s, "d1").revoked_at == first
        assert svc.device_index(s) == {"d2": svc.DeviceRef("s1", None, "gateway")}
        assert [d.id for d in svc.list_devices(s)] == ["d2"]
        assert [d.id for d in svc.list_devices(s, include_revoked=True)] == ["d1", "d2"]
    with registry() as s, pytest.raises(AlreadyExists, match="revoked; provision it under a new"):
        svc.add_device(s, "d1", "s1", "h1", "door")


def test_device_index_is_one_query(registry: sessionmaker[Session]) -> None:
    """Ingest's lookup table of every device comes from a single SELECT."""
    with registry.begin() as s:
        for i in range(30):
            svc.add_device(s, f"d{i:02}", "s1", "h1" if i % 2 else None, "multisensor")
    with registry() as s, _count_queries(s) as statements:
        index = svc.device_index(s)
    assert len(index) == 30 and index["d01"] == svc.DeviceRef("s1", "h1", "multisensor")
    assert len([q for q in statements if q.lstrip().upper().startswith("SELECT")]) == 1


def test_update_device_seen_keeps_the_newest_values(registry: sessionmaker[Session]) -> None:
    """Rows collapse per device; None keeps a field; old rows, unknown devices ignored; clipped."""
    with registry.begin() as s:
        svc.add_device(s, "d1", "s1", "h1", "multisensor")
        svc.add_device(s, "d2", "s1", "h1", "door")
    with registry.begin() as s:
        svc.update_device_seen(s, [
            ("d1", T0 + timedelta(seconds=60), None, None, None),  # heartbeat after the status
            ("d1", T0, "ready", 17, "1.2.0"),
            ("d2", T0.astimezone(KST), "sleeping", 3, "9" * 40 + "\x00"),
            ("nope", T0, "ready", 1, "x"),
        ])
    with registry.begin() as s:
        svc.update_device_seen(s, [("d1", T0 - timedelta(hours=1), "lost", 16, "1.1.0")])
        svc.update_device_seen(s, [])
    with registry() as s:
        rows = {d.id: (d.last_seen_at, d.last_state, d.last_boot, d.fw)
                for d in s.scalars(select(Device))}
    assert rows == {
        "d1": (T0 + timedelta(seconds=60), "ready", 17, "1.2.0"),
        "d2": (T0, "sleeping", 3, "9" * 32),
    }
    assert rows["d2"][0] is not None and rows["d2"][0].tzinfo is UTC


def test_dead_letters_are_clipped_and_listed_newest_first(registry: sessionmaker[Session]) -> None:
    """Payloads keep 4096 bytes; hostile text is stored safely; reason filters and limit apply."""
    rows = [
        svc.DeadLetterIn(T0, "care/v1/s1/d1/telemetry", "d1", "not_json", "bad", b"x" * 10_000),
        svc.DeadLetterIn(T0 + timedelta(seconds=1), "t/" * 1000, "d" * 100, "bad_topic",
                         "nul \x00 in detail", b"\x00\xff"),
        svc.DeadLetterIn(T0 + timedelta(seconds=2), "care/v1/s1/d9/status", None,
                         "unknown_device", "device 'd9' is not registered", b"{}"),
    ]
    with registry.begin() as s:
        svc.add_dead_letters(s, rows)
        svc.add_dead_letters(s, [])
    with registry() as s:
        newest = svc.list_dead_letters(s)
        assert [d.reason for d in newest] == ["unknown_device", "bad_topic", "not_json"]
        assert newest[0].received_at == T0 + timedelta(seconds=2)
        assert newest[0].received_at.tzinfo is UTC and newest[0].device is None
        assert len(newest[2].payload) == 4096 and newest[1].payload == b"\x00\xff"
        assert len(newest[1].topic) == 512 and newest[1].device == "d" * 48
        assert "\x00" not in newest[1].detail
        assert [d.reason for d in svc.list_dead_letters(s, limit=1)] == ["unknown_device"]
        only = svc.list_dead_letters(s, reason="not_json")
        assert [d.device for d in only] == ["d1"]
        assert len(s.scalars(select(DeadLetter)).all()) == 3


def test_people_assignments_and_resident_settings(registry: sessionmaker[Session]) -> None:
    """Users, one assignment per (user, resident) pair and JSON thresholds round-trip."""
    with registry.begin() as s:
        r = svc.add_resident(s, "h1", "x")
        u = User(username="kim", display_name="Kim", role=UserRole.CARE_WORKER, site_id="s1")
        s.add(u)
        s.flush()
        s.add(Assignment(user_id=u.id, resident_id=r.id))
        s.add(ResidentSetting(resident_id=r.id, key="inactivity_h", value=[10, 20, 30]))
        s.add(ResidentSetting(resident_id=r.id, key="sleep",
                              value={"from": "22:00", "to": "07:00"}))
        ids = (u.id, r.id)
    with registry() as s:
        user = s.get(User, ids[0])
        assert user is not None and user.active and user.password_hash is None
        assert user.locale == "ko"
        values = {x.key: x.value for x in s.scalars(select(ResidentSetting))}
        assert values == {"inactivity_h": [10, 20, 30], "sleep": {"from": "22:00", "to": "07:00"}}
        s.add(Assignment(user_id=ids[0], resident_id=ids[1]))
        with pytest.raises(IntegrityError):
            s.flush()


def test_foreign_keys_are_enforced(factory: sessionmaker[Session]) -> None:
    """A home in a missing site is refused by the database itself (SQLite's pragma is on)."""
    with factory() as s:
        s.add(Home(id="h1", site_id="missing", label=""))
        with pytest.raises(IntegrityError):
            s.flush()


def test_naive_datetimes_are_refused(registry: sessionmaker[Session]) -> None:
    """Storing a datetime without a time zone fails instead of guessing one."""
    with registry() as s:
        svc.add_device(s, "d1", "s1", None, "door")
        s.commit()
        with pytest.raises(StatementError, match="naive datetime"):
            svc.update_device_seen(s, [("d1", datetime(2026, 1, 1), None, None, None)])


def test_sqlite_engine_uses_wal_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    """make_engine sets WAL, foreign keys and the busy timeout on every SQLite connection."""
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        engine.dispose()


def test_device_index_version_moves_exactly_when_the_index_would(
        registry: sessionmaker[Session]) -> None:
    """Ingest re-reads the fleet's index only when a device was added or revoked."""
    with registry() as s:
        empty = svc.device_index_version(s)
    with registry.begin() as s:
        svc.add_device(s, "d1", "s1", "h1", "multisensor")
    with registry() as s:
        one = svc.device_index_version(s)
        assert one != empty and svc.device_index_version(s) == one
    with registry.begin() as s:
        svc.update_device_seen(s, [("d1", T0, "ready", 1, "1.0.0")])  # not an index change
    with registry() as s:
        assert svc.device_index_version(s) == one
    with registry.begin() as s:
        svc.revoke_device(s, "d1")
    with registry() as s:
        assert svc.device_index_version(s) != one
