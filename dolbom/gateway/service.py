"""The gateway service: local Mosquitto → durable queue → central broker, and the
central ``ack``/``cmd`` back to the device (DESIGN.md §2, §3; docs/gateway.md).

Tasks (one ``asyncio.TaskGroup``):

    local     the session with the home's Mosquitto: the children's uplink, QoS 1,
              persistent, PUBACK held until the queue has the message on disk
    intake    queue commit (fsync) of what arrived, then the local PUBACKs, in order
    central   the session with the central broker: TLS, the gateway's credentials,
              Will = its status ``lost`` (retained); subscribed to its children's
              ``ack`` and ``cmd`` (the central ACL delivers only those)
    forward   the queue to the central broker, QoS 1, in arrival order (life-safety
              first), ``"hist": true`` and rate-limited for backlog; a row leaves the
              queue at the central PUBACK, a life-safety event only at its ``ack``
    relay     central ``ack``/``cmd`` → local broker (QoS 1) → then the central PUBACK
    status    the gateway's own retained status, every ``status_s`` (its heartbeat),
              with the queue's depth and eviction totals

Time (receive times, backlog age, the life-safety re-send timer) comes from the
injected ``clock``; tests move it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import orjson

from dolbom import __version__
from dolbom.gateway.classify import Refused, ack_key, classify, mark_hist
from dolbom.gateway.errors import QueueError
from dolbom.gateway.queue import Cls, Item, Queue, Row
from dolbom.gateway.settings import GatewaySettings
from dolbom.mqtt import Backoff, Client, ConnectRefused, MqttError, Received, Will
from dolbom.protocol import Kind, Topics
from dolbom.settings import MqttSettings

log = logging.getLogger("dolbom.gateway")

HIST_CLASSES = (Cls.TELEMETRY, Cls.EVENT, Cls.LIFE_SAFETY)  # those with an envelope
LINGER_S = 0.005  # intake: batch a burst into one commit
SETTLE_EVERY_S = 0.1  # forwarded rows are deleted in batches this often (or DONE_BATCH)
DONE_BATCH = 500


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the gateway is doing, for its status, the CLI and tests."""

    local_up: bool
    central_up: bool
    depth: int
    life_safety_pending: int
    bytes: int
    oldest_s: float | None
    over_bound: bool
    counters: dict[str, int]
    refused: dict[str, int]


class Gateway:
    def __init__(self, settings: GatewaySettings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.s = settings
        self.clock = clock
        self.topics = Topics(settings.central.topic_prefix)
        self.queue = Queue(settings.data_dir / "queue.sqlite", settings.max_messages,
                           settings.max_bytes)
        self.boot = self.queue.new_boot()
        self.children = settings.child_ids()
        self.stopping = asyncio.Event()
        self.local: Client | None = None
        self.central: Client | None = None
        self._central_up = asyncio.Event()
        self._local_up = asyncio.Event()
        self._inbox: list[tuple[Received, Client]] = []
        self._inbox_ev = asyncio.Event()
        self._work = asyncio.Event()  # the forwarder has something to do
        self._down: deque[tuple[Received, Client]] = deque()
        self._down_ev = asyncio.Event()
        self.refused: Counter[str] = Counter()
        self.relayed = 0
        self.write_errors = 0
        self._done: list[int] = []  # PUBACKed rows not yet deleted from the file
        self._dirty = False  # new rows queued since the forwarder last looked
        self._window_full = False  # the forwarder waits for a PUBACK to send more
        self._settled_at = 0.0
        # Extra local subscriptions and their translation (Zigbee2MQTT), set by ``bridges``.
        self._bridges: list[Bridge] = []
        self._on_local_up: list[Callable[[Client], Awaitable[None]]] = []

    # ------------------------------------------------------------------ plumbing
    def ms(self) -> int:
        return int(self.clock() * 1000)

    def add_bridge(self, bridge: Bridge) -> None:
        self._bridges.append(bridge)

    def on_local_up(self, fn: Callable[[Client], Awaitable[None]]) -> None:
        """Run ``fn(local client)`` after every (re)connection to the local broker."""
        self._on_local_up.append(fn)

    def status_payload(self, state: str) -> bytes:
        snap = self.snapshot()
        c = snap.counters
        d: dict[str, Any] = {
            "state": state, "boot": self.boot, "fw": __version__, "kind": "gateway",
            "hb": int(self.s.status_s),
            # The node's outbox figures (DESIGN.md §3 status "ob"): life-safety events
            # waiting for their ack; a gateway never evicts one.
            "ob": {"depth": snap.life_safety_pending, "evicted": 0, "merged": 0,
                   "werr": self.write_errors},
            "q": {"depth": snap.depth, "bytes": snap.bytes,
                  "oldest_s": None if snap.oldest_s is None else round(snap.oldest_s, 1),
                  "over_bound": snap.over_bound,
                  "evicted": c["evicted_telemetry"] + c["evicted_status"]
                  + c["evicted_events"],
                  "evicted_telemetry": c["evicted_telemetry"],
                  "evicted_status": c["evicted_status"],
                  "evicted_events": c["evicted_events"],
                  "forwarded": c["forwarded"], "acked": c["acked"],
                  "refused": sum(self.refused.values())},  # since this boot
            "children": len(self.children),
        }
        return orjson.dumps(d)

    def snapshot(self) -> Snapshot:
        depth, ls = self.queue.depth()
        oldest = self.queue.oldest_ms()
        return Snapshot(
            local_up=self._local_up.is_set(), central_up=self._central_up.is_set(),
            depth=depth, life_safety_pending=ls, bytes=self.queue.bytes,
            oldest_s=None if oldest is None else max(0.0, (self.ms() - oldest) / 1000),
            over_bound=self.queue.over_bound, counters=dict(self.queue.counters),
            refused=dict(self.refused))

    # ------------------------------------------------------------------ sessions
    async def _keep(self, name: str, mqtt: MqttSettings, filters: list[tuple[str, int]],
                    on_message: Callable[[Received, Client], None], will: Will | None,
                    up: asyncio.Event, set_client: Callable[[Client | None], None],
                    on_up: Callable[[Client], Awaitable[None]]) -> None:
        """Keep one persistent session connected and subscribed until ``stopping``."""
        # Capped at 15 s: after a long cut the alarms go up within 15 s of the line's
        # return (jittered, so a region's gateways do not all come back at once).
        backoff = Backoff(0.5, 15.0)
        tls = mqtt.ssl_context()
        while not self.stopping.is_set():
            # Each client hands its own messages on with itself: a retained message may be
            # dispatched before subscribe() returns, and its PUBACK belongs to this client.
            holder: list[Client] = []
            client = Client(mqtt.host, mqtt.port, self.s.cid, username=mqtt.username,
                            password=mqtt.password.get_secret_value() if mqtt.password else None,
                            keepalive=mqtt.keepalive, clean_session=False,
                            on_message=partial(_with_client, on_message, holder),
                            will=will, ssl=tls, server_hostname=mqtt.tls.server_hostname)
            holder.append(client)
            try:
                await client.connect()
                set_client(client)
                if filters:
                    await client.subscribe(filters)
                await on_up(client)
            except MqttError as e:
                client.abort()
                set_client(None)
                if isinstance(e, ConnectRefused) and not e.retryable:
                    log.error("%s broker refused the gateway: %s", name, e)
                delay = backoff.next_delay()
                log.warning("%s broker %s:%d: %s; retrying in %.1f s", name, mqtt.host,
                            mqtt.port, e, delay)
                await self._sleep(delay)
                continue
            backoff.reset()
            up.set()
            log.info("%s broker %s:%d connected (session kept: %s)", name, mqtt.host,
                     mqtt.port, client.session_present)
            self._work.set()
            self._down_ev.set()
            closed = asyncio.ensure_future(client.wait_closed())
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait([closed, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not closed.done():
                closed.cancel()
                return  # stopping: ``run`` says goodbye and disconnects
            up.clear()
            set_client(None)
            log.warning("%s broker lost: %s", name, closed.exception())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _set_local(self, c: Client | None) -> None:
        self.local = c

    def _set_central(self, c: Client | None) -> None:
        self.central = c

    def local_filters(self) -> list[tuple[str, int]]:
        p, site = self.topics.prefix, self.s.site
        f = [(f"{p}/{site}/+/status", 1), (f"{p}/{site}/+/event/+", 1),
             (f"{p}/{site}/+/telemetry", 1)]
        for b in self._bridges:
            f += b.filters()
        return f

    def central_filters(self) -> list[tuple[str, int]]:
        # The central ACL delivers only this gateway's children's ack and cmd
        # (dolbom.registry.broker): a wildcard here is safe and follows moves at once.
        p, site = self.topics.prefix, self.s.site
        return [(f"{p}/{site}/+/ack", 1), (f"{p}/{site}/+/cmd/+", 1)]

    async def local_session(self) -> None:
        async def up(c: Client) -> None:
            for fn in self._on_local_up:
                await fn(c)

        await self._keep("local", self.s.local, self.local_filters(), self._on_local, None,
                         self._local_up, self._set_local, up)

    async def central_session(self) -> None:
        will = Will(self.topics.gateway_status(self.s.site, self.s.gateway_id),
                    orjson.dumps({"state": "lost"}), 1, True)

        async def up(c: Client) -> None:
            await self._publish_status(c, "ready")
            self._central_up.set()

        await self._keep("central", self.s.central, self.central_filters(), self._on_central,
                         will, self._central_up, self._set_central, up)

    # ------------------------------------------------------------------ uplink
    def _on_local(self, msg: Received, client: Client) -> None:
        self._inbox.append((msg, client))
        self._inbox_ev.set()

    def _translate(self, msg: Received, rx_ms: int, live: bool) -> list[Item] | Refused:
        for b in self._bridges:
            if b.handles(msg.topic):
                return b.translate(msg.topic, msg.payload, rx_ms, live)
        r = classify(self.topics, self.s.site, self.children, msg.topic, msg.payload,
                     msg.retain, rx_ms, live)
        return r if isinstance(r, Refused) else [r]

    async def intake(self) -> None:
        """Commit what arrived, then PUBACK it locally (in order of receipt)."""
        while True:
            await self._inbox_ev.wait()
            # A moment for more to arrive: one fsync'd commit for a burst, not per message
            # (at most LINGER_S more before the device's PUBACK).
            await asyncio.sleep(LINGER_S)
            self._inbox_ev.clear()
            batch, self._inbox = self._inbox, []
            if not batch:
                continue
            rx_ms = self.ms()
            live = self._central_up.is_set()
            items: list[Item] = []
            for msg, _ in batch:
                r = self._translate(msg, rx_ms, live)
                if isinstance(r, Refused):
                    self.refused[r.reason] += 1
                else:
                    items += r
            try:
                self.queue.put_many(items)
            except QueueError as e:
                # Not on disk: no PUBACK. Drop the local connection so the broker
                # delivers these again; the devices' own outboxes keep their alarms.
                self.write_errors += 1
                log.error("%s; the local broker will deliver again", e)
                for _, client in batch:
                    client.abort()
                await self._sleep(1.0)
                continue
            self._dirty = True
            by_client: dict[int, tuple[Client, list[Received]]] = {}
            for msg, client in batch:
                by_client.setdefault(id(client), (client, []))[1].append(msg)
            for client, msgs in by_client.values():
                client.ack_many(msgs)
            self._work.set()

    async def forward(self) -> None:
        """The queue → central broker, for as long as the gateway runs."""
        while not self.stopping.is_set():
            await self._central_up.wait()
            client = self.central
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
                await self._sleep(1.0)

    async def _forward_on(self, client: Client) -> None:
        s = self.s
        loop = asyncio.get_running_loop()
        inflight: dict[int, tuple[Row, asyncio.Future[bytes] | None]] = {}
        cursor = 0
        tokens, last = float(s.inflight), loop.time()
        ack_timeout_ms = int(s.ack_timeout_s * 1000)
        hist_after_ms = int(s.hist_after_s * 1000)
        # Unacknowledged life-safety events are looked at this often, on the injected
        # clock (ms): tests move it instead of waiting for a re-send.
        ls_every = max(50, ack_timeout_ms // 4)
        self._settle(loop.time(), force=True)  # the cursor starts again at the first row
        # A new connection: re-send every unacknowledged life-safety event now (the
        # central broker may have lost what it PUBACKed before a crash).
        first_round = True
        look = True  # the queue may hold something to send
        ls_check = self.ms()
        closed = asyncio.ensure_future(client.wait_closed())
        closed.add_done_callback(self._wake)
        try:
            while not closed.done() and not self.stopping.is_set():
                self._work.clear()
                now = self.ms()
                self._harvest(inflight, now)
                t = loop.time()
                self._settle(t)
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
                        fut = client.publish_nowait(row.topic, payload, 1, row.retain)
                        assert fut is not None  # QoS 1 always has one
                        # A PUBACK wakes the loop when it matters now: an alarm's (its
                        # resend timer starts), or a full window's. Others are collected
                        # on the next pass (new rows, the settle timer).
                        fut.add_done_callback(self._wake if row.cls is Cls.LIFE_SAFETY
                                              else self._wake_if_full)
                        inflight[row.id] = (row, fut)
                        if row.cls is not Cls.LIFE_SAFETY:
                            cursor = row.id
                if self.queue.life_safety:
                    wait = min(wait, max(0.0, (ls_check - now) / 1000))
                if self._done or inflight:
                    wait = min(wait, SETTLE_EVERY_S)
                self._window_full = len(inflight) >= s.inflight
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
            self._settle(loop.time(), force=True)

    def _harvest(self, inflight: dict[int, tuple[Row, asyncio.Future[bytes] | None]],
                 now: int) -> None:
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

    def _settle(self, t: float, force: bool = False) -> None:
        """Delete the PUBACKed rows, in batches (a row PUBACKed but not yet deleted when
        the gateway dies is only sent again)."""
        if self._done and (force or len(self._done) >= DONE_BATCH
                           or t - self._settled_at >= SETTLE_EVERY_S):
            self.queue.done(self._done)
            self._done = []
            self._settled_at = t

    def _wake_if_full(self, _: object = None) -> None:
        if self._window_full:
            self._work.set()

    def _wake(self, _: object = None) -> None:
        self._work.set()

    # ------------------------------------------------------------------ downlink
    def _on_central(self, msg: Received, client: Client) -> None:
        self._down.append((msg, client))
        self._down_ev.set()

    async def relay(self) -> None:
        """Central ``ack``/``cmd`` → the local broker → then the central PUBACK."""
        while True:
            while not self._down:
                self._down_ev.clear()
                await self._down_ev.wait()
            msg, central = self._down[0]
            t = self.topics.parse(msg.topic)
            ours = (t is not None and t.kind in (Kind.ACK, Kind.CMD) and t.site == self.s.site
                    and (not self.children or t.device in self.children))
            if t is not None and ours and t.kind is Kind.ACK:
                key = ack_key(msg.payload)
                if key is not None:
                    try:
                        self.queue.acked(t.device, *key)
                    except QueueError as e:
                        self.write_errors += 1
                        log.error("%s", e)
                    self._work.set()
            if ours:
                delivered = await self._to_local(msg)
                if not delivered:
                    continue  # stopping
            else:
                self.refused["downlink_not_child"] += 1
            self._down.popleft()
            central.ack(msg)
            self.relayed += 1

    async def _to_local(self, msg: Received) -> bool:
        """Publish on the local broker, QoS 1, waiting for it as long as it takes."""
        for bridge in self._bridges:
            if await bridge.downlink(msg):
                return True
        while not self.stopping.is_set():
            await self._local_up.wait()
            local = self.local
            if local is None:
                await asyncio.sleep(0.05)
                continue
            try:
                await local.publish(msg.topic, msg.payload, qos=1)
                return True
            except MqttError as e:
                log.info("relay to the local broker failed (%s); retrying", e)
                await asyncio.sleep(0.2)
        return False

    # ------------------------------------------------------------------ status
    async def _publish_status(self, client: Client, state: str) -> None:
        await client.publish(self.topics.gateway_status(self.s.site, self.s.gateway_id),
                             self.status_payload(state), qos=1, retain=True)

    async def status_loop(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.s.status_s)
            c = self.central
            if c is not None and c.connected and not self.stopping.is_set():
                with contextlib.suppress(MqttError):
                    await self._publish_status(c, "ready")

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Run until ``stopping``; then say ``disconnected`` and leave both brokers."""
        log.info("gateway %s/%s boot %d: %d queued", self.s.site, self.s.gateway_id,
                 self.boot, self.queue.count)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.local_session(), name="local"),
                    tg.create_task(self.central_session(), name="central"),
                    tg.create_task(self.intake(), name="intake"),
                    tg.create_task(self.forward(), name="forward"),
                    tg.create_task(self.relay(), name="relay"),
                    tg.create_task(self.status_loop(), name="status"),
                ]
                await self.stopping.wait()
                await self._goodbye()
                for t in tasks:
                    t.cancel()
        finally:
            with contextlib.suppress(QueueError):
                self._settle(0.0, force=True)  # what the central broker has, gone
            self.queue.close()

    async def _goodbye(self) -> None:
        c = self.central
        if c is not None and c.connected:
            with contextlib.suppress(MqttError, TimeoutError):
                await asyncio.wait_for(self._publish_status(c, "disconnected"), 5)
            await c.disconnect()
        if self.local is not None:
            await self.local.disconnect()


class Bridge(Protocol):
    """A translator of extra local topics into children's contract-v1 messages
    (Zigbee2MQTT, ``dolbom.gateway.z2m``)."""

    def filters(self) -> list[tuple[str, int]]: ...

    def handles(self, topic: str) -> bool: ...

    def translate(self, topic: str, payload: bytes, rx_ms: int,
                  live: bool) -> list[Item] | Refused: ...

    async def downlink(self, msg: Received) -> bool:
        """Deliver a downlink message to a child it owns; False: not its child."""


def _with_client(fn: Callable[[Received, Client], None], holder: list[Client],
                 msg: Received) -> None:
    fn(msg, holder[0])
