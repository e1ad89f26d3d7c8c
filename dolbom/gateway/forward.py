"""The queue → the central broker: QoS 1, in arrival order (life-safety first),
``"hist": true`` and rate-limited for backlog. A row leaves the queue at the central
PUBACK, a life-safety event only at its ``ack`` (DESIGN.md §3; docs/gateway.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dolbom.gateway.classify import mark_hist
from dolbom.gateway.errors import QueueError
from dolbom.gateway.queue import Cls, Queue, Row
from dolbom.gateway.settings import GatewaySettings
from dolbom.mqtt import Client, MqttError, MqttSession

log = logging.getLogger("dolbom.gateway")

HIST_CLASSES = (Cls.TELEMETRY, Cls.EVENT, Cls.LIFE_SAFETY)  # those with an envelope
SETTLE_EVERY_S = 1.0  # forwarded rows are deleted in batches this often (or DONE_BATCH)
DONE_BATCH = 500

InFlight = dict[int, tuple[Row, asyncio.Future[bytes] | None]]


class Forwarder:
    """Sends the queue up while the central session is up; ``wake`` when there is
    something to do (new rows, an ack, a new connection)."""

    def __init__(self, settings: GatewaySettings, queue: Queue, central: MqttSession,
                 central_up: asyncio.Event, stopping: asyncio.Event,
                 ms: Callable[[], int], sleep: Callable[[float], Awaitable[None]]) -> None:
        self.s, self.queue, self.central, self.central_up = settings, queue, central, central_up
        self.stopping, self.ms, self.sleep = stopping, ms, sleep
        self.write_errors = 0
        self._work = asyncio.Event()  # the forwarder has something to do
        self._done: list[int] = []  # PUBACKed rows not yet deleted from the file
        self._dirty = False  # new rows queued since the forwarder last looked
        self._window_full = False  # the forwarder waits for PUBACKs to send more
        self._acks_to_wake = 0  # ... for this many more (a quarter of the window)
        self._settled_at = 0.0

    def wake(self, _: object = None) -> None:
        self._work.set()

    def new_rows(self) -> None:
        """Rows were queued: look at the queue again."""
        self._dirty = True
        self._work.set()

    def _wake_if_full(self, _: object = None) -> None:
        if self._window_full:
            self._acks_to_wake -= 1
            if self._acks_to_wake <= 0:
                self._work.set()

    async def run(self) -> None:
        """The queue → central broker, for as long as the gateway runs."""
        while not self.stopping.is_set():
            await self.central_up.wait()
            client = self.central.client
            if client is None or not client.connected:
                await asyncio.sleep(0.05)
                continue
            try:
                await self._forward_on(client)
            except MqttError as e:
                log.info("forwarding paused: %s", e)
                await asyncio.sleep(0.05)
            except QueueError as e:
                # The queue file cannot be read or changed (disk full, I/O error): what
                # it holds stays; try again, and say so in the status ("ob.werr").
                self.write_errors += 1
                log.error("%s; forwarding again in 1 s", e)
                await self.sleep(1.0)
    async def _forward_on(self, client: Client) -> None:
        s = self.s
        loop = asyncio.get_running_loop()
        inflight: InFlight = {}
        cursor = 0
        tokens, last = float(s.inflight), loop.time()
        ack_timeout_ms = int(s.ack_timeout_s * 1000)
        hist_after_ms = int(s.hist_after_s * 1000)
        # Unacknowledged life-safety events are looked at this often, on the injected
        # clock (ms): tests move it instead of waiting for a re-send.
        ls_every = max(50, ack_timeout_ms // 4)
        self.settle(loop.time(), force=True)  # the cursor starts again at the first row
        # A new connection: re-send every unacknowledged life-safety event now (the
        # central broker may have lost what it PUBACKed before a crash).
        first_round = True
        look = True  # the queue may hold something to send
        ls_check = self.ms()
        closed = asyncio.ensure_future(client.wait_closed())
        closed.add_done_callback(self.wake)
        try:
            while not closed.done() and not self.stopping.is_set():
                self._work.clear()
                now = self.ms()
                self._harvest(inflight, now)
                t = loop.time()
                self.settle(t)
                wait = 1.0
                free = s.inflight - len(inflight)
                look = look or self._dirty or (self.queue.life_safety > 0 and now >= ls_check)
                if free > 0 and look:
                    self._dirty = look = False
                    before = now + 1 if first_round else now - ack_timeout_ms
                    first_round = False
                    ls_check = now + ls_every
                    rows = self.queue.life_safety_due(before, set(inflight), free)
                    if len(rows) < free:
                        more = self.queue.others_after(cursor, free - len(rows))
                        look = len(more) == free - len(rows)  # maybe more behind them
                        rows += more
                    else:
                        look = True
                    tokens = min(float(s.inflight), tokens + (t - last) * s.replay_rate)
                    last = t
                    batch: list[tuple[Row, bytes]] = []
                    for row in rows:
                        backlog = not row.live or now - row.rx_ms > hist_after_ms
                        if backlog and row.cls is not Cls.LIFE_SAFETY:
                            if tokens < 1:
                                wait = min(wait, (1 - tokens) / s.replay_rate)
                                look = True
                                break
                            tokens -= 1
                        payload = row.payload
                        if backlog and row.cls in HIST_CLASSES:
                            payload = mark_hist(payload)
                        batch.append((row, payload))
                    # One socket write (one TLS record) for what is sent in this pass.
                    futs = client.publish_many_nowait(
                        (row.topic, payload, row.retain) for row, payload in batch)
                    for (row, _), fut in zip(batch, futs, strict=True):
                        # A PUBACK wakes the loop when it matters now: an alarm's (its
                        # resend timer starts), or a full window's. Others are collected
                        # on the next pass (new rows, the settle timer).
                        fut.add_done_callback(self.wake if row.cls is Cls.LIFE_SAFETY
                                              else self._wake_if_full)
                        inflight[row.id] = (row, fut)
                        if row.cls is not Cls.LIFE_SAFETY:
                            cursor = row.id
                if self.queue.life_safety:
                    wait = min(wait, max(0.0, (ls_check - now) / 1000))
                if self._done or inflight:
                    wait = min(wait, SETTLE_EVERY_S)
                # A full window is refilled when a quarter of it is free, not one row
                # per PUBACK (one wake-up and one write for many rows).
                self._window_full = len(inflight) >= s.inflight
                self._acks_to_wake = max(1, s.inflight // 4)
                if not self._work.is_set():
                    timer = loop.call_later(wait, self._work.set)
                    await self._work.wait()
                    timer.cancel()
        finally:
            if not closed.done():
                closed.cancel()
            elif not closed.cancelled():
                closed.exception()  # retrieved: the session task logs why
            # What the central broker has is gone from the file now, not at the next
            # connection: during a cut it would count against the queue's bound.
            self._harvest(inflight, self.ms())
            self.settle(loop.time(), force=True)

    def _harvest(self, inflight: InFlight, now: int) -> None:
        """Collect the PUBACKs: rows to delete, alarms now waiting for their ack."""
        sent: list[int] = []
        for rid, (row, fut) in list(inflight.items()):
            if fut is None or not fut.done():
                continue
            del inflight[rid]
            if fut.cancelled() or fut.exception() is not None:
                continue  # the connection ended: sent again on the next one
            (sent if row.cls is Cls.LIFE_SAFETY else self._done).append(rid)
        self.queue.sent(sent, now)

    def settle(self, t: float, force: bool = False) -> None:
        """Delete the PUBACKed rows, in batches (a row PUBACKed but not yet deleted when
        the gateway dies is only sent again)."""
        if self._done and (force or len(self._done) >= DONE_BATCH
                           or t - self._settled_at >= SETTLE_EVERY_S):
            self.queue.done(self._done)
            self._done = []
            self._settled_at = t
