"""Fixtures of the registry tests: a migrated database, a real broker wired to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dolbom.registry.db import make_engine, migrate
from dolbom.stack.mosquitto import Mosquitto


@pytest.fixture()
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated SQLite or PostgreSQL database."""
    migrate(db_url)
    engine = make_engine(db_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture()
def sqlite_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite database (for tests about the broker, not the store)."""
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture()
def broker(make_mosquitto: Callable[[], Mosquitto]) -> Mosquitto:
    """A new real Mosquitto with empty passwd/ACL: each test changes its users and rights."""
    return make_mosquitto()
