"""The Alembic migrations create the schema the models describe, on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from dolbom.registry import gateways  # noqa: F401 - its table is in Base.metadata
from dolbom.registry.db import alembic_config, make_engine, migrate
from dolbom.registry.models import Base

TABLES = {"sites", "homes", "residents", "devices", "service_accounts", "users", "assignments",
          "resident_settings", "dead_letters", "alerts", "alert_events", "alarm_journal",
          "contacts", "outbox", "home_rule_state", "suppressions", "user_tokens", "audit_log",
          "watch_items", "auth_sessions", "refresh_tokens", "gateway_children",
          "registry_version", "registry_changes", "cells"}


def _state(url: str) -> tuple[set[str], str | None]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            return tables, MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def test_migrate_creates_every_table_and_twice_is_a_no_op(db_url: str) -> None:
    """migrate() takes an empty database to head; running it again changes nothing."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert _state(db_url) == (set(), None)
    migrate(db_url)
    first = _state(db_url)
    assert first == (TABLES | {"alembic_version"}, head)
    migrate(db_url)
    assert _state(db_url) == first


def test_models_match_the_migrations(db_url: str) -> None:
    """Alembic finds no difference between the migrated schema and the ORM metadata."""
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()


def test_one_head_only() -> None:
    """The migration history is linear (two heads would make upgrade ambiguous)."""
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_concurrent_migrations_on_postgresql(pg_url: str) -> None:
    """Services migrating the same PostgreSQL at once all succeed (advisory lock)."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(migrate, [pg_url] * 4))
    assert _state(pg_url)[0] == TABLES | {"alembic_version"}
