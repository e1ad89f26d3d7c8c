"""Bulk writes (last-seen times, rule state) commit without waiting for the disk, so they
do not hold SQLite's one write lock through an fsync while an alarm waits to be
journalled; every other session keeps its commits durable (docs/benchmarks.md)."""

from __future__ import annotations

from sqlalchemy import text

from dolbom.registry.db import bulk_session_factory, migrate, session_factory

FULL, NORMAL = 2, 1  # SQLite's PRAGMA synchronous values


def _setting(url: str, bulk: bool) -> object:
    sessions = (bulk_session_factory if bulk else session_factory)(url)
    with sessions() as s:
        if s.get_bind().dialect.name == "sqlite":
            return s.execute(text("PRAGMA synchronous")).scalar()
        return s.execute(text("SHOW synchronous_commit")).scalar()


def test_bulk_commits_skip_the_sync_and_the_others_keep_it(db_url: str) -> None:
    migrate(db_url)
    durable, bulk = _setting(db_url, bulk=False), _setting(db_url, bulk=True)
    if db_url.startswith("sqlite"):
        assert (durable, bulk) == (FULL, NORMAL)
    else:
        assert (durable, bulk) == ("on", "off")


def test_a_bulk_commit_is_read_by_the_other_sessions(db_url: str) -> None:
    """Not synced is not lost: another connection reads it at once (WAL, atomic)."""
    migrate(db_url)
    with bulk_session_factory(db_url).begin() as s:
        s.execute(text("INSERT INTO sites (id, name) VALUES ('bulk1', 'n')"))
    with session_factory(db_url)() as s:
        assert s.execute(text("SELECT id FROM sites WHERE id = 'bulk1'")).scalar() == "bulk1"
