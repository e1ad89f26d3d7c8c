"""MQTT 3.1.1 packets (OASIS standard, 2014), only what Dolbom uses: their encoding, a
connection's Will and a PUBLISH as received."""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82  # fixed flags 0b0010
SUBACK = 0x90
UNSUBACK = 0xB0
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

MAX_REMAINING = 268_435_455

_PACK_H = struct.Struct("!H").pack


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(slots=True)
class Received:
    """One PUBLISH from the broker. QoS 1 messages need ``Client.ack``."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    pid: int
    dup: bool


def remaining_length(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"packet too large: {n} bytes")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    if len(b) > 0xFFFF:
        raise ValueError("string too long for MQTT")
    return _PACK_H(len(b)) + b


def connect(
    client_id: str,
    keepalive: int,
    clean_session: bool,
    username: str | None = None,
    password: str | None = None,
    will: tuple[str, bytes, int, bool] | None = None,
) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = _str(client_id)
    if will is not None:
        w_topic, w_payload, w_qos, w_retain = will
        flags |= 0x04 | (w_qos << 3) | (0x20 if w_retain else 0)
        payload += _str(w_topic) + _str(w_payload)
    if username is not None:
        flags |= 0x80
        payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    body = _str("MQTT") + bytes([4, flags]) + _PACK_H(keepalive) + payload
    return bytes([CONNECT]) + remaining_length(len(body)) + body


def publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False, pid: int = 0,
            dup: bool = False) -> bytes:
    header = PUBLISH | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic)
    if qos:
        body += _PACK_H(pid)
    n = len(body) + len(payload)
    return bytes([header]) + remaining_length(n) + body + payload


def puback(pid: int) -> bytes:
    return b"\x40\x02" + _PACK_H(pid)


def subscribe(pid: int, filters: list[tuple[str, int]]) -> bytes:
    body = _PACK_H(pid) + b"".join(_str(t) + bytes([q]) for t, q in filters)
    return bytes([SUBSCRIBE]) + remaining_length(len(body)) + body


PINGREQ_FRAME = b"\xc0\x00"
DISCONNECT_FRAME = b"\xe0\x00"
