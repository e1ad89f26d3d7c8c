"""A small asyncio MQTT 3.1.1 client built on ``asyncio.Protocol``.

Why not paho/aiomqtt here: ingest must hold each PUBACK until the message is
durable (InfluxDB or the disk spool) and send them in order, at tens of
thousands of messages per second on one core; the simulator and the benchmark
open hundreds of device connections with their own credentials in one event
loop. Parsing whole TCP reads in one pass (``dolbom.mqtt.reader``), with acks
under the caller's control, serves both. A Client is one connection; keeping one
connected is ``dolbom.mqtt.session.MqttSession``'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from dolbom.mqtt import packets
from dolbom.mqtt.errors import (
    ConnectionLost,
    ConnectRefused,
    MqttError,
    PlaintextRefused,
    ProtocolError,
    TlsError,
    TooManyInFlight,
)
from dolbom.mqtt.packets import Received, Will
from dolbom.mqtt.reader import FrameReader
from dolbom.mqtt.tls import is_loopback

_UNPACK_H = struct.Struct("!H").unpack_from


# Packet identifiers are 1..65535 (MQTT 3.1.1 §2.3.1); one in flight is never reused.
MAX_PID = 65535


class Client:
    """One MQTT connection. Use ``async with Client(...) as c`` or connect()/disconnect()."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        clean_session: bool = True,
        will: Will | None = None,
        on_message: Callable[[Received], None] | None = None,
        queue_high: int = 10_000,
        ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        # TLS (dolbom.mqtt.tls.client_context): the broker's certificate is checked
        # against ``server_hostname``, by default ``host``.
        self.ssl, self.server_hostname = ssl, server_hostname
        self.username, self.password = username, password
        self.keepalive, self.clean_session, self.will = keepalive, clean_session, will
        self._on_message = on_message
        self._queue: deque[Received] = deque()
        self._queue_high = queue_high
        self._queue_event = asyncio.Event()
        self._transport: asyncio.Transport | None = None
        self._paused = False  # the message queue is full (``messages`` mode)
        self._pause_reasons: set[str] = set()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._connack: asyncio.Future[bool] | None = None
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._last_pid = 0
        self._pid_freed = asyncio.Event()
        self._closed: asyncio.Future[None] | None = None
        self._clean_close = False  # disconnect() was called: the end is not an error
        self._ping_handle: asyncio.TimerHandle | None = None
        self._keepalive_suspect = False  # a timeout seemed due; judged after one more read
        self._last_rx = 0.0
        self._last_tx = 0.0
        self.session_present = False

    # -- lifecycle ---------------------------------------------------------
    async def connect(self, timeout: float = 10.0) -> bool:
        """Open the connection; returns whether the broker kept a session."""
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._clean_close = False
        self._keepalive_suspect = False
        if self.ssl is None and (self.username or self.password) and not is_loopback(self.host):
            # DESIGN.md §2: plaintext only on loopback. The settings refuse this at
            # start-up; this is the last line for callers that build a Client by hand.
            raise PlaintextRefused(
                f"refusing to send MQTT credentials in plaintext to {self.host}:{self.port}"
                " (not loopback): connect with TLS")
        self._connack = loop.create_future()
        tls: dict[str, Any] = {}
        if self.ssl is not None:
            tls = {"ssl": self.ssl, "server_hostname": self.server_hostname or self.host,
                   "ssl_handshake_timeout": timeout}
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: FrameReader(self), self.host, self.port, **tls),
                timeout,
            )
        except ssl.SSLError as e:
            reason = getattr(e, "verify_message", None) or e.reason or str(e)
            raise TlsError(f"TLS with broker {self.host}:{self.port} failed: {reason}") from e
        except (OSError, TimeoutError) as e:
            raise ConnectionLost(f"cannot reach broker {self.host}:{self.port}: {e}") from e
        will = None
        if self.will is not None:
            will = (self.will.topic, self.will.payload, self.will.qos, self.will.retain)
        self._write(
            packets.connect(
                self.client_id, self.keepalive, self.clean_session, self.username,
                self.password, will,
            )
        )
        try:
            self.session_present = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except TimeoutError:
            self._abort()
            raise ConnectionLost("no CONNACK from broker") from None
        except MqttError:
            self._abort()
            raise
        self._last_rx = self._last_tx = loop.time()
        if self.keepalive:
            self._ping_handle = loop.call_later(self.keepalive / 2, self._keepalive_tick)
        return self.session_present

    async def disconnect(self) -> None:
        """Clean DISCONNECT: the broker discards the Will."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(packets.DISCONNECT_FRAME)
            self._transport.close()
        self._clean_close = True
        self._fail(ConnectionLost("disconnected"))

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the Will."""
        self._abort()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    @property
    def connected(self) -> bool:
        return self._closed is not None and not self._closed.done()

    async def wait_closed(self) -> None:
        """Return when the connection ends; raise ConnectionLost if it was not clean."""
        assert self._closed is not None, "not connected"
        await asyncio.shield(self._closed)

    # -- operations ----------------------------------------------------------
    async def subscribe(self, filters: list[tuple[str, int]], timeout: float = 10.0) -> list[int]:
        pid = await self._acquire_pid(timeout)
        body = await self._request(pid, packets.subscribe(pid, filters), timeout)
        if len(body) < 3:
            raise ProtocolError("SUBACK without return codes")
        granted = list(body[2:])
        if any(g == 0x80 for g in granted):
            raise MqttError(f"subscription refused by broker: {filters} -> {granted}")
        return granted

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                      timeout: float = 10.0) -> None:
        """Publish; for QoS 1, return when the broker's PUBACK arrives."""
        if qos == 0:
            await self._drain()
            self._write(packets.publish(topic, payload, 0, retain))
            return
        await self._drain()
        pid = await self._acquire_pid(timeout)
        await self._request(pid, packets.publish(topic, payload, 1, retain, pid), timeout)

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 0,
                       retain: bool = False) -> asyncio.Future[bytes] | None:
        """Queue a publish without waiting; QoS 1 returns a future set at PUBACK.

        Raises TooManyInFlight when all 65535 packet ids await their acknowledgement.
        """
        if qos == 0:
            self._write(packets.publish(topic, payload, 0, retain))
            return None
        pid = self._take_pid()
        if pid is None:
            raise TooManyInFlight(f"{MAX_PID} packets await acknowledgement")
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[pid] = fut
        try:
            self._write(packets.publish(topic, payload, 1, retain, pid))
        except MqttError:
            self._release(pid)
            raise
        return fut

    def publish_many_nowait(self, msgs: Iterable[tuple[str, bytes, bool]]
                            ) -> list[asyncio.Future[bytes]]:
        """QoS 1 publishes of ``(topic, payload, retain)`` in one socket write (one TLS
        record, one system call for a batch); a future per message, set at its PUBACK.

        Raises TooManyInFlight, sending none of them, when the packet ids run out.
        """
        loop = asyncio.get_running_loop()
        pids: list[int] = []
        futs: list[asyncio.Future[bytes]] = []
        frames: list[bytes] = []
        try:
            for topic, payload, retain in msgs:
                pid = self._take_pid()
                if pid is None:
                    raise TooManyInFlight(f"{MAX_PID} packets await acknowledgement")
                fut: asyncio.Future[bytes] = loop.create_future()
                self._pending[pid] = fut
                pids.append(pid)
                futs.append(fut)
                frames.append(packets.publish(topic, payload, 1, retain, pid))
            if frames:
                self._write(b"".join(frames))
        except MqttError:
            for pid in pids:
                self._release(pid)
            raise
        return futs

    def ack(self, msg: Received) -> None:
        """PUBACK a QoS 1 message. MQTT requires acks in the order of receipt."""
        if msg.qos == 1 and self._transport is not None and not self._transport.is_closing():
            self._write(packets.puback(msg.pid))

    def ack_many(self, msgs: Iterable[Received]) -> None:
        """PUBACK many QoS 1 messages, in order, in one socket write (a batch made durable).

        Acks must follow the order of receipt, which one write of them in order keeps.
        """
        t = self._transport
        if t is None or t.is_closing():
            return
        data = b"".join(packets.puback(m.pid) for m in msgs if m.qos == 1)
        if data:
            self._write(data)

    def pause_reading(self, reason: str) -> None:
        """Stop reading from the broker (TCP backpressure) until every reason is resumed."""
        if not self._pause_reasons and self._transport is not None \
                and not self._transport.is_closing():
            self._transport.pause_reading()
        self._pause_reasons.add(reason)

    def resume_reading(self, reason: str) -> None:
        was_paused = bool(self._pause_reasons)
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self._transport is not None \
                and not self._transport.is_closing():
            self._transport.resume_reading()
            if was_paused and self._closed is not None:
                # Silence is counted only while we read: the broker gets a full
                # keepalive window from now.
                self._last_rx = max(self._last_rx, asyncio.get_running_loop().time())

    async def messages(self) -> AsyncIterator[Received]:
        """Messages as they arrive (when no ``on_message`` callback was given)."""
        while True:
            while self._queue:
                msg = self._queue.popleft()
                if self._paused and len(self._queue) < self._queue_high // 2:
                    self._paused = False
                    self.resume_reading("queue")
                yield msg
            if self._closed is not None and self._closed.done():
                self._closed.result()  # raises ConnectionLost
                return
            self._queue_event.clear()
            waiter: asyncio.Future[Any] = asyncio.ensure_future(self._queue_event.wait())
            assert self._closed is not None
            await asyncio.wait([waiter, self._closed], return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()

    # -- internals -----------------------------------------------------------
    def _write(self, data: bytes) -> None:
        t = self._transport
        if t is None or t.is_closing():
            raise ConnectionLost("not connected")
        t.write(data)
        self._last_tx = asyncio.get_running_loop().time()

    async def _drain(self) -> None:
        if not self._can_write.is_set():
            assert self._closed is not None
            waiter: asyncio.Future[Any] = asyncio.ensure_future(self._can_write.wait())
            await asyncio.wait([waiter, self._closed], return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
            if self._closed.done():
                self._closed.result()

    def _take_pid(self) -> int | None:
        """The next packet id not awaiting its PUBACK/SUBACK/UNSUBACK; None if all are."""
        pending = self._pending
        if len(pending) >= MAX_PID:
            return None
        pid = self._last_pid
        while True:
            pid = pid % MAX_PID + 1
            if pid not in pending:
                self._last_pid = pid
                return pid

    async def _acquire_pid(self, timeout: float) -> int:
        """A free packet id, waiting up to ``timeout`` for one when all are in flight."""
        pid = self._take_pid()
        if pid is not None:
            return pid
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pid is None:
            left = deadline - loop.time()
            if left <= 0:
                raise TooManyInFlight(f"{MAX_PID} packets await acknowledgement")
            self._pid_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pid_freed.wait(), left)
            if self._closed is not None and self._closed.done():
                raise ConnectionLost("not connected")
            pid = self._take_pid()
        return pid

    async def _request(self, pid: int, frame: bytes, timeout: float) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[pid] = fut
        try:
            self._write(frame)
        except MqttError:
            self._release(pid)
            raise
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise ConnectionLost("broker did not answer in time") from None
        # A request that timed out or was cancelled keeps its id busy (its future, now
        # cancelled, stays in _pending) until the late acknowledgement arrives or the
        # connection ends: reusing the id earlier would let that late ack settle a
        # different message.

    def _release(self, pid: int) -> asyncio.Future[bytes] | None:
        fut = self._pending.pop(pid, None)
        if fut is not None:
            self._pid_freed.set()
        return fut

    def _dispatch(self, header: int, body: bytes) -> None:
        """Handle one frame; a frame that does not fit its type raises ProtocolError."""
        ptype = header & 0xF0
        n = len(body)
        if ptype == packets.PUBLISH:
            qos = (header >> 1) & 0x03
            if qos == 3:
                raise ProtocolError("PUBLISH with QoS 3")
            if n < 2:
                raise ProtocolError("PUBLISH too short for its topic length")
            tlen = (body[0] << 8) | body[1]
            pos = 2 + tlen
            if n < pos + (2 if qos else 0):
                raise ProtocolError("PUBLISH shorter than its topic and packet id")
            topic = body[2:pos].decode("utf-8", "replace")
            pid = 0
            if qos:
                pid = (body[pos] << 8) | body[pos + 1]
                pos += 2
            msg = Received(topic, body[pos:], qos, bool(header & 1), pid, bool(header & 8))
            if self._on_message is not None:
                self._on_message(msg)
            else:
                self._queue.append(msg)
                self._queue_event.set()
                if not self._paused and len(self._queue) >= self._queue_high:
                    self._paused = True
                    self.pause_reading("queue")
        elif ptype in (packets.PUBACK, packets.SUBACK, packets.UNSUBACK):
            if n < 2 or (ptype != packets.SUBACK and n != 2):
                raise ProtocolError(f"packet 0x{ptype:02x} of {n} bytes")
            (pid,) = _UNPACK_H(body, 0)
            fut = self._release(pid)
            if fut is not None and not fut.done():
                fut.set_result(body)
        elif ptype == packets.CONNACK:
            if n != 2:
                raise ProtocolError(f"CONNACK of {n} bytes")
            if self._connack is not None and not self._connack.done():
                code = body[1]
                if code:
                    self._connack.set_exception(ConnectRefused(code))
                else:
                    self._connack.set_result(bool(body[0] & 1))
        elif ptype == packets.PINGRESP:
            pass
        else:
            raise ProtocolError(f"unexpected packet type 0x{ptype:02x}")

    def _keepalive_tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._pause_reasons:
            # We are not reading, so silence proves nothing about the broker: what it
            # sent waits in the socket. Keep pinging so the broker keeps us.
            self._keepalive_suspect = False
        elif now - self._last_rx > self.keepalive * 1.5:
            if self._keepalive_suspect:
                self._fail(ConnectionLost("broker stopped answering (keepalive)"))
                return
            # Looks dead, but this callback may be the first thing run after the loop
            # stalled (SIGSTOP, a long GC pause), with the broker's bytes still unread.
            # Judge again once the loop has polled the socket: asyncio runs the I/O
            # callbacks of an iteration before the timers that became due in it.
            self._keepalive_suspect = True
            self._ping_handle = loop.call_later(0, self._keepalive_tick)
            return
        self._keepalive_suspect = False
        with contextlib.suppress(MqttError):
            self._write(packets.PINGREQ_FRAME)
        # Ping every keepalive/2, but look again exactly when the silence since the last
        # read would reach 1.5 x keepalive: on the ping period alone a silent link (a
        # half-open TCP connection) was noticed only after up to 2 x keepalive.
        # (While reading is paused, silence is not judged: the ping period only.)
        delay = self.keepalive / 2
        if not self._pause_reasons:
            delay = min(delay, max(self._last_rx + self.keepalive * 1.5 - now, 0) + 0.01)
        self._ping_handle = loop.call_later(delay, self._keepalive_tick)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._fail(ConnectionLost("aborted"))

    def _fail(self, exc: MqttError) -> None:
        if self._ping_handle is not None:
            self._ping_handle.cancel()
            self._ping_handle = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(exc)
            self._connack.exception()  # mark retrieved
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()
        self._pending.clear()
        self._pid_freed.set()  # waiters for an id wake up and see the end
        if self._closed is not None and not self._closed.done():
            if self._clean_close:
                self._closed.set_result(None)
            else:
                self._closed.set_exception(exc)
                self._closed.exception()
        self._queue_event.set()
