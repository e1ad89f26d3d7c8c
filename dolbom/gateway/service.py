"""The gateway service: local Mosquitto → durable queue → central broker, and the
central ``ack``/``cmd`` back to the device (DESIGN.md §2, §3; docs/gateway.md).

The service is wiring: it makes the parts, holds the two broker sessions
(``dolbom.mqtt.MqttSession``) and runs the tasks (one ``asyncio.TaskGroup``):

    local     the session with the home's Mosquitto: the children's uplink, QoS 1,
              persistent, PUBACK held until the queue has the message on disk
    intake    queue commit of what arrived (fsync'd for an event or a status; readings
              grouped), then the local PUBACKs, in order (``dolbom.gateway.intake``)
    central   the session with the central broker: TLS, the gateway's credentials,
              Will = its status ``lost`` (retained); subscribed to its children's
              ``ack`` and ``cmd`` (the central ACL delivers only those)
    forward   the queue to the central broker (``dolbom.gateway.forward``)
    relay     central ``ack``/``cmd`` → local broker (QoS 1) → then the central PUBACK
              (``dolbom.gateway.relay``)
    status    the gateway's own retained status, every ``status_s`` (its heartbeat),
              with the queue's depth and eviction totals (``dolbom.gateway.status``)

Time (receive times, backlog age, the life-safety re-send timer) comes from the
injected ``clock``; tests move it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import orjson

from dolbom.gateway.bridge import Bridge
from dolbom.gateway.errors import QueueError
from dolbom.gateway.forward import Forwarder
from dolbom.gateway.intake import Intake
from dolbom.gateway.queue import Queue
from dolbom.gateway.relay import Relay
from dolbom.gateway.settings import GatewaySettings
from dolbom.gateway.status import Snapshot, status_payload
from dolbom.mqtt import Client, ConnectRefused, MqttError, MqttSession, Received, Will
from dolbom.protocol import Topics
from dolbom.settings import MqttSettings

log = logging.getLogger("dolbom.gateway")

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
        self.refused: Counter[str] = Counter()
        # Extra local subscriptions and their translation (Zigbee2MQTT), set by ``bridges``.
        self._bridges: list[Bridge] = []
        self._on_local_up: list[Callable[[Client], Awaitable[None]]] = []
        self._local_up = asyncio.Event()
        self._central_up = asyncio.Event()
        site = settings.site
        self.intake = Intake(self.topics, site, self.children, self._bridges, self.queue,
                             self.refused, live=self._central_up.is_set,
                             queued=self._queued, ms=self.ms, sleep=self._sleep)
        self.local = self._session("local", settings.local, None, self.intake.on_message,
                                   self._local_up, self._local_ready)
        will = Will(self.topics.gateway_status(site, settings.gateway_id),
                    orjson.dumps({"state": "lost"}), 1, True)
        self.relay = Relay(self.topics, site, self.children, self._bridges, self.queue,
                           self.refused, local=self.local, local_up=self._local_up,
                           stopping=self.stopping, acked=self._wake_forwarder)
        self.central = self._session("central", settings.central, will,
                                     self.relay.on_message, self._central_up,
                                     self._central_ready)
        self.forwarder = Forwarder(settings, self.queue, self.central, self._central_up,
                                   self.stopping, self.ms, self._sleep)

    # ------------------------------------------------------------------ plumbing
    def ms(self) -> int:
        return int(self.clock() * 1000)

    def add_bridge(self, bridge: Bridge) -> None:
        self._bridges.append(bridge)

    def on_local_up(self, fn: Callable[[Client], Awaitable[None]]) -> None:
        """Run ``fn(local client)`` after every (re)connection to the local broker."""
        self._on_local_up.append(fn)

    @property
    def write_errors(self) -> int:
        return self.intake.write_errors + self.forwarder.write_errors + self.relay.write_errors

    def status_payload(self, state: str) -> bytes:
        return status_payload(self.snapshot(), state, boot=self.boot,
                              heartbeat_s=self.s.status_s, write_errors=self.write_errors,
                              children=len(self.children))

    def snapshot(self) -> Snapshot:
        depth, ls = self.queue.depth()
        oldest = self.queue.oldest_ms()
        return Snapshot(
            local_up=self._local_up.is_set(), central_up=self._central_up.is_set(),
            depth=depth, life_safety_pending=ls, bytes=self.queue.bytes,
            oldest_s=None if oldest is None else max(0.0, (self.ms() - oldest) / 1000),
            over_bound=self.queue.over_bound, counters=dict(self.queue.counters),
            refused=dict(self.refused))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _queued(self) -> None:
        self.forwarder.new_rows()

    def _wake_forwarder(self) -> None:
        self.forwarder.wake()

    # ------------------------------------------------------------------ sessions
    def _session(self, name: str, mqtt: MqttSettings, will: Will | None,
                 on_message: Callable[[Received, Client], None], up: asyncio.Event,
                 ready: Callable[[Client], Awaitable[None]]) -> MqttSession:
        """One persistent session, kept connected and subscribed until ``stopping``; on
        stop ``run`` says goodbye and disconnects."""

        async def on_up() -> None:
            assert session.client is not None
            await ready(session.client)
            up.set()
            self.forwarder.wake()
            self.relay.wake()

        async def on_down() -> None:
            up.clear()
            e = session.error
            if isinstance(e, ConnectRefused) and not e.retryable:
                log.error("%s broker refused the gateway: %s", name, e)

        session = MqttSession(
            mqtt.endpoint(), self.s.cid, [], on_message_from=on_message, persistent=True,
            will=will, on_up=on_up, on_down=on_down, disconnect_on_stop=False,
            name=f"{name} broker")
        # The one reconnect backoff, capped at 15 s: after a long cut the alarms go up
        # within 15 s of the line's return (jittered, so a region's gateways do not all
        # come back at once).
        return session

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

    async def _local_ready(self, c: Client) -> None:
        for fn in self._on_local_up:
            await fn(c)

    async def _central_ready(self, c: Client) -> None:
        await self._publish_status(c, "ready")
        self._central_up.set()

    # ------------------------------------------------------------------ status
    async def _publish_status(self, client: Client, state: str) -> None:
        await client.publish(self.topics.gateway_status(self.s.site, self.s.gateway_id),
                             self.status_payload(state), qos=1, retain=True)

    async def status_loop(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.s.status_s)
            c = self.central.client
            if c is not None and c.connected and not self.stopping.is_set():
                with contextlib.suppress(MqttError):
                    await self._publish_status(c, "ready")

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Run until ``stopping``; then say ``disconnected`` and leave both brokers."""
        log.info("gateway %s/%s boot %d: %d queued", self.s.site, self.s.gateway_id,
                 self.boot, self.queue.count)
        self.local.filters = self.local_filters()
        self.central.filters = self.central_filters()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.local.run(self.stopping), name="local"),
                    tg.create_task(self.central.run(self.stopping), name="central"),
                    tg.create_task(self.intake.run(), name="intake"),
                    tg.create_task(self.forwarder.run(), name="forward"),
                    tg.create_task(self.relay.run(), name="relay"),
                    tg.create_task(self.status_loop(), name="status"),
                ]
                await self.stopping.wait()
                await self._goodbye()
                for t in tasks:
                    t.cancel()
        finally:
            with contextlib.suppress(QueueError):
                self.forwarder.settle(0.0, force=True)  # what the central broker has, gone
            self.queue.close()

    async def _goodbye(self) -> None:
        c = self.central.client
        if c is not None and c.connected:
            with contextlib.suppress(MqttError, TimeoutError):
                await asyncio.wait_for(self._publish_status(c, "disconnected"), 5)
            await c.disconnect()
        if self.local.client is not None:
            await self.local.client.disconnect()
