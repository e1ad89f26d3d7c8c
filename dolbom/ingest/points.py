"""Contract messages → InfluxDB line protocol (pure). DESIGN.md §4.

Measurements and their tags:
    event          site, home, device, type   fields val, seq, boot, hist
    reading        site, home, device         one field per reading
    device_status  site, home, device         state, boot, fw, kind, hb, next, gateway

Timestamps are explicit and in ms (``precision=ms``), so writing the same point
twice stores it once. Tags hold only opaque ids; values are escaped by
``dolbom.influx.lineproto``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dolbom.influx.lineproto import num, str_field, tag
from dolbom.protocol import Envelope, Event, Message, Status, Telemetry
from dolbom.protocol.messages import device_time_plausible
from dolbom.protocol.topics import Kind


@dataclass(frozen=True, slots=True)
class Point:
    """One line of line protocol and whether it is an event (never dropped)."""

    line: bytes
    event: bool


def series_tags(site: str, home: str | None, device: str) -> str:
    """A device's tag set (DESIGN.md §4: opaque ids only), escaped for line protocol."""
    s = f"site={tag(site)}"
    if home:
        s += f",home={tag(home)}"
    return s + f",device={tag(device)}"


def _base(env: Envelope, received_ms: int) -> int:
    return env.ts if device_time_plausible(env, received_ms) else received_ms


def untimed_points(msg: Event | Telemetry, tags: str) -> tuple[tuple[str, int], ...]:
    """A message's points before its time is known: each line without its timestamp,
    and the offset (ms) of its sample from the message's time. A point is
    ``f"{line} {base + offset}"``, the base chosen later (DESIGN.md §3). Plain strings
    and ints: a batch can hold thousands of these without the garbage collector noticing.
    """
    topic = msg.topic
    if isinstance(msg, Telemetry):
        env = msg.env
        head = "reading," + tags
        return tuple((head + " " + ",".join(f"{k}={num(v)}" for k, v in s.readings.items()),
                      s.ts - env.ts) for s in msg.samples if s.readings)
    env = msg.env
    fields = f"seq={env.seq}i,boot={env.boot}i,hist={'true' if env.hist else 'false'}"
    val = msg.val
    if val is not None:
        # `val` is always a string field: one field, one type, whatever the event.
        text = val if isinstance(val, str) else ("true" if val is True else
                                                 "false" if val is False else repr(val))
        fields = f"val={str_field(text)}," + fields
    return ((f"event,{tags},type={tag(topic.name)} {fields}", 0),)


def to_points(msg: Message, home: str | None, received_ms: int,
              tags: str | None = None, base_ms: int | None = None) -> list[Point]:
    """Points for one valid message; ``home`` comes from the registry (None: unassigned).

    ``tags``: the device's ``series_tags``, if the caller keeps them (ingest does: the
    same few devices' tags are escaped once instead of on every message).
    ``base_ms``: the message's time (DESIGN.md §3): its device time when plausible, else
    the receive time of its first delivery, which only the caller can know. Without it,
    this delivery's receive time stands in for the first one. Each sample is stored at
    the base plus its offset inside the message.
    """
    topic = msg.topic
    if tags is None:
        tags = series_tags(topic.site, home, topic.device)
    if isinstance(msg, Telemetry | Event):
        base = _base(msg.env, received_ms) if base_ms is None else base_ms
        event = isinstance(msg, Event)
        return [Point(f"{line} {base + offset}".encode(), event)
                for line, offset in untimed_points(msg, tags)]
    if isinstance(msg, Status):
        gateway = topic.kind is Kind.GATEWAY_STATUS
        head = ("device_status," +
                (series_tags(topic.site, None, topic.device) if gateway else tags))
        parts = [f"state={str_field(msg.state)}"]
        if msg.boot is not None:
            parts.append(f"boot={msg.boot}i")
        if msg.fw is not None:
            parts.append(f"fw={str_field(msg.fw)}")
        if msg.kind is not None:
            parts.append(f"kind={str_field(msg.kind)}")
        if msg.hb is not None:
            parts.append(f"hb={msg.hb}i")
        if msg.next is not None:
            parts.append(f"next={msg.next}i")
        if gateway:
            parts.append("gateway=true")
        # A status carries no device time: it is stored at our receive time.
        return [Point(f"{head} {','.join(parts)} {received_ms}".encode(), True)]
    return []  # acks and commands are downlink: nothing to store
