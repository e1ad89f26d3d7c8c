"""The downlink: the central ``ack``/``cmd`` for a child → the home's broker (QoS 1) →
then the central PUBACK. An ``ack`` also settles the queued life-safety event."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable

from dolbom.gateway.bridge import Bridge
from dolbom.gateway.classify import ack_key
from dolbom.gateway.errors import QueueError
from dolbom.gateway.queue import Queue
from dolbom.mqtt import Client, MqttError, MqttSession, Received
from dolbom.protocol import Kind, Topics

log = logging.getLogger("dolbom.gateway")


class Relay:
    """Receives the central session's messages (``on_message``) and hands them down
    (``run``), one at a time, in order."""

    def __init__(self, topics: Topics, site: str, children: frozenset[str],
                 bridges: list[Bridge], queue: Queue, refused: Counter[str], *,
                 local: MqttSession, local_up: asyncio.Event, stopping: asyncio.Event,
                 acked: Callable[[], None]) -> None:
        self.topics, self.site, self.children, self.bridges = topics, site, children, bridges
        self.queue, self.refused = queue, refused
        self.local, self.local_up, self.stopping, self.acked = local, local_up, stopping, acked
        self.relayed = 0
        self.write_errors = 0
        self._down: deque[tuple[Received, Client]] = deque()
        self._down_ev = asyncio.Event()

    def on_message(self, msg: Received, client: Client) -> None:
        self._down.append((msg, client))
        self._down_ev.set()

    def wake(self) -> None:
        self._down_ev.set()

    async def run(self) -> None:
        """Central ``ack``/``cmd`` → the local broker → then the central PUBACK."""
        while True:
            while not self._down:
                self._down_ev.clear()
                await self._down_ev.wait()
            msg, central = self._down[0]
            t = self.topics.parse(msg.topic)
            ours = (t is not None and t.kind in (Kind.ACK, Kind.CMD) and t.site == self.site
                    and (not self.children or t.device in self.children))
            if t is not None and ours and t.kind is Kind.ACK:
                key = ack_key(msg.payload)
                if key is not None:
                    try:
                        self.queue.acked(t.device, *key)
                    except QueueError as e:
                        self.write_errors += 1
                        log.error("%s", e)
                    self.acked()
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
        for bridge in self.bridges:
            if await bridge.downlink(msg):
                return True
        while not self.stopping.is_set():
            await self.local_up.wait()
            local = self.local.client
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
