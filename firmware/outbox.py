# The flash outbox of life-safety events (button, fall, smoke, gas, sos_voice), and
# the RAM queue for everything else.
#
# Outbox: an append-only journal on flash, one line per change:
#     +<boot> <seq> <topic> <payload>     an event to deliver
#     =<boot> <seq> <n> <last>            it now stands for n occurrences, the latest at
#                                         device time <last> (ms)
#     -<boot> <seq>                       its ack arrived (DESIGN.md §3), or it was merged
#                                         into an older event of its kind (counted)
# Appends are cheap on LittleFS and a torn last line (power cut) is ignored on load.
# When nothing is pending the file is deleted; when it grows, it is rewritten.
#
# Bounds (a chattering button or a faulty smoke detector must not wear the flash out,
# and no event may vanish without a trace):
# * Coalescing. A repeat of an event (same topic and val) while one of its kind waits
#   unsent is folded into that one: ``"n"`` (occurrences) and ``"last"`` (device ms of
#   the latest) are added to its payload. It keeps its own (boot, seq): nobody has seen
#   that (boot, seq) yet, so the receiver's dedup stays exact and no seq is spent on a
#   repeat. The new count goes to flash at most every FLUSH_MS (and before the event is
#   first sent); a power cut loses at most that much of the count, never the event.
# * An event's bytes are final once it may have been sent (it was published, or it
#   was loaded after a reset): it is re-sent with the same (boot, seq) and bytes until
#   acked. A repeat then starts a new event, which waits (collecting further repeats)
#   until the one before it of its kind is acked, or HOLD_MS at most, so a chattering
#   input creates a bounded number of events per hour.
# * Full (``cap`` pending): the oldest repeat of a kind is merged into the oldest event
#   of that kind (which keeps its (boot, seq)) and counted (``merged``); only when no
#   two pending events are of one kind is the oldest evicted, counted (``evicted``).
# * The counters (``evicted``, ``merged``, ``werr`` = failed flash writes) live in
#   STATS_FILE across resets and go out in every status (node.py, ``"ob"``).
import json
import os
import sys
import time

import util

FILE = "outbox.jl"
STATS_FILE = "outbox.cnt"
MAX_PENDING = 48
COMPACT_BYTES = 4096
FLUSH_MS = 300_000  # a coalesced count reaches flash at most every 5 min
HOLD_MS = 600_000
RETRY_MS = 30_000  # a failed flash write is tried again after this  # a repeat event waits at most 10 min for its predecessor's ack
COUNTERS = ("evicted", "merged", "werr")


class Entry:
    __slots__ = ("boot", "seq", "topic", "base", "val", "n", "last", "sent_ms", "conn",
                 "frozen", "dirty", "t0", "flushed", "saved")

    def __init__(self, boot: int, seq: int, topic: str, base: bytes, val, ts: int,
                 now: int) -> None:
        self.boot = boot
        self.seq = seq
        self.topic = topic
        self.base = base  # the payload as first written
        self.val = val
        self.n = 1  # occurrences this event stands for
        self.last = ts  # device time (ms) of the latest occurrence
        self.sent_ms = 0
        self.conn = -1  # connection number it was last sent on; -1 never
        self.frozen = False  # may have been sent: bytes are final
        self.dirty = False  # n / last not on flash yet
        self.t0 = now  # ticks when it was created (or loaded)
        self.flushed = now  # ticks when its count last went to flash
        self.saved = True  # its "+" line is on flash (False after a failed write)

    @property
    def payload(self) -> bytes:
        if self.n < 2:
            return self.base
        return self.base[:-1] + b',"n":%d,"last":%d}' % (self.n, self.last)

    def add_line(self) -> bytes:
        return b"+%d %d %s %s\n" % (self.boot, self.seq, self.topic.encode(), self.base)

    def count_line(self) -> bytes:
        return b"=%d %d %d %d\n" % (self.boot, self.seq, self.n, self.last)


class Outbox:
    def __init__(self, path: str = FILE, cap: int = MAX_PENDING, now: int = 0,
                 stats: str = STATS_FILE) -> None:
        self.path = path
        self.cap = cap
        self.stats_path = stats
        self.pending: list = []  # Entry, oldest first
        self.counts = {k: 0 for k in COUNTERS}
        self.changed = False  # a counter moved: the node re-publishes its status
        self._stats_unsaved = False
        self._failed = False  # the last journal write failed, at ticks _failed_at
        self._failed_at = 0
        saved = util.read_json(stats, None)
        if isinstance(saved, dict):
            for k in COUNTERS:
                v = saved.get(k, 0)
                if isinstance(v, int) and v > 0:
                    self.counts[k] = v
        # Reading the journal back is boot-only code: loaded for it, then dropped.
        import obload

        try:
            self.pending = obload.load(self.path, now)
        finally:
            del sys.modules["obload"]
        if not self.pending:
            util.remove(self.path)

    # ------------------------------------------------------------------ flash
    def _append(self, data: bytes) -> bool:
        """One write to the journal; a failing flash is counted, never raised."""
        try:
            with open(self.path, "ab") as f:
                f.write(data)
            return True
        except OSError as err:
            util.log("outbox write failed", repr(err))
            self._count("werr")
            return False

    def _count(self, name: str) -> None:
        self.counts[name] += 1
        self.changed = True
        self._save_stats()

    def _save_stats(self) -> None:
        try:
            util.write_atomic(self.stats_path, json.dumps(self.counts))
            self._stats_unsaved = False
        except OSError as err:
            # The flash is failing: reported from RAM meanwhile, saved by a later tick.
            if not self._stats_unsaved:
                util.log("outbox stats write failed", repr(err))
                self.counts["werr"] += 1
            self._stats_unsaved = True

    def health(self) -> dict:
        """What the status reports (``"ob"``): pending events and the loss counters."""
        d = {"depth": len(self.pending)}
        d.update(self.counts)
        return d

    # ------------------------------------------------------------------ events
    def coalesce(self, topic: str, val, ts: int, now: int):
        """Fold a repeat into the unsent event of its kind; None if there is none (the
        caller then adds a new event with a new seq)."""
        for e in self.pending:
            if not e.frozen and e.topic == topic and e.val == val:
                e.n += 1
                if ts > e.last:
                    e.last = ts
                e.dirty = True
                self.tick(now)
                return e
        return None

    def add(self, boot: int, seq: int, topic: str, payload: bytes, val=None, ts: int = 0,
            now: int = 0) -> Entry:
        """Persist first, then keep in RAM: the event survives a reset from here on."""
        if len(self.pending) >= self.cap:
            self._make_room()
        entry = Entry(boot, seq, topic, payload, val, ts, now)
        # Flash full or failing: still deliver it from RAM rather than lose it now, and
        # write it again at the next tick.
        entry.saved = self._append(entry.add_line())
        self.pending.append(entry)
        return entry

    def _make_room(self) -> None:
        # Only reached with ``cap`` events nobody acknowledged. First merge the oldest
        # repeat of a kind into the oldest event of that kind: that one keeps its
        # (boot, seq) and now counts both; the newest events and the first of each kind
        # stay. Counted ("merged"): if the older one was already journalled upstream,
        # the receiver's dedup hides the new count, and the status still tells.
        first: dict = {}
        for e in self.pending:
            key = (e.topic, e.val)
            a = first.get(key)
            if a is None:
                first[key] = e
                continue
            a.n += e.n
            if e.last > a.last:
                a.last = e.last
            a.dirty = False
            self.pending.remove(e)
            util.log("outbox merged", e.boot, e.seq, "into", a.boot, a.seq, "n", a.n)
            self._append(a.count_line() + b"-%d %d\n" % (e.boot, e.seq))
            self._count("merged")
            return
        # No two events of one kind (not possible with a node's five life-safety types
        # and the default cap): the oldest goes, counted and reported.
        e = self.pending.pop(0)
        util.log("outbox evicted", e.boot, e.seq)
        self._append(b"-%d %d\n" % (e.boot, e.seq))
        self._count("evicted")

    def tick(self, now: int, force: bool = False) -> None:
        """Write coalesced counts that have waited FLUSH_MS (all of them if ``force``:
        before a reset or deep sleep), and whatever a failed write left out, in one
        append."""
        if self._failed:
            if not force and time.ticks_diff(now, self._failed_at) < RETRY_MS:
                return  # the flash failed a moment ago: not at every tick
            self._failed = False
        if self._stats_unsaved:
            self._save_stats()
        out = b""
        done = []
        for e in self.pending:
            if not e.saved:
                out += e.add_line()
                if e.n > 1:
                    out += e.count_line()
            elif e.dirty and (force or time.ticks_diff(now, e.flushed) >= FLUSH_MS):
                out += e.count_line()
            else:
                continue
            done.append(e)
        if not out:
            return
        if not self._append(out):
            self._failed = True
            self._failed_at = now
            return
        for e in done:
            e.saved = True
            e.dirty = False
            e.flushed = now

    def ack(self, boot: int, seq: int) -> bool:
        """The event is journalled upstream: forget it. False if it was not pending."""
        for i, e in enumerate(self.pending):
            if e.boot == boot and e.seq == seq:
                del self.pending[i]
                break
        else:
            return False
        if not self.pending:
            util.remove(self.path)
        elif self._append(b"-%d %d\n" % (boot, seq)):
            self._maybe_compact()
        return True

    def _maybe_compact(self) -> None:
        try:
            size = os.stat(self.path)[6]
        except OSError:
            return
        if size < COMPACT_BYTES:
            return
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                for e in self.pending:
                    f.write(b"+%d %d %s %s\n" % (e.boot, e.seq, e.topic.encode(), e.base))
                    if e.n > 1:
                        f.write(e.count_line())
                        e.dirty = False
            os.rename(tmp, self.path)
        except OSError as err:
            util.log("outbox compact failed", repr(err))
            self._count("werr")

    def due(self, now_ms: int, conn: int, resend_ms: int, ticks_diff) -> list:
        """Entries to (re)send now: never sent on this connection, or not acked in time.
        A later event of a kind (topic and val) waits for the earlier one's ack (at most HOLD_MS); an
        event about to go out for the first time has its count written first, so every
        later re-send carries the same bytes."""
        out = []
        kinds: list = []
        for e in self.pending:
            key = (e.topic, e.val)
            held = key in kinds
            kinds.append(key)
            if held and ticks_diff(now_ms, e.t0) < HOLD_MS:
                continue
            if e.conn != conn or ticks_diff(now_ms, e.sent_ms) >= resend_ms:
                if not e.frozen:
                    if e.dirty and e.saved and self._append(e.count_line()):
                        e.dirty = False
                        e.flushed = now_ms
                    e.frozen = True
                out.append(e)
        return out


class SendQueue:
    """Bounded RAM queue for telemetry and activity events (not life-safety: those are
    in the Outbox). When full, the oldest telemetry goes first; an activity event is
    dropped only when ``max_events`` activity events are already waiting (counted)."""

    def __init__(self, max_telemetry: int, max_events: int) -> None:
        self.max_telemetry = max_telemetry
        self.max_events = max_events
        self.items: list = []  # (is_event, topic, payload, qos)
        self.n_tel = 0
        self.dropped_telemetry = 0
        self.dropped_events = 0

    def __len__(self) -> int:
        return len(self.items)

    def put(self, is_event: bool, topic: str, payload: bytes, qos: int) -> None:
        if is_event:
            if len(self.items) - self.n_tel >= self.max_events:
                self._drop(True)
                self.dropped_events += 1
        elif self.n_tel >= self.max_telemetry:
            self._drop(False)
            self.dropped_telemetry += 1
        self.items.append((is_event, topic, payload, qos))
        if not is_event:
            self.n_tel += 1

    def _drop(self, event: bool) -> None:
        for i, it in enumerate(self.items):
            if it[0] == event:
                del self.items[i]
                if not event:
                    self.n_tel -= 1
                return

    def peek(self):
        return self.items[0] if self.items else None

    def pop(self) -> None:
        it = self.items.pop(0)
        if not it[0]:
            self.n_tel -= 1
