"""What several chaos scenarios share: a device that presses until acked, and the oracle's
checks (each notice reached each person exactly once)."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson

from dolbom.mqtt import Client
from dolbom.protocol import Envelope, encode_event
from tests.integration.alerting import Receiver
from tests.integration.conftest import TOPICS, unique_now_ms


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
