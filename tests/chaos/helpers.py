"""What several chaos scenarios share: a device that presses until acked, and the oracle's
checks (each notice reached each person exactly once)."""

from __future__ import annotations

import asyncio
from collections import Counter

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
