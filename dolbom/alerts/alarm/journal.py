"""An alarm made durable: its alert, journal row and outbox rows in one transaction, and
on SQLite a journal that takes the write lock itself and tries again every millisecond."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import URL, event, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.alarm.decode import Alarm
from dolbom.alerts.model import EscalationTable, Priority
from dolbom.registry.db import SQLITE_BUSY_TIMEOUT_MS, make_engine
from dolbom.registry.models import Device, Site

Route = tuple[str, str]  # (site, home) of a device


def journal_alarm(sessions: sessionmaker[Session], alarm: Alarm, route: Route | None,
                  table: EscalationTable) -> lc.RaiseResult | None:
    """Alert, journal row and outbox rows of one alarm, in one transaction.

    ``route`` None: the device has no home (a corridor detector, a device installed
    before its home is set up). The alarm is raised for the device's site in the
    registry, or the topic's site when the registry does not know the device, with no
    home, one open alert per device (``subject``), told to the site's supervisors,
    responders and operators (``recipients.recipients``). None when neither the device
    nor the topic's site is in the registry: there is nobody to tell.
    """
    with sessions.begin() as s:
        detail = dict(alarm.detail)
        home: str | None
        if route is not None:
            site, home = route
        else:
            registered = s.scalar(select(Device.site_id).where(Device.id == alarm.device))
            site_known = registered or s.scalar(select(Site.id).where(Site.id == alarm.site))
            if site_known is None:
                return None
            site, home = site_known, None
            detail["no_home"] = True
        return lc.raise_alert(
            s, site=site, home=home, rule=alarm.rule, priority=Priority.HIGH,
            at=datetime.fromtimestamp(alarm.at_ms / 1000, UTC), table=table,
            device=alarm.device, detail=detail, event_key=alarm.event_key,
            event_ts=(None if alarm.event_ts_ms is None
                      else datetime.fromtimestamp(alarm.event_ts_ms / 1000, UTC)),
            hist=alarm.hist, subject=alarm.device if home is None else None)


# SQLite has one writer at a time, and the busy handler with which a writer waits for
# another process's transaction sleeps 1, 2, 5, ... then 25 to 100 ms between tries.
# Ingest (last-seen times) and the rules process (rule state) write in many short
# transactions back to back; a journal write trying every 25-100 ms kept missing the
# gaps between them: 142 ms p99 from a press to the webhook at 10,000 msg/s, nearly all
# of it waiting here (docs/benchmarks.md). So the journal takes the write lock itself
# (BEGIN IMMEDIATE, no busy handler) and tries again every millisecond.
JOURNAL_RETRY_S = 0.001
JOURNAL_BUSY_S = SQLITE_BUSY_TIMEOUT_MS / 1000  # then it is an error (the worker retries)
SQLITE_BUSY, SQLITE_LOCKED = 5, 6


def journal_sessions(url: str | URL) -> sessionmaker[Session] | None:
    """On SQLite, sessions whose transactions take the write lock at BEGIN and fail at
    once while another holds it (``journal_alarm_promptly`` tries again); None for a
    server database, whose writers queue for row locks on the server (and for an
    in-memory SQLite, which another engine would not share)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    engine = make_engine(u.render_as_string(hide_password=False))

    @event.listens_for(engine, "connect")
    def _own_begin(dbapi_conn: Any, _record: Any) -> None:
        # after make_engine's pragmas (listeners run in order): no busy handler, and
        # no implicit BEGIN from the driver: the "begin" listener below emits it. No
        # automatic checkpoint on this connection either: the commit that crosses the
        # WAL's 1,000 pages copies the whole WAL into the database (and fsyncs it) before
        # it returns, and an alarm's commit must not be the one that pays for it; the
        # busier writers (ingest, the rules) checkpoint as the WAL grows.
        dbapi_conn.execute("PRAGMA busy_timeout=0")
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return sessionmaker(bind=engine, expire_on_commit=False)


def _busy(e: OperationalError) -> bool:
    code = getattr(e.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    return "database is locked" in str(e.orig)


def journal_alarm_promptly(sessions: sessionmaker[Session], alarm: Alarm,
                           route: Route | None, table: EscalationTable, *,
                           busy_s: float = JOURNAL_BUSY_S) -> lc.RaiseResult | None:
    """``journal_alarm`` with sessions of ``journal_sessions``: while another process holds
    SQLite's write lock, the whole transaction is tried again every millisecond (nothing
    of it was written), for at most ``busy_s``."""
    deadline = time.monotonic() + busy_s
    while True:
        try:
            return journal_alarm(sessions, alarm, route, table)
        except OperationalError as e:
            if not _busy(e) or time.monotonic() >= deadline:
                raise
        time.sleep(JOURNAL_RETRY_S)
