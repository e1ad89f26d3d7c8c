"""Registry operations: plain functions the CLI, the simulator, ingest and the API call.

Each takes a ``Session`` and flushes, never commits: the caller owns the
transaction (``with factory.begin() as session: ...``), so several operations
can succeed or fail together. Bad input raises ``InvalidInput``, ``NotFound``
or ``AlreadyExists`` with a message that names ids only, never personal data.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dolbom.protocol import check_id
from dolbom.registry import cells
from dolbom.registry.broker import mosquitto_hash
from dolbom.registry.errors import AlreadyExists, InvalidInput, NotFound
from dolbom.registry.models import (
    CELL_PATTERN,
    DEAD_LETTER_PAYLOAD_MAX,
    DEFAULT_CELL,
    DEVICE_KINDS,
    ID_LEN,
    Assignment,
    Contact,
    DeadLetter,
    Device,
    Home,
    HomeMode,
    Locale,
    Power,
    Resident,
    ResidentSetting,
    ServiceAccount,
    ServiceRole,
    Site,
    User,
    UserRole,
    site_ids_in_cell,
    utcnow,
)

HB_MIN_S, HB_MAX_S = 5, 86_400
BIRTH_YEAR_MIN = 1900
DEAD_LETTER_TOPIC_MAX = 512  # a hostile client may send a 64 KB topic
DEAD_LETTER_DETAIL_MAX = 1000


def _id(value: str, what: str) -> str:
    try:
        return check_id(value, what)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def _text(value: str, what: str, max_len: int, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{what} is longer than {max_len} characters")
    return value


def _flush(session: Session, what: str) -> None:
    """Flush; a unique-key race with another writer becomes AlreadyExists."""
    try:
        session.flush()
    except IntegrityError:
        raise AlreadyExists(f"{what} already exists") from None


def _site(session: Session, site_id: str) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"site {site_id!r} does not exist")
    return site


def _home(session: Session, home_id: str) -> Home:
    home = session.get(Home, home_id)
    if home is None:
        raise NotFound(f"home {home_id!r} does not exist")
    return home


def _cell(cell: str) -> str:
    if not re.fullmatch(CELL_PATTERN, cell):
        raise InvalidInput(f"cell {cell!r} is not valid: use 1-32 characters a-z, 0-9, '_' "
                           "or '-', starting with a letter or digit")
    return cell


def add_site(session: Session, site_id: str, name: str, cell: str = DEFAULT_CELL) -> Site:
    _id(site_id, "site id")
    if session.get(Site, site_id) is not None:
        raise AlreadyExists(f"site {site_id!r} already exists")
    cells.require_known_cell(session, _cell(cell))
    site = Site(id=site_id, name=_text(name, "site name", 200), cell=_cell(cell))
    session.add(site)
    _flush(session, f"site {site_id!r}")
    return site


def set_site_cell(session: Session, site_id: str, cell: str) -> Site:
    """Move a site to another cell: from the next registry refresh, that cell's alert
    services take its homes and the old cell's let them go (docs/scale.md)."""
    site = _site(session, site_id)
    cells.require_known_cell(session, _cell(cell))
    site.cell = _cell(cell)
    _flush(session, f"site {site_id!r}")
    return site


def add_home(session: Session, home_id: str, site_id: str, label: str = "") -> Home:
    _id(home_id, "home id")
    _site(session, site_id)
    if session.get(Home, home_id) is not None:
        raise AlreadyExists(f"home {home_id!r} already exists")
    home = Home(id=home_id, site_id=site_id,
                label=_text(label, "home label", 64, required=False))
    session.add(home)
    _flush(session, f"home {home_id!r}")
    return home


def add_resident(session: Session, home_id: str, name: str, *, phone: str | None = None,
                 address: str | None = None, birth_year: int | None = None,
                 wandering: bool = False) -> Resident:
    _home(session, home_id)
    if birth_year is not None and not BIRTH_YEAR_MIN <= birth_year <= utcnow().year:
        raise InvalidInput(f"birth year must be between {BIRTH_YEAR_MIN} and {utcnow().year}")
    resident = Resident(
        home_id=home_id,
        name=_text(name, "resident name", 200),
        phone=_text(phone, "phone", 32) if phone is not None else None,
        address=_text(address, "address", 1000) if address is not None else None,
        birth_year=birth_year,
        wandering=wandering,
        notes="",
    )
    session.add(resident)
    session.flush()  # assigns the id
    return resident


def _check_mqtt_name_free(session: Session, name: str) -> None:
    """Devices and service accounts share the broker's user namespace."""
    if session.get(Device, name) is not None:
        raise AlreadyExists(f"MQTT user {name!r} is already a device")
    if session.get(ServiceAccount, name) is not None:
        raise AlreadyExists(f"MQTT user {name!r} is already a service account")


def add_device(session: Session, device_id: str, site_id: str, home_id: str | None, kind: str,
               *, power: str = "mains", hb_s: int = 60) -> tuple[Device, str]:
    """Provision a device; returns it and its new MQTT password (shown once, stored hashed).

    The device's MQTT user name is its id. A revoked id stays taken: a new
    installation gets a new id, so history never mixes two devices.
    """
    _id(device_id, "device id")
    _site(session, site_id)
    if home_id is not None and (home := _home(session, home_id)).site_id != site_id:
        raise InvalidInput(f"home {home_id!r} is in site {home.site_id!r}, not {site_id!r}")
    if kind not in DEVICE_KINDS:
        raise InvalidInput(f"device kind {kind!r} is not one of {', '.join(sorted(DEVICE_KINDS))}")
    try:
        pw_kind = Power(power)
    except ValueError:
        raise InvalidInput(f"power {power!r} is not 'mains' or 'battery'") from None
    if not HB_MIN_S <= hb_s <= HB_MAX_S:
        raise InvalidInput(f"heartbeat interval must be {HB_MIN_S}-{HB_MAX_S} s, not {hb_s}")
    existing = session.get(Device, device_id)
    if existing is not None and existing.revoked_at is not None:
        raise AlreadyExists(f"device {device_id!r} was revoked; provision it under a new id")
    _check_mqtt_name_free(session, device_id)
    password = secrets.token_urlsafe(24)
    device = Device(id=device_id, site_id=site_id, home_id=home_id, kind=kind, power=pw_kind,
                    hb_s=hb_s, mqtt_hash=mosquitto_hash(password), created_at=utcnow())
    session.add(device)
    _flush(session, f"device {device_id!r}")
    return device, password


def revoke_device(session: Session, device_id: str) -> Device:
    """Mark a device revoked (idempotent). Call ``broker.sync_broker`` to lock it out."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"device {device_id!r} does not exist")
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        session.flush()
    return device


def ensure_service_account(session: Session, name: str, role: str,
                           password: str) -> ServiceAccount:
    """Create a service account, or update its role and password hash."""
    _id(name, "service account name")
    try:
        svc_role = ServiceRole(role)
    except ValueError:
        raise InvalidInput(
            f"service role {role!r} is not one of {', '.join(r.value for r in ServiceRole)}"
        ) from None
    if not password:
        raise InvalidInput(f"service account {name!r} needs a non-empty password")
    account = session.get(ServiceAccount, name)
    if account is None:
        if session.get(Device, name) is not None:
            raise AlreadyExists(f"MQTT user {name!r} is already a device")
        account = ServiceAccount(name=name, role=svc_role, mqtt_hash=mosquitto_hash(password))
        session.add(account)
    else:
        account.role = svc_role
        account.mqtt_hash = mosquitto_hash(password)
    _flush(session, f"service account {name!r}")
    return account


def list_devices(session: Session, *, include_revoked: bool = False) -> list[Device]:
    stmt = select(Device).order_by(Device.site_id, Device.id)
    if not include_revoked:
        stmt = stmt.where(Device.revoked_at.is_(None))
    return list(session.scalars(stmt))


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What ingest needs to tag a device's data (DESIGN.md §4): opaque ids only."""

    site: str
    home: str | None
    kind: str


def device_index(session: Session) -> dict[str, DeviceRef]:
    """Every active (non-revoked) device, in one query."""
    rows = session.execute(
        select(Device.id, Device.site_id, Device.home_id, Device.kind)
        .where(Device.revoked_at.is_(None))
    )
    return {dev: DeviceRef(site, home, kind) for dev, site, home, kind in rows}


def shortest_heartbeat_s(session: Session) -> int | None:
    """The shortest heartbeat interval an active device promised (None: no device)."""
    return session.scalar(select(func.min(Device.hb_s)).where(Device.revoked_at.is_(None)))


def device_index_version(session: Session, cell: str | None = None) -> tuple[Any, ...]:
    """Changes whenever ``device_index`` would: a device added or revoked (of the
    sites in ``cell``; None: every device).

    One aggregate row instead of the whole index: ingest asks every minute and
    re-reads a national fleet's index only when this moved.
    """
    stmt = select(func.count(), func.count(Device.revoked_at), func.max(Device.created_at),
                  func.max(Device.revoked_at), func.max(Device.id))
    if cell is not None:
        stmt = stmt.where(Device.site_id.in_(site_ids_in_cell(cell)))
    return tuple(session.execute(stmt).one())


def update_device_seen(
    session: Session,
    rows: Iterable[tuple[str, datetime, str | None, int | None, str | None]],
) -> None:
    """Record (device, last_seen_at, state, boot, fw) in bulk; None leaves a field as it is.

    Several rows for one device collapse to the newest time and the newest
    non-None value of each field. A row older than what is stored is ignored,
    so a late batch (or a restarted ingest replaying) never moves time back.
    Strings are clipped to their columns: device input must not fail the batch.
    """
    latest: dict[str, dict[str, object]] = {}
    for dev, seen, state, boot, fw in sorted(rows, key=lambda r: r[1]):
        cur = latest.setdefault(dev, {"b_id": dev, "b_state": None, "b_boot": None, "b_fw": None})
        cur["b_seen"] = seen
        if state is not None:
            cur["b_state"] = _clip(state, 16)
        if boot is not None:
            cur["b_boot"] = boot
        if fw is not None:
            cur["b_fw"] = _clip(fw, 32)
    if not latest:
        return
    t = cast(Table, Device.__table__)
    c = t.c
    stmt = (
        update(t)
        .where(c.id == bindparam("b_id"),
               or_(c.last_seen_at.is_(None), c.last_seen_at <= bindparam("b_seen")))
        .values(
            last_seen_at=bindparam("b_seen"),
            # COALESCE(new, old): a heartbeat without a status keeps the last state.
            last_state=func.coalesce(bindparam("b_state", type_=c.last_state.type), c.last_state),
            last_boot=func.coalesce(bindparam("b_boot", type_=c.last_boot.type), c.last_boot),
            fw=func.coalesce(bindparam("b_fw", type_=c.fw.type), c.fw),
        )
    )
    # A Core statement on the Table: one executemany, no ORM bulk-update semantics.
    session.execute(stmt, list(latest.values()))


SeenRow = tuple[str, int, str | None, int | None, str | None]  # (device, ms, state, boot, fw)

# Plain DB-API statements for ``record_devices_seen``: no SQLAlchemy statement, bind
# processing or datetime per row. Same meaning as ``update_device_seen``'s. SQLite:
# an executemany in-process; PostgreSQL: one statement over arrays (one round trip).
_SEEN_SQLITE = (
    "UPDATE devices SET last_seen_at = ?, last_state = COALESCE(?, last_state),"
    " last_boot = COALESCE(?, last_boot), fw = COALESCE(?, fw)"
    " WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at <= ?)")
_SEEN_POSTGRES = (
    "UPDATE devices AS d SET last_seen_at = v.t, last_state = COALESCE(v.state, d.last_state),"
    " last_boot = COALESCE(v.boot, d.last_boot), fw = COALESCE(v.fw, d.fw)"
    " FROM (SELECT id, to_timestamp(ms::float8 / 1000) AS t, state, boot, fw"
    " FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::bigint[], %s::text[])"
    " AS u(id, ms, state, boot, fw)) AS v"
    " WHERE d.id = v.id AND (d.last_seen_at IS NULL OR d.last_seen_at <= v.t)")


def record_devices_seen(session: Session, rows: Iterable[SeenRow]) -> None:
    """``update_device_seen`` for ingest's hot path: times in ms since the epoch (UTC),
    at most one row per device, written with plain values through the DB-API.

    A row older than what is stored is ignored (time never moves back); None leaves a
    field as it is; strings are clipped to their columns.
    """
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):  # another database: the portable statement
        update_device_seen(session, [(d, datetime.fromtimestamp(ms / 1000, UTC), st, b, fw)
                                     for d, ms, st, b, fw in rows])
        return
    rows = list(rows)
    if not rows:
        return
    cur = conn.connection.cursor()
    try:
        if dialect == "sqlite":
            stamp = _sqlite_stamps()
            cur.executemany(_SEEN_SQLITE, [
                (t := stamp(ms), None if st is None else _clip(st, 16), b,
                 None if fw is None else _clip(fw, 32), d, t)
                for d, ms, st, b, fw in rows])
        else:
            ids, times, states, boots, fws = (list(c) for c in zip(*rows, strict=True))
            cur.execute(_SEEN_POSTGRES, (
                ids, times, [None if st is None else _clip(st, 16) for st in states], boots,
                [None if fw is None else _clip(fw, 32) for fw in fws]))
    finally:
        cur.close()


def _sqlite_stamps() -> Callable[[int], str]:
    """ms since the epoch → the text ``UtcDateTime`` stores on SQLite (naive UTC,
    ``YYYY-MM-DD HH:MM:SS.ffffff``, which compares chronologically); the date and time
    part formatted once per second."""
    seconds: dict[int, str] = {}

    def stamp(ms: int) -> str:
        s, frac = divmod(ms, 1000)
        head = seconds.get(s)
        if head is None:
            head = seconds[s] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s))
        return f"{head}.{frac:03d}000"

    return stamp


@dataclass(frozen=True, slots=True)
class DeadLetterIn:
    """A rejected message as ingest saw it; the payload is truncated when stored."""

    received_at: datetime
    topic: str
    device: str | None
    reason: str
    detail: str
    payload: bytes


def _clip(text: str, n: int) -> str:
    # PostgreSQL text cannot hold NUL, which a hostile payload can smuggle into a detail.
    return text[:n].replace("\x00", "\ufffd")


def add_dead_letters(session: Session, rows: Iterable[DeadLetterIn]) -> None:
    """Insert rejected messages in bulk.

    Everything is clipped to the column sizes: this is bad input by definition
    and must never make the insert (and so ingest's loop) fail.
    """
    values = [
        {
            "received_at": r.received_at,
            "topic": _clip(r.topic, DEAD_LETTER_TOPIC_MAX),
            "device": _clip(r.device, ID_LEN) if r.device is not None else None,
            "reason": _clip(r.reason, 32),
            "detail": _clip(r.detail, DEAD_LETTER_DETAIL_MAX),
            "payload": bytes(r.payload[:DEAD_LETTER_PAYLOAD_MAX]),
        }
        for r in rows
    ]
    if values:
        session.execute(insert(DeadLetter), values)


def list_dead_letters(session: Session, *, limit: int = 50,
                      reason: str | None = None) -> list[DeadLetter]:
    """The newest dead letters first, optionally of one reason."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    stmt = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if reason is not None:
        stmt = stmt.where(DeadLetter.reason == reason)
    return list(session.scalars(stmt))


# -- people, contacts, assignments, home modes --------------------------------------

CHANNELS = frozenset({"webhook", "ntfy", "email", "apprise"})


def add_user(session: Session, username: str, role: str, *, display_name: str | None = None,
             site_id: str | None = None, locale: str = "ko") -> User:
    """A person who uses Dolbom (DESIGN.md §6). Login passwords come with the console."""
    username = _text(username, "username", 64)
    try:
        user_role = UserRole(role)
    except ValueError:
        raise InvalidInput(
            f"role {role!r} is not one of {', '.join(r.value for r in UserRole)}") from None
    if user_role is UserRole.SUPERVISOR and site_id is None:
        raise InvalidInput("a supervisor needs --site")
    if site_id is not None:
        _site(session, site_id)
    try:
        loc = Locale(locale)
    except ValueError:
        raise InvalidInput(f"locale {locale!r} is not one of ko, en") from None
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AlreadyExists(f"user {username!r} already exists")
    user = User(username=username, display_name=_text(display_name or username, "name", 200),
                role=user_role, site_id=site_id, active=True, locale=loc)
    session.add(user)
    _flush(session, f"user {username!r}")
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user


def add_contact(session: Session, username: str, channel: str, address: str, *,
                position: int | None = None) -> Contact:
    """How to reach a person; lower positions first, the next one is the fallback."""
    user = get_user(session, username)
    if channel not in CHANNELS:
        raise InvalidInput(f"channel {channel!r} is not one of {', '.join(sorted(CHANNELS))}")
    address = _text(address, "address", 500)
    if channel == "webhook" and not address.startswith(("http://", "https://")):
        raise InvalidInput("a webhook address is an http(s) URL")
    if position is None:
        last = session.scalar(select(func.max(Contact.position))
                              .where(Contact.user_id == user.id))
        position = 0 if last is None else last + 1
    contact = Contact(user_id=user.id, channel=channel, address=address, position=position,
                      active=True)
    session.add(contact)
    session.flush()
    return contact


def assign(session: Session, username: str, resident_id: int) -> Assignment:
    """Make a care worker responsible for a resident (idempotent)."""
    user = get_user(session, username)
    if user.role is not UserRole.CARE_WORKER:
        raise InvalidInput(f"user {username!r} is a {user.role.value}, not a care_worker")
    if session.get(Resident, resident_id) is None:
        raise NotFound(f"resident {resident_id} does not exist")
    existing = session.get(Assignment, (user.id, resident_id))
    if existing is not None:
        return existing
    a = Assignment(user_id=user.id, resident_id=resident_id)
    session.add(a)
    session.flush()
    return a


def unassign(session: Session, username: str, resident_id: int) -> None:
    user = get_user(session, username)
    a = session.get(Assignment, (user.id, resident_id))
    if a is not None:
        session.delete(a)
        session.flush()


def set_home_mode(session: Session, home_id: str, mode: str, reason: str = "") -> Home:
    """Away / hospital suppress the welfare rules for the home, with the reason recorded."""
    home = _home(session, home_id)
    try:
        new = HomeMode(mode)
    except ValueError:
        raise InvalidInput(
            f"mode {mode!r} is not one of {', '.join(m.value for m in HomeMode)}") from None
    if new is not HomeMode.NORMAL and not reason.strip():
        raise InvalidInput(f"say why the home is in {new.value} mode (--reason)")
    home.mode = new
    home.mode_reason = _text(reason, "reason", 200) if reason.strip() else None
    home.mode_since = utcnow()
    session.flush()
    return home


def set_resident_setting(session: Session, resident_id: int, key: str, value: object) -> None:
    """A per-resident rule threshold (e.g. ``inactivity_caution_h``)."""
    if session.get(Resident, resident_id) is None:
        raise NotFound(f"resident {resident_id} does not exist")
    key = _text(key, "setting", 64)
    existing = session.get(ResidentSetting, (resident_id, key))
    if existing is None:
        session.add(ResidentSetting(resident_id=resident_id, key=key, value=value))
    else:
        existing.value = value
    session.flush()
