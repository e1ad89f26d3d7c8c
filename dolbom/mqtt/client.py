"""A small asyncio MQTT 3.1.1 client built on ``asyncio.Protocol``.

Why not paho/aiomqtt here: ingest must hold each PUBACK until the message is
durable (InfluxDB or the disk spool) and send them in order, at tens of
thousands of messages per second on one core; the simulator and the benchmark
open hundreds of device connections with their own credentials in one event
loop. Parsing whole TCP reads in one pass, with acks under the caller's
control, serves both. Reconnecting is the caller's job (see ``reconnecting``):
a Client is one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from dolbom.mqtt import packets
from dolbom.mqtt.errors import ConnectionLost, ConnectRefused, MqttError, ProtocolError

_UNPACK_H = struct.Struct("!H").unpack_from
_T = TypeVar("_T")


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


# Frames dispatched per event-loop callback (see _Protocol._dispatch_buffer).
FRAMES_PER_SLICE = 256


class _Protocol(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client
        self.buf = bytearray()
        self._sliced = False  # a continuation of the buffer is scheduled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client._transport = transport  # type: ignore[assignment]
        self.client._pause_reasons.clear()  # a new connection starts reading

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self._sliced:  # else the scheduled continuation takes it
            self._dispatch_buffer()

    def _continue(self) -> None:
        self._sliced = False
        if self.client._transport is None or self.client._transport.is_closing():
            return
        self._dispatch_buffer()
        if not self._sliced:
            self.client.resume_reading("slice")

    def _dispatch_buffer(self) -> None:
        """Dispatch the complete frames in the buffer, at most FRAMES_PER_SLICE at a time.

        One socket read can hold thousands of messages; dispatching them all in one go
        would hold the event loop for as long, and with it every other connection of the
        process (the alerts service's life-safety session shares a loop with its
        stream). The rest waits, reading paused, until the loop has run other callbacks.
        """
        buf = self.buf
        pos = 0
        end = len(buf)
        client = self.client
        frames = 0
        try:
            while end - pos >= 2:
                if frames == FRAMES_PER_SLICE:
                    self._sliced = True
                    client.pause_reading("slice")
                    asyncio.get_running_loop().call_soon(self._continue)
                    break
                frames += 1
                header = buf[pos]
                i = pos + 1
                length = shift = 0
                complete = False
                while i < end:  # remaining length: 1-4 bytes of 7 bits
                    b = buf[i]
                    i += 1
                    length |= (b & 0x7F) << shift
                    if not b & 0x80:
                        complete = True
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("malformed remaining length")
                if not complete or end - i < length:
                    break  # wait for the rest of the frame
                client._dispatch(header, bytes(buf[i : i + length]))
                pos = i + length
        except MqttError as e:
            client._fail(e)
            return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._fail(ConnectionLost(f"connection lost: {exc or 'closed by broker'}"))

    def pause_writing(self) -> None:
        self.client._can_write.clear()

    def resume_writing(self) -> None:
        self.client._can_write.set()


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
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
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
        self._pids = itertools.cycle(range(1, 65536))
        self._closed: asyncio.Future[None] | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self._last_tx = 0.0
        self.session_present = False

    # -- lifecycle ---------------------------------------------------------
    async def connect(self, timeout: float = 10.0) -> bool:
        """Open the connection; returns whether the broker kept a session."""
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._connack = loop.create_future()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self), self.host, self.port), timeout
            )
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
        pid = next(self._pids)
        body = await self._request(pid, packets.subscribe(pid, filters), timeout)
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
        pid = next(self._pids)
        await self._drain()
        await self._request(pid, packets.publish(topic, payload, 1, retain, pid), timeout)

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 0,
                       retain: bool = False) -> asyncio.Future[bytes] | None:
        """Queue a publish without waiting; QoS 1 returns a future set at PUBACK."""
        if qos == 0:
            self._write(packets.publish(topic, payload, 0, retain))
            return None
        pid = next(self._pids)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[pid] = fut
        self._write(packets.publish(topic, payload, 1, retain, pid))
        return fut

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
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self._transport is not None \
                and not self._transport.is_closing():
            self._transport.resume_reading()

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

    async def _request(self, pid: int, frame: bytes, timeout: float) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[pid] = fut
        try:
            self._write(frame)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise ConnectionLost("broker did not answer in time") from None
        finally:
            self._pending.pop(pid, None)

    def _dispatch(self, header: int, body: bytes) -> None:
        self._last_rx = asyncio.get_running_loop().time()
        ptype = header & 0xF0
        if ptype == packets.PUBLISH:
            qos = (header >> 1) & 0x03
            tlen = (body[0] << 8) | body[1]
            topic = body[2 : 2 + tlen].decode("utf-8", "replace")
            pos = 2 + tlen
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
            (pid,) = _UNPACK_H(body, 0)
            fut = self._pending.pop(pid, None)
            if fut is not None and not fut.done():
                fut.set_result(body)
        elif ptype == packets.CONNACK:
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
        if now - self._last_rx > self.keepalive * 1.5:
            self._fail(ConnectionLost("broker stopped answering (keepalive)"))
            return
        with contextlib.suppress(MqttError):
            self._write(packets.PINGREQ_FRAME)
        self._ping_handle = loop.call_later(self.keepalive / 2, self._keepalive_tick)

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
        if self._closed is not None and not self._closed.done():
            if isinstance(exc, ConnectionLost) and str(exc) == "disconnected":
                self._closed.set_result(None)
            else:
                self._closed.set_exception(exc)
                self._closed.exception()
        self._queue_event.set()


class Backoff:
    """Capped, jittered exponential backoff ("full jitter")."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0) -> None:
        self.initial, self.cap = initial, cap
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


async def retry_forever(
    attempt: Callable[[], Awaitable[_T]],
    backoff: Backoff,
    on_error: Callable[[Exception, float], None] | None = None,
) -> _T:
    """Run ``attempt`` until it succeeds, sleeping with backoff after each retryable error.

    A refused CONNECT for bad credentials or rights is not retryable: raised at once.
    """
    while True:
        try:
            result = await attempt()
        except MqttError as e:
            if isinstance(e, ConnectRefused) and not e.retryable:
                raise
            delay = backoff.next_delay()
            if on_error is not None:
                on_error(e, delay)
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        return result
