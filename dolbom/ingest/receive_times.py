"""The first receive time of each message timed by our clock, kept durably (DESIGN.md §3).

A point's time must be the same on every delivery of the same message, so that a
re-send (a device outbox, a gateway queue, a broker redelivery after a restart)
overwrites its own point. When the device's time is not used (``tq < 2``, or ahead of
ours, or older than the retention), the point's time is the receive time of the
message's FIRST delivery: it is kept here under the dedup key ``(dev, boot, seq)``.

- One SQLite file in ingest's spool directory, WAL, ``synchronous=FULL``: a batch's
  times are committed (fsync'd) before its points are written, so a crash between the
  two cannot lose a time that InfluxDB already holds.
- Only messages that need it touch it, once per flush, in one transaction.
- Bounded: entries older than ``retention_ms`` (by first receive time) are pruned.

A device whose NTP clock ran ahead of ours is remembered too (``ahead``: the latest
device time stored at our time). Its re-send, once our clock has caught up, looks
plausible, yet its point is at the first receive time: a plausible message from such a
device with a time at or before that mark is looked up here before it is stored.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS first_rx (
    dev TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, rx INTEGER NOT NULL,
    PRIMARY KEY (dev, boot, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS first_rx_by_rx ON first_rx (rx);
CREATE TABLE IF NOT EXISTS clock_ahead (dev TEXT PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Lookup:
    """One message's question: its key, this delivery's receive time, and whether a first
    time is recorded if none is (``record``) or only read (a plausible device time that
    may have been stored at our time before). ``ahead``: its device time, when an NTP
    clock ahead of ours is the reason it is timed by ours."""

    dev: str
    boot: int
    seq: int
    rx: int
    record: bool
    ahead: int | None = None


class ReceiveTimes:
    def __init__(self, path: Path, retention_ms: int) -> None:
        self.path = path
        self.retention_ms = retention_ms
        path.parent.mkdir(parents=True, exist_ok=True)
        # Used from one worker thread at a time (the flush), never concurrently.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._db.execute(
            "CREATE TEMP TABLE q (i INTEGER PRIMARY KEY, dev TEXT, boot INTEGER, seq INTEGER,"
            " rx INTEGER, record INTEGER)")
        # device -> latest device time stored at our time because it was ahead of ours.
        # Owned by the event loop's thread (``note_ahead``); a stale mark costs nothing,
        # as a device's times soon pass it.
        self.ahead: dict[str, int] = dict(self._db.execute("SELECT dev, ts FROM clock_ahead"))

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM first_rx").fetchone()
        return int(n)

    def resolve(self, lookups: list[Lookup]) -> list[int | None]:
        """Each message's first receive time, durably recorded (where ``record``) before
        this returns; None for a read-only lookup with nothing recorded. Blocking (fsync):
        call it from a worker thread."""
        out: list[int | None] = [q.rx if q.record else None for q in lookups]
        if not lookups:
            return out
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM temp.q")
            db.executemany("INSERT INTO temp.q VALUES (?, ?, ?, ?, ?, ?)",
                           [(i, q.dev, q.boot, q.seq, q.rx, q.record)
                            for i, q in enumerate(lookups)])
            db.execute("INSERT OR IGNORE INTO first_rx SELECT dev, boot, seq, rx FROM temp.q"
                       " WHERE record ORDER BY i")
            # Only the rows whose answer is not this delivery's receive time come back:
            # re-sends, and read-only lookups that found a first time.
            for i, rx in db.execute(
                    "SELECT q.i, f.rx FROM temp.q AS q JOIN first_rx AS f"
                    " ON f.dev = q.dev AND f.boot = q.boot AND f.seq = q.seq"
                    " WHERE f.rx != q.rx OR NOT q.record"):
                out[i] = rx
            ahead: dict[str, int] = {}
            for q in lookups:
                if q.ahead is not None and q.ahead > ahead.get(q.dev, q.ahead - 1):
                    ahead[q.dev] = q.ahead
            if ahead:
                db.executemany(
                    "INSERT INTO clock_ahead VALUES (?, ?)"
                    " ON CONFLICT (dev) DO UPDATE SET ts = max(ts, excluded.ts)",
                    ahead.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    def note_ahead(self, dev: str, ts: int) -> None:
        """Remember at once (durably at the next ``resolve``) that ``dev`` sent a device
        time ``ts`` ahead of ours, so a later plausible message up to it is looked up."""
        if ts > self.ahead.get(dev, ts - 1):
            self.ahead[dev] = ts

    def prune(self, now_ms: int) -> int:
        """Forget first times older than the retention; the number forgotten. Blocking."""
        cutoff = now_ms - self.retention_ms
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            n = db.execute("DELETE FROM first_rx WHERE rx < ?", (cutoff,)).rowcount
            # A mark older than the cutoff can only point at pruned first times.
            db.execute("DELETE FROM clock_ahead WHERE ts < ?", (cutoff,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(n)

    def close(self) -> None:
        self._db.close()
