"""The load generator: its own process (its own GIL), a few raw MQTT connections.

The parent drives it over a pipe, one rate step at a time::

    gen = LoadGen.start(config)      # spawns the process; it connects as ``loadgen``
    ready = gen.prepare(plan)        # encodes the whole step (not timed)
    offered = gen.run(start_at)      # sends it, paced, from a whole second on
    gen.stop()

Sending a slice (1/20 s) is one ``bytes.replace`` (``frames.stamp``) and one
write per connection, so the generator's CPU is mostly the kernel's copy.
It honours TCP backpressure: when the broker cannot take the bytes, the
generator falls behind its schedule, and that lag is reported (a step whose
generator fell behind was not offered at its rate, so it is not sustained).
Each connection counts its PUBACKs: every QoS 1 message must be acknowledged
by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import time
from dataclasses import dataclass
from typing import Any

from dolbom.bench.errors import BenchError
from dolbom.bench.fleet import Fleet
from dolbom.bench.frames import EncodedStep, Encoder, StepPlan, stamp
from dolbom.mqtt import packets

WRITE_HIGH_WATER = 4 * 1024 * 1024
PING_EVERY_S = 15.0
ACK_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class LoadGenConfig:
    host: str
    port: int
    username: str
    password: str
    fleet: Fleet
    connections: int = 4
    prefix: str = "care/v1"
    boot: int = 1
    telemetry_qos: int = 1
    slices_per_s: int = 20


@dataclass(frozen=True, slots=True)
class Prepared:
    messages: int
    per_measurement: dict[str, int]
    per_type: dict[str, int]
    nbytes: int
    encode_s: float


@dataclass(frozen=True, slots=True)
class Offered:
    messages: int
    start_at: float  # epoch s: the step's first second
    last_write_at: float  # epoch s: the last slice handed to the kernel
    flushed_at: float  # epoch s: every byte left our buffers
    acked_at: float | None  # epoch s: the broker acknowledged every QoS 1 message
    max_lag_s: float  # how far behind its schedule the generator ever was
    qos1: int
    acked: int

    @property
    def offered_rate(self) -> float:
        """Messages per second actually achieved (until the last byte left)."""
        return self.messages / max(self.flushed_at - self.start_at, 1e-9)


class _Link(asyncio.Protocol):
    """One MQTT connection: writes pre-encoded frames, counts PUBACKs."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.acks = 0
        self.sent_qos1 = 0
        self.writable = asyncio.Event()
        self.writable.set()
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        # Everything the broker sends us is short (CONNACK, PUBACK, PINGRESP):
        # remaining length fits one byte.
        while end - pos >= 2:
            n = 2 + buf[pos + 1]
            if end - pos < n:
                break
            ptype = buf[pos] & 0xF0
            if ptype == packets.PUBACK:
                self.acks += 1
            elif ptype == packets.CONNACK and not self.connack.done():
                self.connack.set_result(buf[pos + 3])
            pos += n
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(BenchError(f"broker closed the connection: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise BenchError("load generator lost its broker connection")
        self.transport.write(data)

    def pending(self) -> int:
        return 0 if self.transport is None else self.transport.get_write_buffer_size()


class _Generator:
    def __init__(self, cfg: LoadGenConfig) -> None:
        self.cfg = cfg
        self.links: list[_Link] = []
        self.encoder = Encoder(cfg.fleet, prefix=cfg.prefix, boot=cfg.boot,
                               telemetry_qos=cfg.telemetry_qos, connections=cfg.connections)
        self.step: EncodedStep | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.cfg.connections):
            _, link = await loop.create_connection(_Link, self.cfg.host, self.cfg.port)
            link.write(packets.connect(f"loadgen-{i}", 60, True, self.cfg.username,
                                       self.cfg.password))
            code = await asyncio.wait_for(link.connack, 10)
            if code:
                raise BenchError(f"broker refused the load generator (CONNACK {code})")
            self.links.append(link)

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY_S)
            for link in self.links:
                with contextlib.suppress(BenchError):
                    link.write(packets.PINGREQ_FRAME)

    def prepare(self, plan: StepPlan) -> Prepared:
        self.step = None  # let the previous step's bytes go first
        t = time.perf_counter()
        step = self.encoder.encode(plan)
        self.step = step
        return Prepared(plan.messages, step.per_measurement, step.per_type, step.nbytes,
                        time.perf_counter() - t)

    async def run(self, start_at: float) -> Offered:
        step = self.step
        if step is None:
            raise BenchError("run without prepare")
        self.step = None
        loop = asyncio.get_running_loop()
        links = self.links
        acks0 = [link.acks for link in links]
        # Wall clock to loop clock once; pacing then uses the monotonic loop clock.
        t0 = loop.time() + (start_at - time.time())
        nslices = step.plan.slices_per_s
        second0 = int(start_at)
        max_lag = 0.0
        qos1 = step.plan.messages - (0 if self.cfg.telemetry_qos else
                                     step.per_measurement.get("reading", 0))
        for k, second in enumerate(step.chunks):
            for s, per_conn in enumerate(second):
                due = t0 + k + (s + 1) / nslices
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                for c, chunk in enumerate(per_conn):
                    link = links[c]
                    if not link.writable.is_set():
                        await link.writable.wait()  # the broker pushes back
                    link.write(stamp(chunk, second0 + k))
                max_lag = max(max_lag, loop.time() - due)
            second.clear()  # free the sent bytes as we go
        last_write = time.time()
        # Polling on purpose: asyncio has no event for "write buffer empty".
        while any(link.pending() for link in links):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        flushed = time.time()
        deadline = loop.time() + ACK_WAIT_S
        acked_at: float | None = None
        while loop.time() < deadline:
            if sum(link.acks - a for link, a in zip(links, acks0, strict=True)) >= qos1:
                acked_at = time.time()
                break
            await asyncio.sleep(0.01)
        acked = sum(link.acks - a for link, a in zip(links, acks0, strict=True))
        return Offered(step.plan.messages, start_at, last_write, flushed, acked_at, max_lag,
                       qos1, acked)

    async def close(self) -> None:
        for link in self.links:
            if link.transport is not None and not link.transport.is_closing():
                link.transport.write(packets.DISCONNECT_FRAME)
                link.transport.close()


async def _serve(conn: multiprocessing.connection.Connection, cfg: LoadGenConfig) -> None:
    gen = _Generator(cfg)
    loop = asyncio.get_running_loop()
    try:
        await gen.connect()
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("connected", cfg.connections))
    async with asyncio.TaskGroup() as tg:
        ping = tg.create_task(gen.pinger(), name="loadgen-ping")
        try:
            while True:
                cmd: tuple[Any, ...] = await loop.run_in_executor(None, conn.recv)
                try:
                    if cmd[0] == "prepare":
                        conn.send(("prepared", gen.prepare(cmd[1])))
                    elif cmd[0] == "run":
                        conn.send(("ran", await gen.run(cmd[1])))
                    elif cmd[0] == "stop":
                        break
                except Exception as e:
                    conn.send(("error", f"{type(e).__name__}: {e}"))
        finally:
            ping.cancel()
            await gen.close()


def _child(conn: multiprocessing.connection.Connection, cfg: LoadGenConfig) -> None:
    # The parent is gone or told us to stop: nothing is left to report to.
    with contextlib.suppress(Exception, KeyboardInterrupt):
        asyncio.run(_serve(conn, cfg))


class LoadGen:
    """The parent's handle on the load generator process."""

    def __init__(self, process: multiprocessing.process.BaseProcess,
                 conn: multiprocessing.connection.Connection) -> None:
        self.process = process
        self.conn = conn

    @classmethod
    def start(cls, cfg: LoadGenConfig, timeout: float = 30.0) -> LoadGen:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child, cfg), name="dolbom-loadgen", daemon=True)
        proc.start()
        child.close()
        gen = cls(proc, parent)
        gen._expect("connected", timeout)
        return gen

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def _expect(self, what: str, timeout: float | None) -> Any:
        if not self.conn.poll(timeout):
            raise BenchError(f"load generator did not answer ({what}) in time")
        try:
            tag, value = self.conn.recv()
        except EOFError:
            raise BenchError("load generator exited") from None
        if tag == "error":
            raise BenchError(f"load generator: {value}")
        if tag != what:
            raise BenchError(f"load generator answered {tag!r}, expected {what!r}")
        return value

    def prepare(self, plan: StepPlan) -> Prepared:
        self.conn.send(("prepare", plan))
        result: Prepared = self._expect("prepared", None)
        return result

    def run(self, start_at: float) -> Offered:
        self.conn.send(("run", start_at))
        result: Offered = self._expect("ran", None)
        return result

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(("stop",))
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.conn.close()
