"""A message on a life-safety topic as the alarm path journals it: an ``Alarm``, also when
its payload fails validation (docs/alerts.md: the device and the type are in the topic)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import life_safety
from dolbom.alerts.rules.base import LIFE_SAFETY_RULES
from dolbom.alerts.rules.observations import LifeSafetyObs
from dolbom.protocol import DecodeError, Event, Reason, Topic, decode

RAW_KEEP_BYTES = 4096  # of a payload that failed validation, kept with its alert
# The journal key of an event whose payload failed validation is (dev, -1, hash): a real
# boot is never negative (DESIGN.md §3 envelope), so it never meets a device's own key.
UNDECODABLE_BOOT = -1


def undecodable_key(device: str, payload: bytes) -> tuple[str, int, int]:
    """The dedup key of a payload with no (boot, seq) of its own: the same bytes from the
    same device again (a redelivery) are the same event. 63 bits of the SHA-256, so the
    key fits the journal's signed 64-bit ``seq``."""
    digest = hashlib.sha256(payload).digest()
    return device, UNDECODABLE_BOOT, int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True, slots=True)
class Alarm:
    """One life-safety event as the path journals it, valid payload or not.

    ``ack`` is the (boot, seq) to acknowledge to the device, None when the payload gave
    none (then nothing but the PUBACK follows the journal). ``reason`` is why the payload
    failed validation, None when it did not."""

    site: str  # from the topic
    device: str
    rule: Rule
    event_key: tuple[str, int, int]
    at_ms: int
    event_ts_ms: int | None
    hist: bool
    detail: dict[str, Any]
    ack: tuple[int, int] | None
    reason: Reason | None = None


def raw_detail(payload: bytes) -> dict[str, Any]:
    """The first ``RAW_KEEP_BYTES`` of a payload that failed validation, for the alert's
    detail: as text when it is UTF-8 without NULs (a multi-byte character cut at the
    bound is dropped), else as base64; with its full size and SHA-256."""
    head = payload[:RAW_KEEP_BYTES]
    d: dict[str, Any] = {"payload_bytes": len(payload),
                         "payload_sha256": hashlib.sha256(payload).hexdigest(),
                         "payload_truncated": len(payload) > RAW_KEEP_BYTES}
    text: str | None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        cut = d["payload_truncated"] and e.start >= len(head) - 3 and e.end == len(head)
        text = head[:e.start].decode("utf-8") if cut else None
    if text is not None and "\x00" not in text:
        d["payload"] = text
    else:
        d["payload_b64"] = base64.b64encode(head).decode("ascii")
    return d


def alarm_of(topic: Topic, payload: bytes, at_ms: int) -> Alarm:
    """The alarm of a message on a life-safety topic (``topic.name`` in LIFE_SAFETY).

    A payload that fails validation still means someone may need help: the device and
    the type are in the topic, so it is an alarm all the same, keyed by
    ``undecodable_key`` and carrying the raw payload (bounded)."""
    rule = LIFE_SAFETY_RULES[topic.name]
    try:
        m = decode(topic, payload)
    except DecodeError as e:
        return Alarm(topic.site, topic.device, rule, undecodable_key(topic.device, payload),
                     at_ms, None, False,
                     {"device": topic.device, "hist": False, "undecodable": True,
                      "reason": e.reason.value, **raw_detail(payload)}, None, e.reason)
    assert isinstance(m, Event)  # an event topic decodes to an Event or raises
    r = life_safety.on_event(LifeSafetyObs(topic.device, topic.name, m.env.boot, m.env.seq,
                                           m.env.ts, at_ms, m.env.hist))
    assert r.event_key is not None
    return Alarm(topic.site, topic.device, rule, r.event_key, at_ms, r.event_ts_ms,
                 m.env.hist, dict(r.detail), (m.env.boot, m.env.seq))
