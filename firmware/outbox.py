# The flash outbox of life-safety events (button, fall, smoke, gas), and the RAM
# queue for everything else.
#
# Outbox: an append-only journal on flash, one line per change:
#     +<boot> <seq> <topic> <payload>     an event to deliver
#     -<boot> <seq>                       its ack arrived (DESIGN.md §3)
# Appends are cheap on LittleFS and a torn last line (power cut) is ignored on load.
# When nothing is pending the file is deleted; when it grows, it is rewritten.
# The exact payload is stored, so a re-send carries the same (boot, seq) and bytes.
import os

import util

FILE = "outbox.jl"
MAX_PENDING = 48
COMPACT_BYTES = 4096


class Entry:
    __slots__ = ("boot", "seq", "topic", "payload", "sent_ms", "conn")

    def __init__(self, boot: int, seq: int, topic: str, payload: bytes) -> None:
        self.boot = boot
        self.seq = seq
        self.topic = topic
        self.payload = payload
        self.sent_ms = 0
        self.conn = -1  # connection number it was last sent on; -1 never


class Outbox:
    def __init__(self, path: str = FILE) -> None:
        self.path = path
        self.pending: list = []  # Entry, oldest first
        self.evicted = 0
        self.write_errors = 0
        self._load()

    def _load(self) -> None:
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        byid: dict = {}
        with f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn write at a power cut: the rest never happened
                try:
                    if line[0] == 43:  # '+'
                        boot, seq, topic, payload = line[1:-1].split(b" ", 3)
                        e = Entry(int(boot), int(seq), topic.decode(), bytes(payload))
                        byid[(e.boot, e.seq)] = e
                    elif line[0] == 45:  # '-'
                        boot, seq = line[1:-1].split(b" ")
                        byid.pop((int(boot), int(seq)), None)
                except (ValueError, IndexError):
                    continue
        self.pending = sorted(byid.values(), key=lambda e: (e.boot, e.seq))
        if not self.pending:
            util.remove(self.path)

    def _append(self, line: bytes) -> None:
        with open(self.path, "ab") as f:
            f.write(line)

    def add(self, boot: int, seq: int, topic: str, payload: bytes) -> Entry:
        """Persist first, then keep in RAM: the event survives a reset from here on."""
        if len(self.pending) >= MAX_PENDING:
            self._evict()
        try:
            self._append(b"+%d %d %s %s\n" % (boot, seq, topic.encode(), payload))
        except OSError as err:
            # Flash full or failing: still deliver it from RAM rather than lose it now.
            util.log("outbox write failed", repr(err))
            self.write_errors += 1
        entry = Entry(boot, seq, topic, payload)
        self.pending.append(entry)
        return entry

    def _evict(self) -> None:
        # Never reached in normal life (it takes 48 unacknowledged alarms). Keep the
        # newest events and the oldest of each topic; drop the oldest duplicate kind.
        seen: dict = {}
        for e in self.pending:
            seen[e.topic] = seen.get(e.topic, 0) + 1
        for i in range(1, len(self.pending)):
            e = self.pending[i]
            if seen[e.topic] > 1:
                self.ack(e.boot, e.seq)
                self.evicted += 1
                return
        e = self.pending[0]
        self.ack(e.boot, e.seq)
        self.evicted += 1

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
        else:
            self._append(b"-%d %d\n" % (boot, seq))
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
        with open(tmp, "wb") as f:
            for e in self.pending:
                f.write(b"+%d %d %s %s\n" % (e.boot, e.seq, e.topic.encode(), e.payload))
        os.rename(tmp, self.path)

    def due(self, now_ms: int, conn: int, resend_ms: int, ticks_diff) -> list:
        """Entries to (re)send now: never sent on this connection, or not acked in time."""
        out = []
        for e in self.pending:
            if e.conn != conn or ticks_diff(now_ms, e.sent_ms) >= resend_ms:
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
