"""The gateway's durable store-and-forward queue: one SQLite file in WAL mode.

Every message from a child is committed here before the gateway PUBACKs it on the
local broker (STYLE.md "Delivery semantics"). A commit holding anything but telemetry
(a life-safety or other event, a status) is fsync'd (``synchronous=FULL``: the WAL is
on disk when the commit returns), so a power cut after the PUBACK loses none of them.
Telemetry is committed without an fsync (``synchronous=NORMAL``: in the WAL, atomic,
safe from a crash or kill of the gateway, but a power cut can undo it) unless the last
fsync'd commit is ``SYNC_EVERY_MS`` old by the messages' receive times: a power cut loses
at most a second's worth of telemetry, what came within a second after the last fsync
(docs/gateway.md "Readings: grouped, fsync'd once a second"). Rows leave the queue
when the central broker has them: telemetry, activity events and statuses at the
central PUBACK; a life-safety event only when its application ``ack`` comes back
(DESIGN.md §3 "Delivery"), being re-sent until then.

Bounded (STYLE.md: a deliberate full-queue policy): past ``max_messages`` or
``max_bytes``, telemetry is evicted oldest first, then statuses, then other events.
An unacknowledged life-safety event is never evicted: the bound is exceeded instead and
``over_bound`` says so in the gateway's status. Every eviction is counted, and the
totals (kept in the file, across restarts) go into the gateway's status.

A message with a dedup key ``(dev, boot, seq)`` is queued once while pending: a device
re-sending an unacknowledged event to the local broker every few seconds during a long
uplink cut does not fill the queue (a re-send with a different payload replaces it).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from dolbom.gateway.errors import QueueError


class Cls(IntEnum):
    """What a queued message is, in the order it is evicted (lowest first)."""

    TELEMETRY = 0
    STATUS = 1
    EVENT = 2
    LIFE_SAFETY = 3


@dataclass(frozen=True, slots=True)
class Item:
    """A message to queue, as received from the local broker."""

    topic: str
    payload: bytes
    cls: Cls
    retain: bool
    rx_ms: int
    live: bool  # the uplink was up when it arrived
    dev: str | None = None
    boot: int | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    topic: str
    payload: bytes
    cls: Cls
    retain: bool
    rx_ms: int
    live: bool


SYNC_EVERY_MS = 1000  # telemetry is on disk (fsync'd) at most this long after arrival

COUNTERS = ("boot", "evicted_telemetry", "evicted_status", "evicted_events", "forwarded",
            "acked")

SCHEMA = """
CREATE TABLE IF NOT EXISTS q (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    cls INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    rx_ms INTEGER NOT NULL,
    live INTEGER NOT NULL,
    dev TEXT,
    boot INTEGER,
    seq INTEGER,
    sent_ms INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS q_key ON q(dev, boot, seq) WHERE seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS q_cls ON q(cls, id);
CREATE INDEX IF NOT EXISTS q_topic ON q(topic) WHERE cls = 1;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""


class Queue:
    """The queue file. Single-threaded: the gateway's event loop owns it."""

    def __init__(self, path: Path, max_messages: int, max_bytes: int, *,
                 on_commit: Callable[[bool], None] | None = None) -> None:
        """``on_commit(fsynced)`` is called after every commit (tests count them)."""
        self.path = path
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self.on_commit = on_commit
        self._full = True  # synchronous=FULL now (else NORMAL)
        self._synced_ms: int | None = None  # receive time of the last fsync'd telemetry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self.counters = dict.fromkeys(COUNTERS, 0)
        except sqlite3.Error as e:
            raise QueueError(f"cannot open the queue {path}: {e}") from e
        self.count = self.bytes = self.life_safety = 0
        self._recount()
        self.over_bound = False  # only life-safety events left, and still over the bound

    def _recount(self) -> None:
        """The in-memory totals from the file (at open, and after a failed write)."""
        try:
            n, size, ls = self.db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0), "
                "coalesce(sum(cls = 3), 0) FROM q").fetchone()
            self.counters.update(dict.fromkeys(COUNTERS, 0))
            for k, v in self.db.execute("SELECT k, v FROM meta"):
                if k in self.counters:
                    self.counters[k] = int(v)
        except sqlite3.Error as e:
            raise QueueError(f"cannot read the queue {self.path}: {e}") from e
        self.count, self.bytes = int(n), int(size)
        self.life_safety = int(ls)  # unacknowledged life-safety events queued

    def close(self) -> None:
        self.db.close()

    # -- counters ------------------------------------------------------------
    def _bump(self, name: str, n: int = 1) -> None:
        self.counters[name] += n
        self.db.execute("INSERT INTO meta(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE "
                        "SET v = excluded.v", (name, self.counters[name]))

    def new_boot(self) -> int:
        """Count a start of the gateway (its ``boot`` in status), durably."""
        with self._tx():
            self._bump("boot")
        return self.counters["boot"]

    # -- writing -------------------------------------------------------------
    def _tx(self, fsync: bool = True) -> _Tx:
        """A write transaction; its commit is fsync'd (``synchronous=FULL``) or not."""
        if fsync != self._full:
            try:
                self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            except sqlite3.Error as e:
                raise QueueError(f"queue write failed: {e}") from e
            self._full = fsync
        return _Tx(self.db, self._recount, self.on_commit, fsync)

    def put_many(self, items: Sequence[Item]) -> int:
        """Queue ``items`` in one durable transaction; returns how many were new.

        When this returns, the messages are committed: PUBACK them now. A batch with
        anything but telemetry in it is fsync'd; telemetry alone is fsync'd once
        ``SYNC_EVERY_MS`` has passed since the last fsync'd telemetry (see above). A
        status replaces the same device's status still waiting (only the newest state
        matters).
        """
        added = 0
        newest = max((it.rx_ms for it in items), default=0)
        fsync = (any(it.cls is not Cls.TELEMETRY for it in items) or self._synced_ms is None
                 or not 0 <= newest - self._synced_ms < SYNC_EVERY_MS)  # or the clock went back
        with self._tx(fsync):
            for it in items:
                if it.cls is Cls.STATUS:
                    for (size,) in self.db.execute(
                            "DELETE FROM q WHERE cls = 1 AND topic = ? AND sent_ms IS NULL "
                            "RETURNING length(payload)", (it.topic,)):
                        self.count -= 1
                        self.bytes -= size
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO q(topic, payload, cls, retain, rx_ms, live, dev, "
                    "boot, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (it.topic, it.payload, int(it.cls), int(it.retain), it.rx_ms,
                     int(it.live), it.dev, it.boot, it.seq))
                if cur.rowcount:
                    added += 1
                    self.count += 1
                    self.bytes += len(it.payload)
                    if it.cls is Cls.LIFE_SAFETY:
                        self.life_safety += 1
                elif it.seq is not None:
                    # The device re-sent it, maybe with more said (a node folds repeated
                    # presses into the waiting event, "n"): the newest payload goes on.
                    row = self.db.execute(
                        "SELECT id, length(payload) FROM q WHERE dev = ? AND boot = ? AND "
                        "seq = ? AND payload != ?", (it.dev, it.boot, it.seq, it.payload)
                    ).fetchone()
                    if row is not None:
                        self.db.execute("UPDATE q SET payload = ?, sent_ms = NULL WHERE id = ?",
                                        (it.payload, row[0]))
                        self.bytes += len(it.payload) - row[1]
            self._evict()
        if fsync:
            self._synced_ms = newest
        return added

    def _evict(self) -> None:
        """Make room: the oldest of the lowest class first, life-safety never."""
        self.over_bound = False
        for cls, counter in ((Cls.TELEMETRY, "evicted_telemetry"),
                             (Cls.STATUS, "evicted_status"), (Cls.EVENT, "evicted_events")):
            while self.count > self.max_messages or self.bytes > self.max_bytes:
                over = max(self.count - self.max_messages, 1)
                rows = self.db.execute(
                    "DELETE FROM q WHERE id IN (SELECT id FROM q WHERE cls = ? ORDER BY id "
                    "LIMIT ?) RETURNING length(payload)", (int(cls), min(over, 1000))
                ).fetchall()
                if not rows:
                    break
                self.count -= len(rows)
                self.bytes -= sum(r[0] for r in rows)
                self._bump(counter, len(rows))
        if self.count > self.max_messages or self.bytes > self.max_bytes:
            self.over_bound = True

    def done(self, ids: Iterable[int]) -> None:
        """The central broker has these (PUBACK): remove them.

        Not fsync'd (``synchronous=NORMAL``, still atomic): a power cut may undo the
        last deletes, and those messages are sent again, which every receiver
        deduplicates.
        """
        ids = list(ids)
        if not ids:
            return
        with self._tx(fsync=False):
            n = 0
            for size, cls in self.db.execute(
                    "DELETE FROM q WHERE id IN (SELECT value FROM json_each(?)) "
                    "RETURNING length(payload), cls", (json.dumps(ids),)):
                n += 1
                self.bytes -= size
                self.life_safety -= cls == Cls.LIFE_SAFETY
            self.count -= n
            self._bump("forwarded", n)

    def sent(self, ids: Iterable[int], at_ms: int) -> None:
        """Life-safety events the central broker has: kept until their ``ack``."""
        ids = list(ids)
        if ids:
            with self._tx():
                self.db.executemany("UPDATE q SET sent_ms = ? WHERE id = ?",
                                    [(at_ms, i) for i in ids])

    def acked(self, dev: str, boot: int, seq: int) -> bool:
        """The central ``ack`` of (dev, boot, seq): the event is journalled; drop it."""
        with self._tx():
            row = self.db.execute(
                "DELETE FROM q WHERE dev = ? AND boot = ? AND seq = ? AND cls = 3 "
                "RETURNING length(payload)", (dev, boot, seq)).fetchone()
            if row is None:
                return False
            self.count -= 1
            self.life_safety -= 1
            self.bytes -= row[0]
            self._bump("acked")
        return True

    # -- reading -------------------------------------------------------------
    def life_safety_due(self, before_ms: int, exclude: set[int], limit: int) -> list[Row]:
        """Life-safety events never sent, or sent before ``before_ms`` and not acked."""
        rows = self.db.execute(
            "SELECT id, topic, payload, cls, retain, rx_ms, live FROM q WHERE cls = 3 "
            "AND (sent_ms IS NULL OR sent_ms < ?) ORDER BY id LIMIT ?",
            (before_ms, limit + len(exclude))).fetchall()
        return [r for r in map(_row, rows) if r.id not in exclude][:limit]

    def others_after(self, after_id: int, limit: int) -> list[Row]:
        """Everything but life-safety events, in arrival order, after ``after_id``."""
        rows = self.db.execute(
            "SELECT id, topic, payload, cls, retain, rx_ms, live FROM q WHERE cls != 3 "
            "AND id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [_row(r) for r in rows]

    def depth(self) -> tuple[int, int]:
        """(messages waiting, life-safety events among them not yet acked)."""
        return self.count, self.life_safety

    def oldest_ms(self) -> int | None:
        row = self.db.execute("SELECT min(rx_ms) FROM q").fetchone()
        return None if row is None or row[0] is None else int(row[0])


def _row(r: tuple[int, str, bytes, int, int, int, int]) -> Row:
    return Row(r[0], r[1], bytes(r[2]), Cls(r[3]), bool(r[4]), r[5], bool(r[6]))


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error), sqlite errors as QueueError."""

    def __init__(self, db: sqlite3.Connection, on_rollback: Callable[[], None],
                 on_commit: Callable[[bool], None] | None, fsync: bool) -> None:
        self.db = db
        self.on_rollback = on_rollback
        self.on_commit, self.fsync = on_commit, fsync

    def __enter__(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise QueueError(f"queue write failed: {e}") from e

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.db.execute("COMMIT")
                if self.on_commit is not None:
                    self.on_commit(self.fsync)
                return
            self.db.execute("ROLLBACK")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            self.on_rollback()
            raise QueueError(f"queue write failed: {e}") from e
        self.on_rollback()  # the totals counted what was rolled back
        if isinstance(exc, sqlite3.Error):
            raise QueueError(f"queue write failed: {exc}") from exc
