"""Engines, sessions and schema migrations for the registry (SQLite or PostgreSQL).

Service functions (``service``) never commit: the caller owns the transaction,
typically ``with factory.begin() as session: ...``.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 5000
MIGRATE_LOCK = 0x646F6C626F6D  # "dolbom": the PostgreSQL advisory lock key of migrate()
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


class UnsafeFileMode(RuntimeError):
    """A data file others may read that this process cannot make private."""


def private_sqlite_file(database: str) -> Path | None:
    """Make the SQLite registry private whatever the umask: its directory 0700 when we
    create it, the file (and its WAL/SHM/journal, which SQLite creates with the file's
    mode) 0600. An existing file others may read is tightened, with a warning; one we
    cannot tighten stops start-up (``UnsafeFileMode``). It holds names, phone numbers,
    addresses and password hashes."""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
        path.parent.chmod(0o700)  # mkdir's mode is filtered by the umask
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in SQLITE_COMPANIONS:
        f = path.with_name(path.name + suffix)
        try:
            mode = stat.S_IMODE(f.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                f.chmod(mode & 0o700 or 0o600)
            except OSError as e:
                raise UnsafeFileMode(f"{f} is readable by others (mode {mode:o}) and cannot be "
                                     f"made private ({e.strerror}): chmod 600 it") from None
            log.warning("%s was mode %o (others could read it); now %o", f, mode,
                        mode & 0o700 or 0o600)
    return path


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; on SQLite with WAL, foreign keys on and a busy timeout.

    WAL lets ingest write device status while the CLI or the API read; SQLite
    ignores foreign keys unless asked per connection; the busy timeout makes a
    writer wait for another process's transaction instead of failing at once.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(u, pool_pre_ping=True, **kwargs)
    private_sqlite_file(u.database or "")
    engine = create_engine(u, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if u.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    return engine


def session_factory(url: str) -> sessionmaker[Session]:
    # expire_on_commit=False: objects stay readable after the transaction (CLI output).
    return sessionmaker(bind=make_engine(url), expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic configuration from the package itself: no alembic.ini needed at runtime.
    (Alembic is imported here, not with the module: the services that only read the
    registry start faster without it.)"""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema; a no-op when it is current."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            # The connection, not the URL, goes to env.py: a password may contain
            # '%', which Alembic's ini-style options would try to interpolate.
            cfg.attributes["connection"] = conn
            if conn.dialect.name == "postgresql":
                # Services started together may all migrate: one does, the others
                # wait here (the lock ends with the transaction) and find it current.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
            from alembic import command

            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def error_line(e: SQLAlchemyError) -> str:
    """A database failure as one line for an operator (the commands print it and exit 1)."""
    # Only the first line: PostgreSQL's DETAIL lines can quote a row, and a row
    # of ``residents`` is personal data.
    orig = getattr(e, "orig", None)
    first = (str(orig) if orig is not None else str(e)).strip().splitlines()[:1]
    msg = f"database error: {first[0] if first else type(e).__name__}"
    if isinstance(e, OperationalError | ProgrammingError) and (
        "no such table" in msg or "does not exist" in msg
    ):
        msg += " (run `dolbom registry migrate` first)"
    return msg
