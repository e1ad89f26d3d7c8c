"""Shared fixtures: real Mosquitto, InfluxDB and PostgreSQL on free loopback ports.

Servers are started once per test session by ``dolbom.stack`` (the same code
the quick start uses), each with its own config and data directory, and
stopped by the PID we started. Tests that need a server in a special state
(killed, restarted) start their own with the ``fresh_*`` factories.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.registry.db import make_engine, migrate
from dolbom.stack.influx import InfluxDB
from dolbom.stack.mosquitto import Mosquitto
from dolbom.stack.postgres import Postgres
from dolbom.stack.proc import runtime_root


@pytest.fixture(scope="session")
def runtime_dir() -> Iterator[Path]:
    """A directory the service users can reach (not the 0700 pytest tmp)."""
    d = Path(tempfile.mkdtemp(prefix="test-", dir=runtime_root()))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _pw() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def influx_users() -> InfluxUsers:
    return InfluxUsers(admin=("admin", _pw()), ingest=("ingest", _pw()),
                       dashboard=("dashboard", _pw()))


@pytest.fixture(scope="session")
def make_influx(runtime_dir: Path, influx_users: InfluxUsers) -> Iterator[Callable[[], InfluxDB]]:
    """Factory: a new, bootstrapped InfluxDB; each is stopped at the end of the session."""
    started: list[InfluxDB] = []

    def make() -> InfluxDB:
        srv = InfluxDB(Path(tempfile.mkdtemp(prefix="influx-", dir=runtime_dir)))
        srv.start()
        started.append(srv)
        srv.bootstrap(influx_users, "care")
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def influx(make_influx: Callable[[], InfluxDB]) -> InfluxDB:
    return make_influx()


@pytest.fixture()
def influx_admin(influx: InfluxDB, influx_users: InfluxUsers) -> InfluxHTTP:
    return InfluxHTTP(influx.url, *influx_users.admin)


@pytest.fixture(scope="session")
def make_mosquitto(runtime_dir: Path) -> Iterator[Callable[[], Mosquitto]]:
    """Factory: a new Mosquitto with its own empty passwd/ACL; stopped at session end."""
    started: list[Mosquitto] = []

    def make() -> Mosquitto:
        srv = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-", dir=runtime_dir)))
        srv.prepare()
        srv.start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def postgres(runtime_dir: Path) -> Iterator[tuple[Postgres, str]]:
    """A real PostgreSQL; yields (server, superuser password)."""
    pw = _pw()
    srv = Postgres(Path(tempfile.mkdtemp(prefix="pg-", dir=runtime_dir)))
    srv.prepare(pw)
    srv.start()
    yield srv, pw
    srv.stop()


@pytest.fixture()
def pg_url(postgres: tuple[Postgres, str]) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    import psycopg

    srv, pw = postgres
    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(host="127.0.0.1", port=srv.port, user="dolbom_admin", password=pw,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return srv.url("dolbom_admin", pw, name)


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dolbom.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run a store test on both SQLite and PostgreSQL (DESIGN.md §4)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture()
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated SQLite or PostgreSQL database."""
    migrate(db_url)
    engine = make_engine(db_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture()
def sqlite_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite database (for tests about something else than the
    store: the broker, the watchers)."""
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()
