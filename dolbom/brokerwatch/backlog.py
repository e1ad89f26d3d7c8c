"""Messages piling up in the broker for a client that does not take them: when to tell the
operators, and when it is over (docs/scale.md). Pure, over an injected time.

A cell's ingest workers share its stream on ``$share/`` with persistent sessions, so a
dead worker's share waits for it in the broker, and so do a stopped alerts service's
events. Mosquitto 2.0 publishes no queue length per client, but it does publish, in
``$SYS`` every ``sys_interval`` and only when a value changed, how many messages its
store holds and how many of those are retained. Measured with Debian's 2.0.11, two
``$share`` sessions at QoS 1 and one of them killed: the store's count grows by exactly
the dead session's share while the retained count stays put, and falls back to the
retained count when the session returns and takes its queue. So ``stored - retained``
is what the broker holds for clients: a few in flight to live ones, plus every absent
persistent session's queue.

At fleet size that figure moves all the time (in-flight messages to live workers, acks
waiting for sleeping devices), so one high reading says nothing. ``BacklogTrend`` calls
for one alert only when the held count stayed at or above a threshold and grew, without
ever falling back to where it started, for a sustained time; and for clearing it when
the count drains below a lower mark. Between the two the open alert is refreshed at most
every ``repeat_s``.

Two limits, measured the same way. A session's queue stops at the broker's
``max_queued_messages``: then the count stays flat and what does not fit is counted in
``$SYS/broker/publish/messages/dropped`` (exported beside the held count), so the alert
must come before the limit. And QoS 0 messages are in none of these figures: Mosquitto
discards a dead session's share of them, uncounted (``dropped`` stays 0).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

SYS_STORED = "$SYS/broker/store/messages/count"
SYS_BYTES = "$SYS/broker/store/messages/bytes"
SYS_RETAINED = "$SYS/broker/retained messages/count"
SYS_DISCONNECTED = "$SYS/broker/clients/disconnected"
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"
# What the watcher subscribes to (the operator account may read these, no other $SYS),
# the retained count first: the broker sends each one's last value at once, in this order.
SYS_TOPICS = (SYS_RETAINED, SYS_STORED, SYS_BYTES, SYS_DISCONNECTED, SYS_DROPPED)

# A figure is a non-negative integer in ASCII; anything longer is not one.
_MAX_FIGURE_LEN = 20
# The window keeps at most this many buckets of samples, whatever sustain_s and the
# broker's sys_interval are (memory stays bounded).
MAX_BUCKETS = 120


@dataclass
class SysFigures:
    """The broker's latest ``$SYS`` figures (None: not seen yet)."""

    stored: int | None = None
    stored_bytes: int | None = None
    retained: int | None = None
    disconnected: int | None = None
    dropped: int | None = None  # since the broker started

    def update(self, topic: str, payload: bytes) -> bool:
        """Take one ``$SYS`` message; False if it is not one of ours or not a figure."""
        name = _FIELDS.get(topic)
        if name is None:
            return False
        value = parse_figure(payload)
        if value is None:
            return False
        setattr(self, name, value)
        return True

    @property
    def held(self) -> int | None:
        """Messages the broker holds that are not retained: queued or in flight for
        clients. The two counts are published a moment apart, so a skew of a few ``$SYS``
        messages is possible; never below 0."""
        if self.stored is None or self.retained is None:
            return None
        return max(0, self.stored - self.retained)


_FIELDS = {SYS_STORED: "stored", SYS_BYTES: "stored_bytes", SYS_RETAINED: "retained",
           SYS_DISCONNECTED: "disconnected", SYS_DROPPED: "dropped"}


def parse_figure(payload: bytes) -> int | None:
    """A ``$SYS`` count (ASCII digits), or None for anything else."""
    if not payload or len(payload) > _MAX_FIGURE_LEN or not payload.isdigit():
        return None
    return int(payload)


@dataclass(frozen=True, slots=True)
class BacklogPolicy:
    """``threshold``: held messages that are too many when they keep growing;
    ``sustain_s``: for how long they must have stayed at or above it and grown;
    ``min_growth``: by how many at least over that time (more than the usual ripple of
    in-flight messages); ``clear_below``: the alert clears when the count drains below
    this; ``repeat_s``: the open alert is refreshed at most this often."""

    threshold: int = 10_000
    sustain_s: float = 120.0
    min_growth: int = 1_000
    clear_below: int = 5_000
    repeat_s: float = 600.0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.min_growth < 1:
            raise ValueError("backlog threshold and min_growth must be at least 1")
        if not 0 <= self.clear_below < self.threshold:
            raise ValueError(f"backlog clear_below ({self.clear_below}) must be at least 0 "
                             f"and below the threshold ({self.threshold})")
        for name in ("sustain_s", "repeat_s"):
            v = getattr(self, name)
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"backlog {name} must be a positive number of seconds")


class Verdict(enum.StrEnum):
    RAISE = "raised"  # grew for sustain_s: tell the operators
    REPEAT = "repeated"  # still there: refresh the open alert (nobody is told again)
    CLEAR = "cleared"  # drained: resolve it


@dataclass(frozen=True, slots=True)
class Report:
    verdict: Verdict
    at: float
    held: int
    growth: int  # over the window (0 for a repeat or a clear)
    since: float  # when the window began (the growth's start) or the alert was raised


@dataclass(slots=True)
class _Bucket:
    """Samples close together, merged: when they began, their lowest and their last."""

    at: float
    low: int
    last: int


@dataclass
class BacklogTrend:
    """One broker's held count over time: ``observe`` each sample, act on its report.

    The window is sliding: a raise needs a sample at least ``sustain_s`` old (the anchor,
    where the window starts), every sample since then at or above both the threshold
    and the anchor's count, and the newest at least ``min_growth`` above the anchor.
    A count that rises and falls around a level (live clients' in-flight messages)
    falls below its anchor sooner or later and raises nothing; a dead session's queue
    only grows. One alert at a time: after a raise, only repeats, until a clear.
    """

    policy: BacklogPolicy
    raised: bool = False  # an alert is open (``raised=True`` at start: found open)
    _buckets: deque[_Bucket] = field(default_factory=deque)
    _raised_at: float = 0.0
    _reported_at: float = -math.inf

    @property
    def _spacing(self) -> float:
        return self.policy.sustain_s / (MAX_BUCKETS - 2)

    def reset(self) -> None:
        """Forget the samples (the figures stopped: a lost connection, a clock that went
        back); an open alert stays open until a sample shows the count drained."""
        self._buckets.clear()

    def observe(self, at: float, held: int) -> Report | None:
        """One sample of the held count at ``at``; what to do now, if anything."""
        p = self.policy
        b = self._buckets
        if b and at < b[-1].at:
            self.reset()  # the clock went back: the window means nothing any more
        if b and at - b[-1].at < self._spacing:
            last = b[-1]
            last.low, last.last = min(last.low, held), held
        else:
            b.append(_Bucket(at, held, held))
        # keep one bucket at or before the window's start (the anchor), none older
        while len(b) >= 2 and b[1].at <= at - p.sustain_s:
            b.popleft()
        if self.raised:
            if held < p.clear_below:
                self.raised = False
                self._reported_at = at
                return Report(Verdict.CLEAR, at, held, 0, self._raised_at)
            if at - self._reported_at >= p.repeat_s:
                self._reported_at = at
                return Report(Verdict.REPEAT, at, held, 0, self._raised_at)
            return None
        growth = self._growth(at)
        if growth is None:
            return None
        anchor = b[0]
        self.raised = True
        self._raised_at = self._reported_at = at
        return Report(Verdict.RAISE, at, held, growth, anchor.at)

    def _growth(self, at: float) -> int | None:
        """How much the count grew over the window, if it is time to raise."""
        p = self.policy
        b = self._buckets
        anchor = b[0]
        if anchor.at > at - p.sustain_s or len(b) < 2:
            return None  # not watched for sustain_s yet
        base = anchor.last
        if base < p.threshold:
            return None
        if any(x.low < base for x in list(b)[1:]):
            return None  # fell back meanwhile: not a steady rise
        growth = b[-1].last - base
        return growth if growth >= p.min_growth else None

    def failed(self, report: Report) -> None:
        """Storing ``report`` failed: the next sample tries again."""
        if report.verdict is Verdict.RAISE:
            self.raised = False
        elif report.verdict is Verdict.CLEAR:
            self.raised = True
        self._reported_at = -math.inf
