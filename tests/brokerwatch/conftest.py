"""Fixtures of the broker watchers' tests: a migrated registry and alert store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dolbom.registry.db import make_engine, migrate


@pytest.fixture()
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated SQLite or PostgreSQL database."""
    migrate(db_url)
    engine = make_engine(db_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture()
def sqlite_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite database."""
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()
