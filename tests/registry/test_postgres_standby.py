"""The central PostgreSQL with a streaming standby (DESIGN.md §2, docs/scale.md): what the
primary commits is on the standby, the standby refuses writes, and after the primary dies
and the standby is promoted, a service holding a failover URL writes to the new primary
without being restarted."""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from dolbom.registry import service
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import Site
from dolbom.stack.errors import StackError
from dolbom.stack.postgres import Postgres, failover_url


def _sites_on(srv: Postgres, pw: str, db: str) -> set[str]:
    with psycopg.connect(host="127.0.0.1", port=srv.port, user="dolbom_admin", password=pw,
                         dbname=db, connect_timeout=3) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM sites")}


def _until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@pytest.fixture()
def pair(runtime_dir: Path) -> Iterator[tuple[Postgres, Postgres, str]]:
    pw, rpw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    base = Path(tempfile.mkdtemp(prefix="pg-pair-", dir=runtime_dir))
    base.chmod(0o711)  # the servers run as postgres
    primary = Postgres(base / "primary")
    standby = Postgres(base / "standby")
    try:
        primary.prepare(pw)
        primary.start()
        primary.add_replicator(pw, rpw)
        standby.prepare_standby(primary, rpw)
        standby.start()
        yield primary, standby, pw
    finally:
        standby.stop()
        primary.stop()


def test_standby_follows_refuses_writes_and_takes_over_after_promotion(
        pair: tuple[Postgres, Postgres, str]) -> None:
    primary, standby, pw = pair
    assert standby.is_standby() and not primary.is_standby()
    with psycopg.connect(host="127.0.0.1", port=primary.port, user="dolbom_admin", password=pw,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute('CREATE DATABASE "registry"')
    url = failover_url([primary, standby], "dolbom_admin", pw, "registry")
    migrate(url)
    sessions = session_factory(url)  # one factory, as a running service holds it
    with sessions.begin() as s:
        service.add_site(s, "s1", "before the failover")

    _until("the standby has the primary's commit",
           lambda: "s1" in _sites_on(standby, pw, "registry"))
    with psycopg.connect(host="127.0.0.1", port=standby.port, user="dolbom_admin",
                         password=pw, dbname="registry") as conn, \
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO sites (id, name) VALUES ('x', 'x')")

    primary.kill9()
    standby.promote()
    assert not standby.is_standby()
    with sessions.begin() as s:  # the pooled connection to the dead primary is replaced
        service.add_site(s, "s2", "after the failover")
    with sessions() as s:
        assert set(s.scalars(select(Site.id))) == {"s1", "s2"}
    assert _sites_on(standby, pw, "registry") == {"s1", "s2"}


def test_a_standby_of_a_server_that_refuses_the_replicator_stops_with_one_line(
        runtime_dir: Path, postgres: tuple[Postgres, str]) -> None:
    primary, pw = postgres
    primary.add_replicator(pw, secrets.token_urlsafe(16))
    standby = Postgres(Path(tempfile.mkdtemp(prefix="pg-standby-", dir=runtime_dir)))
    with pytest.raises(StackError, match=r"pg_basebackup from port \d+ failed: .*password"):
        standby.prepare_standby(primary, "not-the-password")
    assert not (standby.data / "PG_VERSION").exists()


def test_a_commit_waits_for_the_standby_so_the_primarys_death_loses_nothing(
        pair: tuple[Postgres, Postgres, str]) -> None:
    """An alarm is acked only once journalled; journalled must mean on the standby too,
    or the primary's death loses an acked alarm. With ``require_synchronous`` a commit
    does not return while the standby's WAL receiver is stopped, returns once it runs
    again, and is on the standby after the primary is killed at once and the standby
    promoted. (Asynchronous, the commit returns at once and dies with the primary.)"""
    primary, standby, pw = pair
    primary.require_synchronous(pw, [standby])
    with psycopg.connect(host="127.0.0.1", port=primary.port, user="dolbom_admin",
                         password=pw, dbname="postgres", autocommit=True) as conn:
        _until("the standby is the primary's synchronous one", lambda: conn.execute(
            "SELECT sync_state FROM pg_stat_replication").fetchall() == [("quorum",)])
        conn.execute("CREATE TABLE journal (id int PRIMARY KEY)")
    with psycopg.connect(host="127.0.0.1", port=standby.port, user="dolbom_admin",
                         password=pw, dbname="postgres", autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_wal_receiver").fetchone()
    assert row is not None
    receiver = int(row[0])

    committed = threading.Event()

    def journal() -> None:
        with psycopg.connect(host="127.0.0.1", port=primary.port, user="dolbom_admin",
                             password=pw, dbname="postgres", autocommit=True) as c:
            c.execute("INSERT INTO journal VALUES (1)")
        committed.set()

    os.kill(receiver, signal.SIGSTOP)
    writer = threading.Thread(target=journal)
    try:
        writer.start()
        assert not committed.wait(1.5), "committed while no standby could have it"
    finally:
        os.kill(receiver, signal.SIGCONT)
    assert committed.wait(30)
    writer.join(5)
    primary.kill9()
    standby.promote()
    with psycopg.connect(host="127.0.0.1", port=standby.port, user="dolbom_admin",
                         password=pw, dbname="postgres") as conn:
        assert conn.execute("SELECT id FROM journal").fetchall() == [(1,)]
