"""What the broker's ACL denied, read from its log (pure: no files, no database).

Mosquitto 2.0.11 writes, with ``log_type debug`` (``dolbom.stack.mosquitto``,
docs/broker.md), one line per refused PUBLISH and one per accepted CONNECT::

    1796362654: Denied PUBLISH from a (d0, q1, r0, m1, 'care/v1/s1/b/telemetry', ... (12 bytes))
    1796362654: New client connected from 127.0.0.1:43446 as a (p2, c1, k60, u'a').

The payload is never in the log (only its size). A subscription outside the ACL is
granted by Mosquitto 2.0's ``acl_file`` and logs no denial; what it would deliver is
dropped silently, so only publishes leave a trace.

The client id in a denial is chosen by the client, so a spoofer could name its victim;
the user name in its CONNECT line is the one the broker checked the password of, and
the registry's devices connect with user name = device id. ``ClientNames`` therefore
remembers (bounded) which user each client id connected as, and a denial is blamed on
that user; only for a connection older than the watcher is the client id used (the
firmware's client id is its device id), and the alert says so.

``DenialWindows`` counts denials per client in a sliding window and says when to tell
operators: once when a client reaches ``threshold`` denials within ``window_s``, then
at most every ``repeat_s`` while it keeps trying (a repeat on the open alert, not a new
notice). Memory is bounded: ``threshold`` times and ``max_topics`` topics per client,
``max_clients`` clients (the least recently denied are forgotten first).
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field

DENIED_MARK = "Denied PUBLISH from "
CONNECT_MARK = "New client connected from "
TOPIC_MAX = 256  # characters of a denied topic kept for operators

# Client ids and topics are chosen by the client and may hold anything, "(d0, q1, r0,
# m1, '" included, so a line can split into client id and topic in more than one way:
# every split is kept (``Denial.splits``) and the watcher blames the one whose client
# id it saw connect. The first is the shortest client id.
_DENIED = re.compile(
    r"Denied PUBLISH from (?P<client>.+?) \(d(?P<dup>[01]), q(?P<qos>[0-2]), r(?P<retain>[01]),"
    r" m(?P<mid>\d+), '(?P<topic>.*)', \.\.\. \((?P<size>\d+) bytes\)\)\Z", re.DOTALL)
_SPLIT = re.compile(r" \(d[01], q[0-2], r[01], m\d+, '")
_CONNECT = re.compile(
    r"New client connected from (?P<addr>\S+) as (?P<client>.+?)"
    r" \(p\d+, c[01], k\d+(?:, u'(?P<user>.*)')?\)\.\Z", re.DOTALL)
_STAMP = re.compile(r"(?P<t>\d{1,12}): \Z")
# What may precede a message: nothing, or a time stamp (epoch or log_timestamp_format)
# and ": ". A mark after a quote or a parenthesis is inside another line's topic or
# client id (a client could publish on a topic that reads like a denial of another).
_PREFIX = re.compile(r"(?:[^'()]*: )?\Z")


@dataclass(frozen=True, slots=True)
class Denial:
    """A PUBLISH the ACL refused: who sent it and on which topic (never the payload)."""

    at: float | None  # the log's time (unix s), None when the log has no epoch stamp
    client_id: str
    topic: str
    qos: int
    retain: bool
    size: int  # payload bytes
    action: str = "publish"
    # Other readings of an ambiguous line: (client id, topic), rarely any.
    splits: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Connected:
    """A client the broker let in, and the user name it authenticated as."""

    at: float | None
    client_id: str
    username: str | None


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that looks like a denial or a connection but is not one we can read."""

    reason: str


Parsed = Denial | Connected | Malformed | None


def _stamp(prefix: str) -> float | None:
    m = _STAMP.match(prefix)
    return float(m["t"]) if m else None


def _other_splits(line: str, m: re.Match[str]) -> tuple[tuple[str, str], ...]:
    """The longer client ids a denial line also reads as (their topic ends where the
    shortest reading's does)."""
    end = m.end("topic")
    return tuple((line[m.start("client"):s.start()], line[s.end():end][:TOPIC_MAX])
                 for s in _SPLIT.finditer(line, m.end("client") + 1, end))


def parse_line(line: str) -> Parsed:
    """One log line (without its newline) → what it says; None for every other line.

    Never raises: a line that has a denial's or a connection's mark but not its shape
    is ``Malformed`` (counted and skipped by the caller).
    """
    i = line.find(DENIED_MARK)
    if i >= 0 and _PREFIX.match(line[:i]):
        m = _DENIED.match(line, i)
        if m is None:
            return Malformed("denial")
        return Denial(_stamp(line[:i]), m["client"], m["topic"][:TOPIC_MAX], int(m["qos"]),
                      m["retain"] == "1", int(m["size"]), splits=_other_splits(line, m))
    i = line.find(CONNECT_MARK)
    if i >= 0 and _PREFIX.match(line[:i]):
        m = _CONNECT.match(line, i)
        if m is None:
            return Malformed("connect")
        return Connected(_stamp(line[:i]), m["client"], m["user"])
    return None


class ClientNames:
    """Which user name each client id connected as (the last ``capacity`` connections)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._users: OrderedDict[str, str | None] = OrderedDict()

    def connected(self, client_id: str, username: str | None) -> None:
        self._users[client_id] = username
        self._users.move_to_end(client_id)
        while len(self._users) > self.capacity:
            self._users.popitem(last=False)

    def who(self, client_id: str) -> tuple[str, bool]:
        """The identity to blame, and whether it is the authenticated user name (True)
        or only the client id (False: the connection predates what was read)."""
        user = self._users.get(client_id)
        return (user, True) if user is not None else (client_id, False)

    def blame(self, d: Denial) -> tuple[str, bool, str]:
        """``who`` for a denial: of its readings, the one whose client id was seen to
        connect (else the first); also the topic of that reading."""
        for client_id, topic in ((d.client_id, d.topic), *d.splits):
            user = self._users.get(client_id)
            if user is not None:
                return user, True, topic
        return d.client_id, False, d.topic

    def __len__(self) -> int:
        return len(self._users)


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    threshold: int = 5  # denials ...
    window_s: float = 600.0  # ... within this long: tell operators
    repeat_s: float = 60.0  # then at most this often while it goes on
    max_clients: int = 10_000
    max_topics: int = 5  # the most recent distinct topics kept per client


@dataclass(frozen=True, slots=True)
class Report:
    """Tell operators about ``who``: ``first`` of this episode, or a repeat of it."""

    who: str
    first: bool
    in_window: int  # denials within the window, up to the threshold
    total: int  # denials since this episode began
    since: float  # when this episode began
    topics: tuple[str, ...]  # most recent last


@dataclass(slots=True)
class _Client:
    times: deque[float]
    since: float
    total: int = 0
    topics: list[str] = field(default_factory=list)
    reported_at: float | None = None


class DenialWindows:
    """Denials per client in a sliding window → a ``Report`` when operators should hear.

    An episode is a run of denials with gaps shorter than the window: it reports once
    at the threshold, then at most every ``repeat_s``; a client quiet for a whole
    window starts a new episode.
    """

    def __init__(self, policy: WindowPolicy) -> None:
        self.policy = policy
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def observe(self, who: str, topic: str, at: float) -> Report | None:
        p = self.policy
        c = self._clients.get(who)
        if c is None or (c.times and at - c.times[-1] > p.window_s):
            c = _Client(deque(maxlen=p.threshold), since=at)
            self._clients[who] = c
            while len(self._clients) > p.max_clients:
                self._clients.popitem(last=False)
        self._clients.move_to_end(who)
        c.times.append(at)
        c.total += 1
        if topic in c.topics:
            c.topics.remove(topic)
        c.topics.append(topic)
        del c.topics[:-p.max_topics]
        in_window = sum(1 for t in c.times if at - t <= p.window_s)
        if c.reported_at is None:
            if in_window < p.threshold:
                return None
        elif at - c.reported_at < p.repeat_s:
            return None
        first = c.reported_at is None
        c.reported_at = at
        return Report(who, first, in_window, c.total, c.since, tuple(c.topics))
