# Reading the outbox's journal back at boot (outbox.py describes its lines): boot-only
# code, so the outbox loads this module for it and drops it after (a loaded module's
# code stays on the heap).
import json

from outbox import Entry


def _parse(payload: bytes) -> tuple:
    """(ts, val) of a stored payload; (0, None) when it is not readable."""
    try:
        d = json.loads(payload)
        return d.get("ts", 0), d.get("val")
    except (ValueError, AttributeError):
        return 0, None


def load(path: str, now: int) -> list:
    """The journal's pending events, oldest first (empty without a journal)."""
    try:
        f = open(path, "rb")
    except OSError:
        return []
    byid: dict = {}
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn write at a power cut: the rest never happened
            try:
                if line[0] == 43:  # '+'
                    boot, seq, topic, payload = line[1:-1].split(b" ", 3)
                    ts, val = _parse(payload)
                    e = Entry(int(boot), int(seq), topic.decode(), bytes(payload), val,
                              ts, now)
                    e.frozen = True  # it may have been sent before the reset
                    byid[(e.boot, e.seq)] = e
                elif line[0] == 61:  # '='
                    boot, seq, n, last = line[1:-1].split(b" ")
                    c = byid.get((int(boot), int(seq)))
                    if c is not None:
                        c.n = int(n)
                        c.last = int(last)
                elif line[0] == 45:  # '-'
                    boot, seq = line[1:-1].split(b" ")
                    byid.pop((int(boot), int(seq)), None)
            except (ValueError, IndexError):
                continue
    return sorted(byid.values(), key=lambda e: (e.boot, e.seq))
