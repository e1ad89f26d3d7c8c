"""The live alert stream: one poller per app fans alert changes out to subscribers.

Alert changes are written by another process (the alerts service) into the shared SQL
database, so the stream polls ``alert_events`` (a monotonic id) every ``poll_s`` in ONE
background task per app, whatever the number of clients, and hands each change to every
subscriber allowed to see it (``Scope.allows_alert``). Each subscriber has a bounded
queue: a client that falls ``queue_size`` events behind is disconnected, never allowed to
grow memory; its browser reconnects with ``Last-Event-ID`` and catches up from the
database (``subscribe(..., last_event_id=N)``).

PostgreSQL can commit ids out of order (a transaction holding id 10 commits after id 11),
so each poll looks back ``LOOKBACK`` ids and skips those already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.api.access import Scope
from dolbom.api.metrics import ApiMetrics
from dolbom.registry.models import Alert, AlertEvent

log = logging.getLogger(__name__)

LOOKBACK = 100  # ids re-read each poll, for late commits on PostgreSQL
BATCH = 500  # events read per poll (a full batch polls again at once)
MAX_BACKLOG = 1000  # events replayed to a client resuming with Last-Event-ID

ScopeSource = Scope | Callable[[], Scope]


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One line of an alert's timeline, with what a client needs to place it (ids only)."""

    event_id: int
    alert_id: int
    kind: str
    at: datetime
    actor: str
    status: str
    priority: str
    klass: str
    rule: str
    site_id: str
    home_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "alert_id": self.alert_id, "kind": self.kind,
                "at": self.at.isoformat(), "actor": self.actor, "status": self.status,
                "priority": self.priority, "klass": self.klass, "rule": self.rule,
                "site": self.site_id, "home": self.home_id}

    def visible_to(self, scope: Scope) -> bool:
        return scope.allows_alert(self.site_id, self.home_id, self.klass, self.priority)


def _fetch(session: Session, after_id: int, limit: int, *,
           newest: bool = False) -> list[AlertChange]:
    """Changes after ``after_id`` in id order: the oldest ``limit`` (or the newest)."""
    order = AlertEvent.id.desc() if newest else AlertEvent.id
    rows = session.execute(
        select(AlertEvent.id, AlertEvent.alert_id, AlertEvent.kind, AlertEvent.at,
               AlertEvent.actor, Alert.status, Alert.priority, Alert.klass, Alert.rule,
               Alert.site_id, Alert.home_id)
        .join(Alert, Alert.id == AlertEvent.alert_id)
        .where(AlertEvent.id > after_id).order_by(order).limit(limit)
    ).all()
    changes = [AlertChange(*r) for r in rows]
    return changes[::-1] if newest else changes


class Subscription:
    """One client's stream (an async iterator). ``aclose()`` when done."""

    def __init__(self, bus: AlertBus, scope: ScopeSource, last_event_id: int | None,
                 queue_size: int) -> None:
        self._bus = bus
        self._scope = scope
        self.queue: asyncio.Queue[AlertChange | None] = asyncio.Queue(queue_size)
        self._backlog: deque[AlertChange] | None = None if last_event_id is not None else deque()
        self._after = last_event_id if last_event_id is not None else -1
        self.dropped = False
        self.closed = False
        # More was missed than MAX_BACKLOG: only the newest were replayed, so the client
        # should reload what it shows (the SSE route sends a ``reset`` event first).
        self.truncated = False

    @property
    def scope(self) -> Scope:
        return self._scope() if callable(self._scope) else self._scope

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> AlertChange:
        if self._backlog is None:
            # Registered before this read, so nothing falls between backlog and live.
            loaded, self.truncated = await asyncio.to_thread(self._bus.backlog, self._after)
            self._backlog = deque(loaded)
        while self._backlog:
            c = self._backlog.popleft()
            if c.event_id > self._after and c.visible_to(self.scope):
                self._after = c.event_id
                return c
        while True:
            if self.closed:
                raise StopAsyncIteration
            item = await self.queue.get()
            if item is None:
                self.closed = True
                raise StopAsyncIteration
            # A resumed client may get live events it already had from the backlog.
            if item.event_id > self._after or item.event_id in self._bus.late_ids:
                self._after = max(self._after, item.event_id)
                return item

    def offer(self, change: AlertChange) -> bool:
        """Queue a change; False (and the client is cut off) if the queue is full."""
        if self.closed:
            return True
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.dropped = True
            self._end()
            return False
        return True

    def _end(self) -> None:
        # Make room for the end marker: the client reconnects and catches up from the DB.
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def aclose(self) -> None:
        self.closed = True
        self._bus.unsubscribe(self)


class AlertBus:
    def __init__(self, sessions: sessionmaker[Session], poll_s: float = 0.5,
                 queue_size: int = 256, metrics: ApiMetrics | None = None) -> None:
        self.sessions, self.poll_s, self.queue_size = sessions, poll_s, queue_size
        self.metrics = metrics
        self._subs: set[Subscription] = set()
        self._last_id: int | None = None
        self._delivered: deque[int] = deque(maxlen=4 * LOOKBACK)
        self._delivered_set: set[int] = set()
        self.late_ids: set[int] = set()  # delivered below the high-water mark (late commits)
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, user_scope: ScopeSource, *,
                  last_event_id: int | None = None) -> Subscription:
        """Changes of the alerts ``user_scope`` allows, from now (or after ``last_event_id``).

        ``user_scope`` is a Scope, or a function returning the current one (a long-lived
        stream can follow assignment changes)."""
        sub = Subscription(self, user_scope, last_event_id, self.queue_size)
        self._subs.add(sub)
        self._gauge()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.sse_subscribers.set(len(self._subs))

    def backlog(self, after_id: int) -> tuple[list[AlertChange], bool]:
        """What a resuming client missed: the newest MAX_BACKLOG changes, and whether
        there were more (so the backlog always joins up with the live stream)."""
        with self.sessions() as s:
            changes = _fetch(s, after_id, MAX_BACKLOG + 1, newest=True)
        return changes[-MAX_BACKLOG:], len(changes) > MAX_BACKLOG

    def _head(self) -> tuple[int, list[int]]:
        """The newest id, and the ids within the look-back window below it."""
        with self.sessions() as s:
            head = int(s.scalar(select(func.coalesce(func.max(AlertEvent.id), 0))) or 0)
            recent = s.scalars(select(AlertEvent.id)
                               .where(AlertEvent.id > head - LOOKBACK)).all()
        return head, [int(i) for i in recent]

    async def start(self) -> None:
        """Fix the starting point: changes after this moment are streamed (what is already
        in the look-back window counts as delivered: it happened before we started)."""
        head, recent = await asyncio.to_thread(self._head)
        self._last_id = head
        for i in recent:
            self._remember(i)

    def stop(self) -> None:
        self._stop.set()

    def _poll(self) -> list[AlertChange]:
        assert self._last_id is not None
        with self.sessions() as s:
            changes = _fetch(s, max(0, self._last_id - LOOKBACK), BATCH + LOOKBACK)
        return [c for c in changes if c.event_id not in self._delivered_set]

    def publish(self, changes: list[AlertChange]) -> None:
        """Fan out to every subscriber allowed to see each change (drops slow clients)."""
        for c in changes:
            if self._last_id is not None and c.event_id < self._last_id:
                self.late_ids.add(c.event_id)
                if len(self.late_ids) > 4 * LOOKBACK:
                    self.late_ids.clear()
            self._remember(c.event_id)
            self._last_id = max(self._last_id or 0, c.event_id)
            for sub in list(self._subs):
                if c.visible_to(sub.scope) and not sub.offer(c):
                    self.unsubscribe(sub)
                    if self.metrics is not None:
                        self.metrics.sse_dropped.inc()

    def _remember(self, event_id: int) -> None:
        if len(self._delivered) == self._delivered.maxlen:
            self._delivered_set.discard(self._delivered[0])
        self._delivered.append(event_id)
        self._delivered_set.add(event_id)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set (default: until ``stop()``); then end every stream.

        The app's lifespan passes its own event: asyncio events belong to the loop that
        first waits on them, and a lifespan may run more than once (e.g. in tests)."""
        if stop is None:
            stop = self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._last_id is None:
            await self.start()
        try:
            while not stop.is_set():
                full = False
                try:
                    changes = await asyncio.to_thread(self._poll)
                    if self.metrics is not None:
                        self.metrics.sse_polls.inc()
                    self.publish(changes)
                    full = len(changes) >= BATCH
                except Exception:  # a database hiccup must not end the stream for good
                    log.warning("alert stream: polling the alert journal failed",
                                exc_info=log.isEnabledFor(logging.DEBUG))
                    if self.metrics is not None:
                        self.metrics.sse_poll_errors.inc()
                if not full:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_s)
        finally:
            self._end_all()

    def _end_all(self) -> None:
        for sub in list(self._subs):
            sub._end()
            self.unsubscribe(sub)

    def close_streams(self) -> None:
        """End every open stream now (safe from a signal handler or another thread): on
        SIGTERM the server can then finish its requests instead of waiting on streams."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._end_all)


async def stream(bus: AlertBus, scope: ScopeSource,
                 last_event_id: int | None = None) -> AsyncIterator[AlertChange]:
    """Convenience: iterate a subscription and always unsubscribe."""
    sub = bus.subscribe(scope, last_event_id=last_event_id)
    try:
        async for c in sub:
            yield c
    finally:
        await sub.aclose()
