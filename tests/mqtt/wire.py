"""Test helpers: drive the client's protocol object with bytes, and a raw loopback peer.

Mosquitto never sends a malformed or truncated frame and cannot be told to stay silent
while our socket holds unread bytes, so those cases are played by a raw TCP peer that
writes exact bytes; everything else is tested against the real broker.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, TypeVar

from dolbom.mqtt import Client
from dolbom.mqtt.reader import FrameReader

C = TypeVar("C", bound=Client)

CONNACK_OK = b"\x20\x02\x00\x00"
PINGRESP = b"\xd0\x00"


class Transport(asyncio.Transport):
    """Collects what the client writes; reading is controlled by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def wired(**kw: Any) -> tuple[Client, FrameReader, Transport]:
    """A client in the connected state whose protocol object the test feeds directly.

    Must be called with a running event loop.
    """
    return wired_as(Client, **kw)


def wired_as(cls: type[C], **kw: Any) -> tuple[C, FrameReader, Transport]:
    """``wired`` for a subclass of Client."""
    c = cls("127.0.0.1", 1, "t", **kw)
    loop = asyncio.get_running_loop()
    c._closed = loop.create_future()
    c._last_rx = loop.time()
    proto = FrameReader(c)
    t = Transport()
    proto.connection_made(t)
    return c, proto, t


async def settle(proto: FrameReader, rounds: int = 10_000) -> None:
    """Let scheduled slice continuations run (bounded by count)."""
    for _ in range(rounds):
        if not proto._sliced:
            return
        await asyncio.sleep(0)
    raise AssertionError("dispatch never finished")


async def connected_to_peer(**kw: Any) -> tuple[Client, socket.socket]:
    """A Client connected to a raw loopback peer that answered CONNACK.

    The peer socket is returned blocking (5 s timeout): ``sendall`` puts bytes in the
    client's socket buffer at once, without the event loop running.
    """
    loop = asyncio.get_running_loop()
    srv = socket.create_server(("127.0.0.1", 0))
    srv.setblocking(False)
    c = Client("127.0.0.1", srv.getsockname()[1], "t", **kw)

    async def accept() -> socket.socket:
        conn, _ = await loop.sock_accept(srv)
        await loop.sock_recv(conn, 4096)  # CONNECT
        await loop.sock_sendall(conn, CONNACK_OK)
        return conn

    task = asyncio.create_task(accept())
    try:
        await c.connect(timeout=5)
        conn = await asyncio.wait_for(task, 5)
    finally:
        srv.close()
    conn.setblocking(True)
    conn.settimeout(5)
    return c, conn
