"""A TCP fault proxy on loopback: sits between clients and a real server (broker,
InfluxDB, a webhook receiver) and injects network faults on command (TESTPLAN B0).

Modes, switched at any time, for every connection through the proxy:

    pass       bytes flow as they come
    delay      each chunk is held ``ms`` (+ up to ``jitter_ms``) before it is sent on;
               order is kept, and what a client sent before it hung up is still
               delivered (a request the client gave up on may still reach the server)
    blackhole  a silent partition: sockets stay open, nothing is forwarded and nothing
               is lost: held bytes flow again on ``heal()``, as TCP would retransmit
               them; new connections are accepted and hang
    reset      every connection, open or new, is reset (RST, not FIN)
    throttle   at most ``bytes_per_s`` in each direction (a slow link, a slow reader)

Bounded: the proxy closes itself (and every connection) after ``lifetime_s``, and it
never listens anywhere but 127.0.0.1 nor forwards anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 65536
QUEUED_CHUNKS = 64
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Fault:
    mode: str = "pass"  # pass | delay | blackhole | reset | throttle
    ms: float = 0.0
    jitter_ms: float = 0.0
    bytes_per_s: float = 0.0


@dataclass
class Counters:
    accepted: int = 0
    reset: int = 0
    up_bytes: int = 0  # client -> server, forwarded
    down_bytes: int = 0  # server -> client, forwarded


@dataclass(eq=False)  # kept in a set, by identity
class _Conn:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: SO_LINGER on, zero timeout, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1",
                 lifetime_s: float = 300.0,
                 on_up: Callable[[bytes], None] | None = None) -> None:
        if upstream_host not in LOOPBACK:
            raise ValueError(f"the fault proxy forwards to loopback only, not {upstream_host}")
        self.upstream = (upstream_host, upstream_port)
        self.lifetime_s = lifetime_s
        self.on_up = on_up  # sees every chunk a client sends (to count requests)
        self.fault = Fault()
        self.counters = Counters()
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._conns: set[_Conn] = set()
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None

    # -- faults -------------------------------------------------------------
    def heal(self) -> None:
        """Back to ``pass``: held bytes flow again."""
        self.fault = Fault()
        self._flowing.set()

    def delay(self, ms: float, jitter_ms: float = 0.0) -> None:
        self.fault = Fault("delay", ms=ms, jitter_ms=jitter_ms)
        self._flowing.set()

    def blackhole(self) -> None:
        self.fault = Fault("blackhole")
        self._flowing.clear()

    def throttle(self, bytes_per_s: float) -> None:
        self.fault = Fault("throttle", bytes_per_s=bytes_per_s)
        self._flowing.set()

    def reset(self) -> None:
        """Reset every open connection, and every new one until ``heal()``."""
        self.fault = Fault("reset")
        self._flowing.set()
        for c in list(self._conns):
            self._kill(c)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # -- lifecycle ----------------------------------------------------------
    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._reaper = asyncio.create_task(self._expire(), name="fault-proxy-lifetime")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _expire(self) -> None:
        await asyncio.sleep(self.lifetime_s)
        await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for c in list(self._conns):
            self._kill(c)
        if self._reaper is not None and self._reaper is not asyncio.current_task():
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper

    def _kill(self, c: _Conn) -> None:
        self.counters.reset += 1
        for w in (c.client, c.server):
            if w is not None:
                _rst(w)
        for t in c.tasks:
            t.cancel()
        self._conns.discard(c)

    # -- forwarding ---------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.accepted += 1
        conn = _Conn(writer)
        if self.fault.mode == "reset":
            self._kill(conn)
            return
        self._conns.add(conn)
        try:
            await self._flowing.wait()  # a partition: the connection hangs, unanswered
            if conn not in self._conns:
                return
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            self._kill(conn)
            return
        conn.server = up_w
        if conn not in self._conns:  # reset while connecting
            _rst(up_w)
            return
        conn.tasks = [
            asyncio.create_task(self._pump(reader, up_w, conn, up=True), name="proxy-up"),
            asyncio.create_task(self._pump(up_r, writer, conn, up=False), name="proxy-down"),
        ]
        await asyncio.gather(*conn.tasks, return_exceptions=True)
        self._conns.discard(conn)
        for w in (writer, up_w):
            with contextlib.suppress(OSError, RuntimeError):
                w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: _Conn,
                    *, up: bool) -> None:
        """Copy one direction; queued (delayed) bytes are still sent after an EOF."""
        # Bounded: while nothing flows, reading stops too and the sender's TCP buffers
        # fill, as in a real partition.
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUED_CHUNKS)
        sender = asyncio.create_task(self._send(queue, dst, up=up), name="proxy-send")
        last_due = 0.0
        try:
            while True:
                try:
                    data = await src.read(CHUNK)
                except OSError:
                    break
                if not data or sender.done():  # EOF, or the other side is gone
                    break
                if up and self.on_up is not None:
                    self.on_up(data)
                f = self.fault
                due = time.monotonic()
                if f.mode == "delay":
                    due += (f.ms + random.uniform(0, f.jitter_ms)) / 1000
                last_due = max(last_due, due)  # jitter never reorders the stream
                await queue.put((last_due, data))
            if not sender.done():
                await queue.put(None)
                await sender
        finally:
            if not sender.done():
                sender.cancel()

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes] | None],
                    dst: asyncio.StreamWriter, *, up: bool) -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()
            f = self.fault
            try:
                if f.mode == "throttle" and f.bytes_per_s > 0:
                    step = max(1, int(f.bytes_per_s / 20))
                    for i in range(0, len(data), step):
                        dst.write(data[i:i + step])
                        await dst.drain()
                        await asyncio.sleep(len(data[i:i + step]) / f.bytes_per_s)
                else:
                    dst.write(data)
                    await dst.drain()
            except (OSError, RuntimeError):
                return
            if up:
                self.counters.up_bytes += len(data)
            else:
                self.counters.down_bytes += len(data)
        with contextlib.suppress(OSError, RuntimeError):
            if dst.can_write_eof():
                dst.write_eof()
