"""Active/standby across machines, elected through the central PostgreSQL.

Two machines each run ``dolbom alerts run`` (or the alarm process on its own) against one
PostgreSQL: one is active, the other waits. Each role (the rules process, the alarm
process) takes a session-level advisory lock on a connection of its own and keeps it for
its life: PostgreSQL releases it when that connection ends, so an active that dies (kill
-9, a crash, its machine gone) frees it and the standby, asking every ``check_s``, takes
over within about a second of PostgreSQL noticing. A standby does nothing that an active
does: no broker session (both would use one client id and take it over from each other),
no timers, no notices.

Fencing: the active checks its lock connection every ``check_s`` (a query bounded by
``QUERY_TIMEOUT_S``) and stops at once when it fails (``LeaseLost``), well before
PostgreSQL gives the lock to another (it notices a silent peer through TCP keepalives,
``dolbom.stack.postgres``: about 11 s); a promoted standby database holds no locks, so
both sides reconnect and the first to ask becomes active while the other, whose
connection died with the old primary, has already stopped. What an overlap could still
repeat is kept idempotent downstream: the journal's ``(device, boot, seq)`` key and
each notice's delivery id.

With SQLite (one machine by definition) there is nothing to elect: ``Lease.acquire``
returns at once and the alarm process's lock file keeps it single.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from dolbom.alerts.pause import pause
from dolbom.registry.db import make_engine

log = logging.getLogger("dolbom.alerts")
CHECK_S = 1.0  # a standby asks, and an active checks its lock, this often
QUERY_TIMEOUT_S = 3.0  # a check that does not answer within this counts as lost


class LeaseLost(RuntimeError):
    """The active's lock connection failed: another may be active now; stop."""


def lease_key(name: str) -> int:
    """The advisory lock key of a role's lease: 63 bits, so that it is one positive
    bigint and ``pg_locks`` shows it as (classid << 32) | objid."""
    digest = hashlib.sha256(f"dolbom-lease:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class Lease:
    """One role's lease (``name``: e.g. ``rules:<site group>``); see the module."""

    def __init__(self, url: str, name: str, *, check_s: float = CHECK_S,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.name, self.key, self.check_s = name, lease_key(name), check_s
        self.elected = make_url(url).get_backend_name() == "postgresql"
        self.active = not self.elected  # SQLite: nothing to elect
        self._on_change = on_change
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        if self.elected:
            self._engine = make_engine(url, poolclass=NullPool, connect_args={
                "connect_timeout": int(QUERY_TIMEOUT_S),
                "options": f"-c statement_timeout={int(QUERY_TIMEOUT_S * 1000)}",
                # a peer that vanished is noticed by this side too
                "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                "keepalives_count": 3})

    def _set(self, active: bool) -> None:
        if active != self.active:
            self.active = active
            if self._on_change is not None:
                self._on_change(active)

    def _try(self) -> bool:
        assert self._engine is not None
        if self._conn is None or self._conn.closed:
            self._conn = self._engine.connect()
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        ok = bool(got.scalar())
        self._conn.commit()  # no transaction left open (the lock is the session's)
        return ok

    def _check(self) -> None:
        assert self._conn is not None
        held = self._conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :k"),
            {"k": self.key}).scalar()
        self._conn.commit()
        if not held:
            raise LeaseLost(f"lease {self.name!r}: the lock is no longer held")

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until this process is active (True) or ``stopping`` is set (False)."""
        if not self.elected:
            return True
        said = False
        while not stopping.is_set():
            try:
                if await asyncio.to_thread(self._try):
                    log.info("lease %r: active", self.name)
                    self._set(True)
                    return True
            except SQLAlchemyError as e:
                self._drop()
                log.warning("lease %r: database unreachable (%s); asking again",
                            self.name, type(e).__name__)
            if not said:
                log.info("lease %r: another process is active; standing by", self.name)
                said = True
            await pause(stopping, self.check_s)
        return False

    async def hold(self, stopping: asyncio.Event) -> None:
        """While active: check the lock every ``check_s``; raise ``LeaseLost`` the moment
        it fails. Returns when ``stopping`` is set."""
        if not self.elected:
            await stopping.wait()
            return
        while not stopping.is_set():
            await pause(stopping, self.check_s)
            if stopping.is_set():
                break
            try:
                await asyncio.wait_for(asyncio.to_thread(self._check),
                                       QUERY_TIMEOUT_S + 1.0)
            except (SQLAlchemyError, TimeoutError, LeaseLost) as e:
                self._set(False)
                self._drop()
                raise LeaseLost(f"lease {self.name!r} lost ({type(e).__name__}): "
                                "stopping so that only one process is active") from e

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()  # do not wait on a dead connection's goodbye

    def release(self) -> None:
        """Give the lease up (closing the connection frees the lock)."""
        self._drop()
        if self._engine is not None:
            self._engine.dispose()
            self._set(False)
