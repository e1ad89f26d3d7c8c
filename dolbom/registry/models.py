"""The relational registry (DESIGN.md §4): who and what is where.

Sites contain homes; a home has residents and devices. Topics, InfluxDB tags and
logs carry only the opaque ids of sites, homes and devices; personal data
(names, phone numbers, addresses, notes) lives only in ``residents``
(DESIGN.md §3, §6).

The same models run on SQLite and PostgreSQL. Every timestamp is an aware UTC
``datetime`` (``UtcDateTime``), also on SQLite, which has no time zones.
Closed sets (modes, roles, power) are VARCHAR + CHECK rather than native enums,
so adding a value is a one-line migration on both databases. Device ``kind`` is
open (validated by ``service`` against ``DEVICE_KINDS``): a new sensor type
needs no migration.

The schema is created by the Alembic migrations in ``migrations/``; a test
checks that they and these models agree.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Text,
    TypeDecorator,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LEN = 48  # protocol.topics.ID_PATTERN: 1-48 characters
DEAD_LETTER_PAYLOAD_MAX = 4096  # bytes kept of a rejected payload (enough to debug a firmware)

# Constraint names must be stable across databases for migrations to address them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database; naive datetimes are refused.

    PostgreSQL stores ``timestamptz``. SQLite stores naive UTC text, which sorts
    (and compares in SQL) chronologically because every value is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the registry stores aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class HomeMode(enum.StrEnum):
    """Away and hospital suppress the welfare rules for the home (DESIGN.md §5)."""

    NORMAL = "normal"
    AWAY = "away"
    HOSPITAL = "hospital"


class Power(enum.StrEnum):
    MAINS = "mains"
    BATTERY = "battery"


class ServiceRole(enum.StrEnum):
    """What a service account may do on the broker (``broker.render_acl``)."""

    INGEST = "ingest"
    ALERTS = "alerts"
    LOADGEN = "loadgen"  # benchmark only: may publish as any device
    OPERATOR = "operator"


class UserRole(enum.StrEnum):
    """People's roles (DESIGN.md §6)."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    CARE_WORKER = "care_worker"
    RESPONDER = "responder"


class Locale(enum.StrEnum):
    KO = "ko"
    EN = "en"


DEVICE_KINDS = frozenset({"multisensor", "door", "button", "smoke", "bed", "plug", "gateway"})


def _closed_set(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


DEFAULT_CELL = "default"
CELL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime()}  # noqa: RUF012 - SQLAlchemy's API


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The cell (broker, InfluxDB, alert services) that serves the site (docs/scale.md).
    cell: Mapped[str] = mapped_column(String(32), default=DEFAULT_CELL,
                                      server_default=DEFAULT_CELL, index=True)


def site_ids_in_cell(cell: str) -> Select[str]:
    """The ids of the sites a cell serves, as a subquery for ``in_``."""
    return select(Site.id).where(Site.cell == cell)


class Cell(Base):
    """A cell's endpoints (docs/scale.md): its broker as devices and gateways reach it
    (always the TLS listener) and its InfluxDB for readers. The key is the name
    ``sites.cell`` holds; a site whose cell has no row is served by the endpoints the
    command or service is configured with. No InfluxDB credentials here: readers take
    theirs from their own settings."""

    __tablename__ = "cells"
    __table_args__ = (CheckConstraint("broker_port BETWEEN 1 AND 65535", name="broker_port"),)

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    broker_host: Mapped[str] = mapped_column(String(253))
    broker_port: Mapped[int] = mapped_column(Integer)  # the broker's TLS listener
    influx_url: Mapped[str] = mapped_column(String(500))
    influx_db: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Home(Base):
    __tablename__ = "homes"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    # An opaque code the care centre uses (e.g. a case number), never an address.
    label: Mapped[str] = mapped_column(String(64), default="")
    mode: Mapped[HomeMode] = mapped_column(_closed_set(HomeMode, "home_mode"),
                                           default=HomeMode.NORMAL)
    mode_reason: Mapped[str | None] = mapped_column(String(200))
    mode_since: Mapped[datetime | None]


class Resident(Base):
    """The only table with personal data (DESIGN.md §6)."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(Text)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    # Night exits raise a welfare alert for residents flagged here (DESIGN.md §5).
    wandering: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str] = mapped_column(Text, default="")


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    home_id: Mapped[str | None] = mapped_column(ForeignKey("homes.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    power: Mapped[Power] = mapped_column(_closed_set(Power, "device_power"), default=Power.MAINS)
    hb_s: Mapped[int] = mapped_column(Integer, default=60)  # promised heartbeat interval
    mqtt_hash: Mapped[str] = mapped_column(String(200))  # mosquitto $7$ hash, never the password
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    # Written by ingest (service.update_device_seen), in bulk.
    last_seen_at: Mapped[datetime | None]
    last_state: Mapped[str | None] = mapped_column(String(16))
    last_boot: Mapped[int | None] = mapped_column(BigInteger)
    fw: Mapped[str | None] = mapped_column(String(32))


class ServiceAccount(Base):
    """An MQTT user for a service (ingest, alerts, load generator, operator)."""

    __tablename__ = "service_accounts"

    name: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    role: Mapped[ServiceRole] = mapped_column(_closed_set(ServiceRole, "service_role"))
    mqtt_hash: Mapped[str] = mapped_column(String(200))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[UserRole] = mapped_column(_closed_set(UserRole, "user_role"))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"))  # supervisors' site
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2: a later phase
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[Locale] = mapped_column(_closed_set(Locale, "user_locale"), default=Locale.KO)


class Assignment(Base):
    """A care worker sees only the residents assigned to them (DESIGN.md §6)."""

    __tablename__ = "assignments"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"),
                                             primary_key=True, index=True)


class ResidentSetting(Base):
    """A per-resident override of a rule threshold (DESIGN.md §5), e.g. ``inactivity_h``."""

    __tablename__ = "resident_settings"

    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"),
                                             primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class DeadLetter(Base):
    """A message that failed validation (DESIGN.md §3): kept to debug firmware, never replayed.

    ``device`` is not a foreign key: unknown devices are one of the reasons.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (Index(None, "reason", "id"),)

    # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY autoincrements.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    topic: Mapped[str] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(String(ID_LEN))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


# ---------------------------------------------------------------------------
# Care alerts (DESIGN.md §5): the journal of every alert and its every state
# change, the journal of life-safety events (dedup by (dev, boot, seq)), the
# notification outbox, people's contact channels, and the rule state per home
# that lets timers survive a restart. All in the one relational store (§4).


class Alert(Base):
    """One alert. ``open_key`` is set while it is not resolved: at most one open
    alert per (site, home, rule), enforced by the database (NULLs are distinct)."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "status", "priority"), Index(None, "home_id", "raised_at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    home_id: Mapped[str | None] = mapped_column(ForeignKey("homes.id"))
    device_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    rule: Mapped[str] = mapped_column(String(32))
    klass: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    open_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    tier: Mapped[int] = mapped_column(Integer, default=1)  # escalation tier of people told
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    detail: Mapped[Any] = mapped_column(JSON, default=dict)
    raised_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    event_ts: Mapped[datetime | None] = mapped_column()
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str | None] = mapped_column(String(32))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class AlertEvent(Base):
    """Every transition of an alert, with its time and who did it: the timeline."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    at: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "system"
    detail: Mapped[Any] = mapped_column(JSON, default=dict)


class AlarmJournal(Base):
    """A life-safety event, durably journalled before the device gets its ``ack``."""

    __tablename__ = "alarm_journal"

    device_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    boot: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    event_type: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column()
    hist: Mapped[bool] = mapped_column(Boolean, default=False)


class Contact(Base):
    """How to reach a person, in order of preference (the next is the fallback)."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Outbox(Base):
    """A notification to deliver at least once; ``dedup_key`` makes it at most one row
    per (alert, notice, recipient, channel), so nobody is told twice the same thing."""

    __tablename__ = "outbox"
    __table_args__ = (Index(None, "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id",
                                                              ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500))
    notice: Mapped[str] = mapped_column(String(16))  # raised | renotify | escalated | repeat
    step: Mapped[int] = mapped_column(Integer, default=0)  # which renotify / repeat
    tier: Mapped[int] = mapped_column(Integer, default=1)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(12))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()


class HomeRuleState(Base):
    """The alert engine's state of one home, so timers survive a restart: ``packed``
    (``engine.state_to_bytes``), or ``state``, the JSON form saved before (read still)."""

    __tablename__ = "home_rule_state"

    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"),
                                         primary_key=True)
    state: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    packed: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column()


class RegistryVersion(Base):
    """One row: a number raised by every registry change the rules read (database
    triggers, migration 0007); the rules process compares it with its last look."""

    __tablename__ = "registry_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)


class RegistryChange(Base):
    """Per home, the ``registry_version`` number of its latest change (triggers)."""

    __tablename__ = "registry_changes"

    home_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, index=True)


class Suppression(Base):
    """A welfare rule that would have fired, and why it did not (away/hospital mode)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"),
                                         index=True)
    rule: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column()
    reason: Mapped[str] = mapped_column(String(200))


class WatchItem(Base):
    """A weak welfare signal for the care worker's daily watch list: seen in the console,
    never pushed (DESIGN.md §5). Opaque ids and plain-word reasons only."""

    __tablename__ = "watch_items"
    __table_args__ = (Index("ix_watch_items_site_id_at", "site_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    site_id: Mapped[str] = mapped_column(String(48))
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"),
                                         index=True)
    rule: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column()
    reasons: Mapped[Any] = mapped_column(JSON)
    device_id: Mapped[str | None] = mapped_column(String(48))


# ---------------------------------------------------------------------------
# HTTP API (DESIGN.md §6): sign-in state of people and the audit log.


class UserToken(Base):
    """Per-person token version: bumped by a password change or deactivation, so every
    token issued before stops working at the next request (``dolbom.api.auth``).

    A table of its own (one row per person who has ever signed in) rather than a column
    on ``users``: the existing models stay as they are.
    """

    __tablename__ = "user_tokens"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    password_changed_at: Mapped[datetime | None] = mapped_column()


class AuthSession(Base):
    """One sign-in and every token pair refreshed from it (a refresh-token family).

    Access and refresh tokens carry its id (``sid``). Signing out, or presenting a refresh
    token a second time (a stolen copy, OAuth 2.0 Security BCP §4.14), revokes the whole
    session: every access and refresh token of it stops working at the next request.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """A refresh token of a session, by its ``jti``: usable once (``used_at``)."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class AuditEntry(Base):
    """One read or change of resident data: who, when, from where, what, whom.

    Append-only, and a hash chain: ``hash`` = sha256(``prev_hash`` + canonical content),
    so an edited or deleted row breaks verification (``dolbom api audit-verify``).
    ``prev_hash`` is unique: two writers can never both extend the same entry (a forked
    chain is refused by the database, whatever the locking). No foreign keys: the log
    outlives the people and residents it names.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(200))
    resident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(80), unique=True)
    hash: Mapped[str] = mapped_column(String(80), unique=True)
