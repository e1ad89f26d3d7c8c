# A small asyncio MQTT 3.1.1 client for the node (ideas from peterhinch's mqtt_as,
# written anew): one TCP stream, a reader task, keepalive pings, QoS 0/1 publish
# with PUBACK wait and DUP retransmission, a retained Last Will, clean DISCONNECT.
# It never blocks the event loop: every wait is a timeout on asyncio, so sensor
# tasks run while the broker is slow or gone. Reconnecting is the caller's loop.
# TLS (DESIGN.md §2): given the CA's PEM from the device config ("ca"), the link is
# TLS and the broker's certificate must chain to that CA and name the host.
import asyncio
import struct

import hw


class MQTTError(OSError):
    pass


def _vbi(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, user: str, password: str, keepalive: int, clean: bool,
                   will_topic: str, will_payload: bytes) -> bytes:
    flags = 0xC0 | 0x20 | 0x08 | 0x04  # user, password, will retain, will QoS 1, will
    if clean:
        flags |= 0x02
    var = b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", keepalive)
    body = (var + _str(client_id) + _str(will_topic) + _str(will_payload) + _str(user)
            + _str(password))
    return b"\x10" + _vbi(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int, retain: bool, pid: int,
                   dup: bool) -> bytes:
    h = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    t = _str(topic)
    n = len(t) + len(payload) + (2 if qos else 0)
    return (bytes((h,)) + _vbi(n) + t + (struct.pack("!H", pid) if qos else b"")
            + payload)


class Client:
    def __init__(self, client_id: str, host: str, port: int, user: str, password: str,
                 keepalive: int, will_topic: str, will_payload: bytes, on_message,
                 ca: str | bytes | None = None) -> None:
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.will_topic = will_topic
        self.will_payload = will_payload
        self.on_message = on_message  # (topic: str, payload: bytes) -> None, synchronous
        self.connected = False
        self.puback_timeout_ms = 5000
        self.retries = 2  # DUP retransmissions of a QoS 1 publish before giving up
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._pid = 0
        self._waiting: dict = {}  # pid -> asyncio.Event
        self._acked: set = set()  # pids whose PUBACK/SUBACK arrived
        self._down = asyncio.Event()
        self._tasks: list = []
        self._last_rx = 0
        self._last_tx = 0
        # TLS: the CA (None: plaintext); the broker's certificate must name the host.
        # Given as PEM text (the device config's "ca"), kept as its DER, the base64
        # between the "-----" lines: what mbedTLS loads, and 2/3 of the PEM's heap.
        # Text that is not PEM is kept as it is: each connect then fails saying why.
        if isinstance(ca, str):
            import binascii

            try:
                ca = binascii.a2b_base64(ca.split("-----")[2])
            except (ValueError, IndexError):
                pass
        self.ca = ca

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def connect(self, clean: bool = False, timeout_ms: int = 10000) -> None:
        self._down = asyncio.Event()
        try:
            r: asyncio.StreamReader
            w: asyncio.StreamWriter
            ctx = None
            if self.ca:
                # Trust only the config's CA. MicroPython's SSLContext starts at CERT_NONE
                # even for a client: without verify_mode any certificate would do (the
                # board stubs omit the property). mbedTLS 3 offers TLS 1.2 and 1.3 only.
                # The native `tls` module, not the `ssl` wrapper around it (~1 KB of heap
                # for as long as it is imported); its load_verify_locations takes the DER.
                import tls

                ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
                ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]
                ctx.load_verify_locations(self.ca)
            # With TLS, the handshake (certificate and host name checks) completes before
            # the CONNECT below leaves the device: a refused broker never sees the password.
            # (open_connection's ssl argument, MicroPython >= 1.23, is not in the stubs.)
            r, w = await asyncio.wait_for_ms(
                asyncio.open_connection(self.host, self.port, ctx),  # type: ignore[call-arg, arg-type]
                timeout_ms)
            self._r, self._w = r, w
            await self._write(connect_packet(self.client_id, self.user, self.password,
                                             self.keepalive, clean, self.will_topic,
                                             self.will_payload))
            hdr: bytes = await asyncio.wait_for_ms(r.readexactly(4), timeout_ms)
        except (OSError, ValueError, IndexError, asyncio.TimeoutError) as e:
            # ValueError: mbedTLS refused the broker's certificate, or "ca" is not a
            # certificate. The context is made per connection and dropped with it: nothing
            # TLS stays on the heap while offline, and a bad CA fails the link, not boot.
            self._close()
            raise MQTTError("connect: " + repr(e))
        if hdr[0] != 0x20 or hdr[1] != 2:
            self._close()
            raise MQTTError("connect: not a CONNACK")
        if hdr[3] != 0:
            self._close()
            # 4: bad user name or password, 5: not authorised (revoked device)
            raise MQTTError("connect: refused, code %d" % hdr[3])
        self.connected = True
        self._last_rx = self._last_tx = hw.ticks_ms()
        self._tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._pinger())]

    async def wait_down(self) -> None:
        await self._down.wait()

    async def _write(self, data: bytes) -> None:
        w = self._w
        if w is None:
            raise MQTTError("not connected")
        async with self._lock:
            w.write(data)
            await w.drain()
        self._last_tx = hw.ticks_ms()

    async def publish(self, topic: str, payload: bytes, qos: int = 0,
                      retain: bool = False) -> None:
        """QoS 0: sent. QoS 1: returns once the broker's PUBACK arrived; retransmits
        with DUP on timeout; raises MQTTError if the connection fails meanwhile."""
        if not self.connected:
            raise MQTTError("not connected")
        if qos == 0:
            await self._write(publish_packet(topic, payload, 0, retain, 0, False))
            return
        pid = self._next_pid()
        ev = asyncio.Event()
        self._waiting[pid] = ev
        try:
            for attempt in range(self.retries + 1):
                if not self.connected:
                    raise MQTTError("connection lost")
                await self._write(publish_packet(topic, payload, 1, retain, pid, attempt > 0))
                try:
                    # woken by PUBACK, or by the reader when the connection drops
                    await asyncio.wait_for_ms(ev.wait(), self.puback_timeout_ms)
                except asyncio.TimeoutError:
                    continue
                if pid in self._acked:
                    return
                raise MQTTError("connection lost")
            # The broker is not answering: treat the connection as dead.
            self._close()
            raise MQTTError("no PUBACK")
        finally:
            self._waiting.pop(pid, None)
            self._acked.discard(pid)

    async def subscribe(self, topics: list) -> None:
        pid = self._next_pid()
        body = struct.pack("!H", pid)
        for t in topics:
            body += _str(t) + b"\x01"
        ev = asyncio.Event()
        self._waiting[pid] = ev
        try:
            await self._write(b"\x82" + _vbi(len(body)) + body)
            await asyncio.wait_for_ms(ev.wait(), self.puback_timeout_ms)
        except asyncio.TimeoutError:
            self._close()
            raise MQTTError("no SUBACK")
        finally:
            self._waiting.pop(pid, None)
        if pid not in self._acked:
            raise MQTTError("connection lost")
        self._acked.discard(pid)

    async def disconnect(self) -> None:
        """Clean DISCONNECT: the broker discards the Will (it fires only on failure)."""
        if self.connected:
            try:
                await asyncio.wait_for_ms(self._write(b"\xe0\x00"), 2000)
            except (OSError, asyncio.TimeoutError):
                pass
        self._close()

    def _close(self) -> None:
        was = self.connected or self._w is not None
        self.connected = False
        for t in self._tasks:
            if t is not asyncio.current_task():
                t.cancel()
        self._tasks = []
        if self._w is not None:
            try:
                self._w.close()
            except OSError:
                pass
        self._r = self._w = None
        for ev in self._waiting.values():
            ev.set()  # wake publishers: they see connected == False
        if was:
            self._down.set()

    async def _read_packet(self):
        r = self._r
        if r is None:
            raise MQTTError("not connected")
        h = (await r.readexactly(1))[0]
        n = 0
        mult = 1
        while True:
            b = (await r.readexactly(1))[0]
            n += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
            if mult > 128 * 128 * 128:
                raise MQTTError("bad length")
        body = await r.readexactly(n) if n else b""
        self._last_rx = hw.ticks_ms()
        return h, body

    async def _reader(self) -> None:
        try:
            while True:
                h, body = await self._read_packet()
                kind = h & 0xF0
                if kind == 0x30:  # PUBLISH
                    tl = struct.unpack("!H", body[:2])[0]
                    topic = body[2:2 + tl].decode()
                    qos = (h >> 1) & 3
                    pos = 2 + tl
                    pid = 0
                    if qos:
                        pid = struct.unpack("!H", body[pos:pos + 2])[0]
                        pos += 2
                    try:
                        self.on_message(topic, body[pos:])
                    except Exception as e:  # a bad downlink never kills the link
                        print("[dolbom] mqtt handler:", repr(e))
                    if qos == 1:
                        await self._write(b"\x40\x02" + struct.pack("!H", pid))
                elif kind == 0x40 or kind == 0x90:  # PUBACK, SUBACK
                    pid = struct.unpack("!H", body[:2])[0]
                    ev = self._waiting.get(pid)
                    if ev is not None:
                        self._acked.add(pid)
                        ev.set()
                # PINGRESP (0xD0) only refreshes _last_rx
        except asyncio.CancelledError:
            raise
        except (OSError, EOFError, ValueError, IndexError):
            pass  # connection lost, or garbage from the peer: the link task reconnects
        finally:
            if self.connected:
                self._close()

    async def _pinger(self) -> None:
        ka = self.keepalive * 1000
        try:
            while self.connected:
                await asyncio.sleep_ms(min(ka // 4, 5000))
                now = hw.ticks_ms()
                if hw.ticks_diff(now, self._last_rx) > ka * 3 // 2:
                    self._close()  # the broker went silent: a half-open connection
                    return
                if hw.ticks_diff(now, self._last_tx) >= ka // 2:
                    try:
                        await self._write(b"\xc0\x00")
                    except OSError:
                        self._close()
                        return
        except asyncio.CancelledError:
            pass
