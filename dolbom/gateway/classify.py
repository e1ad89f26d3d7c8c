"""Pure helpers of the forwarder: what a local message is, and the backlog's ``hist`` mark.

The gateway forwards a child's message unchanged (DESIGN.md §3); it reads the payload
only for the dedup key ``(dev, boot, seq)``. A payload that is not valid JSON is still
forwarded (the central services dead-letter it, or raise an undecodable alarm for a
life-safety topic): the gateway is not where a message is judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from dolbom.gateway.queue import Cls, Item
from dolbom.protocol import LIFE_SAFETY, Kind, Topics
from dolbom.protocol.messages import MAX_INT


@dataclass(frozen=True, slots=True)
class Refused:
    """A message the gateway does not forward, and why (counted)."""

    reason: str  # "not_child", "other_site", "not_uplink"


def classify(topics: Topics, site: str, children: frozenset[str], topic: str,
             payload: bytes, retain: bool, rx_ms: int, live: bool) -> Item | Refused:
    t = topics.parse(topic)
    if t is None or t.kind not in (Kind.STATUS, Kind.EVENT, Kind.TELEMETRY):
        return Refused("not_uplink")
    if t.site != site:
        return Refused("other_site")
    if children and t.device not in children:
        return Refused("not_child")
    if t.kind is Kind.STATUS:
        # Retained on the central broker whatever flag the local delivery carried (a
        # live delivery to a subscriber never carries it).
        return Item(topic, payload, Cls.STATUS, True, rx_ms, live, t.device)
    cls = Cls.TELEMETRY if t.kind is Kind.TELEMETRY else (
        Cls.LIFE_SAFETY if t.name in LIFE_SAFETY else Cls.EVENT)
    boot = seq = None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        b, s = obj.get("boot"), obj.get("seq")
        if type(b) is int and type(s) is int and 0 <= b <= MAX_INT and 0 <= s <= MAX_INT:
            boot, seq = b, s
    return Item(topic, payload, cls, False, rx_ms, live, t.device, boot, seq)


def mark_hist(payload: bytes) -> bytes:
    """The payload with ``"hist": true`` (replayed backlog, DESIGN.md §3); a payload
    that is not a JSON object goes unchanged."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    if not isinstance(obj, dict) or obj.get("hist") is True:
        return payload
    obj["hist"] = True
    return orjson.dumps(obj)


def ack_key(payload: bytes) -> tuple[int, int] | None:
    """(boot, seq) of an ``ack`` payload, None if it is not one."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    b, s = obj.get("boot"), obj.get("seq")
    if type(b) is int and type(s) is int:
        return b, s
    return None
