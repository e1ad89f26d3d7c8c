"""What several chaos scenarios share: devices that re-send until acked (as the firmware's
outbox does), services that can be stopped and started again in-process, a real SNTP
server, and the oracle's checks (each notice reached each person exactly once).

A scenario that runs the whole stack imports this module as ``chaos`` and finds here too
the pieces of tests/integration it uses (care home, services, devices, clock)."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson
import pytest

from dolbom.alerts.service import AlertService
from dolbom.ingest.service import Ingest
from dolbom.mqtt import Backoff, Client, MqttError, Received
from dolbom.protocol import Envelope, encode_event
from dolbom.stack.stack import Stack
from tests.integration.alerting import (
    Clock,
    Receiver,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import (
    TOPICS,
    device_client,
    env,
    eventually,
    ingest_settings,
    running_ingest,
    unique_now_ms,
)

__all__ = [  # what a scenario finds here, besides this module's own helpers
    "TOPICS", "Clock", "alerts_settings", "care_home", "device_client", "env", "eventually",
    "ingest_settings", "running_alerts", "running_ingest", "unique_now_ms", "webhook_receiver",
]

MARKS = [pytest.mark.chaos, pytest.mark.integration]


async def press_until_acked(dev: Client, site: str, dev_id: str, seq: int, *, boot: int = 1,
                            kind: str = "button", ts: int | None = None,
                            tries: int = 40, wait_s: float = 0.5) -> int:
    """Publish a life-safety event as the firmware's outbox does: the same (boot, seq,
    ts) again every ``wait_s`` until its ack arrives (bounded: ``tries``). The caller
    subscribed ``dev`` to its ack topic. Returns how many times it was sent."""
    payload = encode_event(Envelope(boot, seq, ts if ts is not None else unique_now_ms(), 2))
    for n in range(1, tries + 1):
        await dev.publish(TOPICS.event(site, dev_id, kind), payload, qos=1)
        try:
            async with asyncio.timeout(wait_s):
                async for ack in dev.messages():
                    if orjson.loads(ack.payload) == {"boot": boot, "seq": seq}:
                        return n
        except TimeoutError:
            continue
    raise AssertionError(f"{kind} {boot}/{seq} of {dev_id} never acked")


def told_once(rec: Receiver) -> None:
    """No notice reached a person twice (delivery id and recipient)."""
    twice = [k for k, n in Counter(zip(rec.deliveries, rec.who, strict=True)).items() if n > 1]
    assert twice == [], twice


def told(rec: Receiver, rule: str) -> list[tuple[str, str | None]]:
    """(recipient, device) of each delivery of ``rule``, sorted."""
    return sorted((w, b.get("device")) for w, b in zip(rec.who, rec.received, strict=True)
                  if b["rule"] == rule)


class _Sntp(asyncio.DatagramProtocol):
    """Answers every SNTP request with this host's time (mode 4, stratum 2)."""

    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 48:
            return
        now = time.time() + NTP_EPOCH_OFFSET
        secs, frac = int(now), int((now % 1) * 2**32)
        pkt = bytearray(48)
        pkt[0], pkt[1] = 0x24, 2  # LI 0, version 4, mode 4 (server); stratum 2
        pkt[24:32] = data[40:48]  # originate = the client's transmit time
        struct.pack_into("!IIII", pkt, 32, secs, frac, secs, frac)  # receive, transmit
        self.transport.sendto(bytes(pkt), addr)


NTP_EPOCH_OFFSET = 2_208_988_800


@asynccontextmanager
async def sntp_server() -> AsyncIterator[int]:
    """A real SNTP server on a loopback UDP port, so a node's time quality is 2 (NTP):
    ingest then stores its points under the node's own times (DESIGN.md §3)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Sntp, local_addr=("127.0.0.1", 0))
    try:
        yield int(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


class Device:
    """One device's MQTT link, reconnecting with backoff; publishes retried until acked."""

    def __init__(self, stack: Stack, site: str, dev: str, password: str) -> None:
        self.stack, self.site, self.dev, self.password = stack, site, dev, password
        self.client: Client | None = None
        self.acks: set[tuple[int, int]] = set()
        self.connects = 0
        self.backoff = Backoff(0.2, 2.0)

    def _on(self, msg: Received) -> None:
        a = orjson.loads(msg.payload)
        self.acks.add((a["boot"], a["seq"]))

    async def link(self) -> Client:
        while self.client is None or not self.client.connected:
            c = Client("127.0.0.1", self.stack.mosquitto.port, self.dev, username=self.dev,
                       password=self.password, keepalive=5, on_message=self._on)
            try:
                await c.connect(timeout=2)
                await c.subscribe([(TOPICS.ack(self.site, self.dev), 1)], timeout=2)
            except (MqttError, OSError):
                c.abort()
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.client, self.connects = c, self.connects + 1
            self.backoff.reset()
        return self.client

    async def send(self, topic: str, payload: bytes) -> None:
        while True:
            c = await self.link()
            try:
                await c.publish(topic, payload, qos=1, timeout=2)
                return
            except (MqttError, OSError, TimeoutError):
                c.abort()

    async def press(self, seq: int) -> None:
        payload = encode_event(Envelope(1, seq, unique_now_ms(), 2))
        while (1, seq) not in self.acks:
            await self.send(TOPICS.event(self.site, self.dev, "button"), payload)
            for _ in range(10):
                if (1, seq) in self.acks:
                    return
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        if self.client is not None and self.client.connected:
            await self.client.disconnect()


class Service:
    """An in-process ingest or alerts service that can be stopped and started again."""

    def __init__(self, make: Callable[[], Ingest | AlertService]) -> None:
        self.make = make
        self.svc: Ingest | AlertService | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.svc = self.make()
        self.task = asyncio.create_task(self.svc.run(), name=type(self.svc).__name__)

    async def stop(self) -> None:
        if self.svc is not None and self.task is not None:
            self.svc.stopping.set()
            await asyncio.wait_for(self.task, 30)
        self.svc = self.task = None
