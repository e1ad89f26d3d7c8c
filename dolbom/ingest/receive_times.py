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

Cost: a batch of first deliveries is one ``executemany`` of inserts and one commit;
keys are read back only when some were there already (re-sends) or a lookup is
read-only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TypeAlias

SCHEMA = """
CREATE TABLE IF NOT EXISTS first_rx (
    dev TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, rx INTEGER NOT NULL,
    PRIMARY KEY (dev, boot, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS first_rx_by_rx ON first_rx (rx);
CREATE TABLE IF NOT EXISTS clock_ahead (dev TEXT PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID;
"""
_GET = "SELECT rx FROM first_rx WHERE dev = ? AND boot = ? AND seq = ?"


# One message's question: ``(dev, boot, seq, rx, record, ahead)``: its key, this
# delivery's receive time, and whether a first time is recorded if none is (``record``)
# or only read (a plausible device time that may have been stored at our time before);
# ``ahead``: its device time, when an NTP clock ahead of ours is why it is timed by ours.
# A plain tuple, not a class: a batch holds thousands, and the garbage collector stops
# tracking a tuple of plain values (never an instance, nor a named tuple's).
Lookup: TypeAlias = tuple[str, int, int, int, bool, "int | None"]


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
        if not lookups:
            return []
        db = self._db
        records = [q[:4] for q in lookups if q[4]]
        db.execute("BEGIN IMMEDIATE")
        try:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO first_rx VALUES (?, ?, ?, ?)", records)
            if db.total_changes - before == len(lookups):
                out: list[int | None] = [q[3] for q in lookups]  # all new: the usual case
            else:
                out = []
                for q in lookups:
                    row = db.execute(_GET, q[:3]).fetchone()
                    out.append(None if row is None else int(row[0]))
            ahead: dict[str, int] = {}
            for dev, _, _, _, _, ts in lookups:
                if ts is not None and ts > ahead.get(dev, ts - 1):
                    ahead[dev] = ts
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
            # A mark older than the cutoff can only point at pruned first times (a
            # message is timed by us for being ahead, so its first receive was earlier).
            db.execute("DELETE FROM clock_ahead WHERE ts < ?", (cutoff,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(n)

    def close(self) -> None:
        self._db.close()
