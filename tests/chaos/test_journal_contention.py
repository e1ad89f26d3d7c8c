"""The life-safety journal on SQLite while other processes hold its one write lock
(ingest's last-seen times, the rules' state: many short transactions back to back).
A real SQLite file; the other writer is a connection of its own in another thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts.alarm.decode import Alarm, alarm_of
from dolbom.alerts.alarm.journal import journal_alarm_promptly, journal_sessions
from dolbom.alerts.settings import AlertOptions
from dolbom.protocol import Envelope, Topics, encode_event
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import AlarmJournal

pytestmark = [pytest.mark.chaos]
TOPICS = Topics()


def _one_button(tmp_path: Path, tag: str) -> tuple[Path, str, sessionmaker[Session], Alarm]:
    """A registry on a real SQLite file with one button in one home, the journal's
    sessions on it, and a press of that button."""
    db = tmp_path / "dolbom.db"
    url = f"sqlite:///{db}"
    migrate(url)
    with session_factory(url).begin() as s:
        registry.add_site(s, tag, tag)
        registry.add_home(s, f"h{tag}", tag)
        registry.add_device(s, f"btn-{tag}", tag, f"h{tag}", "button")
    sessions = journal_sessions(url)
    assert sessions is not None
    topic = TOPICS.parse(TOPICS.event(tag, f"btn-{tag}", "button"))
    assert topic is not None
    alarm = alarm_of(topic, encode_event(Envelope(1, 1, int(time.time() * 1000), 2)),
                     int(time.time() * 1000))
    return db, url, sessions, alarm


def test_journal_gets_the_write_lock_in_a_short_gap(tmp_path: Path) -> None:
    """Another connection holds the write lock 0.3 s, lets go for 20 ms, then takes it
    for 2 s. The journal write, waiting meanwhile, gets in during the 20 ms gap (it
    tries every millisecond) instead of waiting for the 2 s hold (SQLite's busy handler
    tries only every 100 ms by then); the press is journalled exactly once."""
    db, url, sessions, alarm = _one_button(tmp_path, "jc")

    holding = threading.Event()
    times: dict[str, float] = {}

    def other_writer() -> None:
        c = sqlite3.connect(db, isolation_level=None, timeout=10)
        try:
            c.execute("BEGIN IMMEDIATE")
            holding.set()
            time.sleep(0.3)
            c.execute("COMMIT")
            time.sleep(0.02)  # the gap between two of its transactions
            c.execute("BEGIN IMMEDIATE")  # waits while the journal holds the lock
            times["second_hold"] = time.monotonic()
            time.sleep(2.0)
            c.execute("COMMIT")
            times["released"] = time.monotonic()
        finally:
            c.close()

    t = threading.Thread(target=other_writer, name="other-writer")
    t.start()
    try:
        assert holding.wait(5)
        done = journal_alarm_promptly(sessions, alarm, ("jc", "hjc"),
                                      AlertOptions().escalation_table())
        times["journalled"] = time.monotonic()
    finally:
        t.join(10)
    assert done is not None and done.created
    assert times["journalled"] < times["second_hold"] < times["released"]
    with session_factory(url)() as s:
        assert s.scalar(select(func.count()).select_from(AlarmJournal)) == 1


def test_journal_gives_up_after_its_bound(tmp_path: Path) -> None:
    """A lock that is never let go: the journal write raises after its bound (the alarm
    worker then tries again, the event still unacked), it never hangs."""
    from sqlalchemy.exc import OperationalError

    db, _, sessions, alarm = _one_button(tmp_path, "jd")
    c = sqlite3.connect(db, isolation_level=None)
    try:
        c.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"):
            journal_alarm_promptly(sessions, alarm, ("jd", "hjd"),
                                   AlertOptions().escalation_table(), busy_s=0.2)
        c.execute("ROLLBACK")
    finally:
        c.close()
    done = journal_alarm_promptly(sessions, alarm, ("jd", "hjd"),
                                  AlertOptions().escalation_table())
    assert done is not None and done.created


def test_an_alarm_commit_does_not_pay_for_the_checkpoint(tmp_path: Path) -> None:
    """Other writers left 8 MB in the WAL (past SQLite's 1,000-page automatic checkpoint):
    the alarm's commit returns without copying it into the database file (a checkpoint
    is a full WAL copy and an fsync inside that commit); the busier writers do it."""
    db, url, sessions, alarm = _one_button(tmp_path, "jw")
    c = sqlite3.connect(db, isolation_level=None)
    try:
        c.execute("PRAGMA wal_autocheckpoint=0")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.execute("CREATE TABLE filler (b BLOB)")
        c.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4000,)] * 2000)
        before = db.stat().st_size
        assert (tmp_path / "dolbom.db-wal").stat().st_size > 4_000_000
        done = journal_alarm_promptly(sessions, alarm, ("jw", "hjw"),
                                      AlertOptions().escalation_table())
        assert done is not None and done.created
        assert db.stat().st_size == before  # nothing was copied into the database file
        c.execute("PRAGMA wal_autocheckpoint=1000")
        c.execute("INSERT INTO filler VALUES (x'00')")  # a busier writer's commit does it
        assert db.stat().st_size > before + 4_000_000
    finally:
        c.close()
    with session_factory(url)() as s:
        assert s.scalar(select(func.count()).select_from(AlarmJournal)) == 1


def test_server_databases_keep_their_own_locking() -> None:
    """PostgreSQL queues writers on the server: no SQLite-specific sessions for it."""
    assert journal_sessions("postgresql+psycopg://u:p@127.0.0.1:1/x") is None
