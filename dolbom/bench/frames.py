"""Pre-encoded MQTT PUBLISH frames for one rate step (pure).

The load generator must not be the bottleneck, so every frame of a step is
encoded before the step starts and sending costs one ``bytes.replace`` and
one socket write per connection per slice (1/20 s). Payloads come from
``dolbom.protocol``'s encoders (templates with marker values, spliced per
message), so every message is a valid v1 envelope: ``tq: 2``, a unique
``(dev, boot, seq)`` and a device time ``ts`` in ms.

``ts`` is "now": the ms within its second are encoded ahead, and the 10 digits
of the second are a placeholder (``"ts":0000000000``) stamped into the whole
slice at send time (``stamp``), which keeps every frame's length, so the MQTT
lengths stay right. A slice is sent at its end, so ``ts`` is never in the
future. Each device always goes to the same connection, so its messages stay
in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from dolbom.bench.fleet import DEVICES_PER_HOME, HOME, Fleet, MsgType, message_type, mix32
from dolbom.mqtt import packets
from dolbom.protocol import Envelope, Topics, encode_event, encode_status, encode_telemetry

TS_PLACEHOLDER = b'"ts":0000000000'
VARIANTS = 16
_SEQ_MARK = 987_654_321_987
_TS_MARK = 4_000_000_000_777
MEASUREMENT = {MsgType.TELEMETRY: "reading", MsgType.EVENT: "event",
               MsgType.STATUS: "device_status"}

_MS3 = [b"%03d" % i for i in range(1000)]
_PID2 = [i.to_bytes(2, "big") for i in range(65536)]
_LEN2 = [i.to_bytes(2, "big") for i in range(1024)]
_VARINT = [packets.remaining_length(i) for i in range(16384)]


def stamp(chunk: bytes, second: int) -> bytes:
    """Put the second (10 digits, epoch) into every ``ts`` placeholder of ``chunk``."""
    return chunk.replace(TS_PLACEHOLDER, b'"ts":%010d' % second)


@dataclass(frozen=True, slots=True)
class Template:
    """A payload cut around its ``seq`` and ``ts`` digits (or whole, for status)."""

    header: bytes  # first byte of the PUBLISH frame (QoS, retain)
    leaf: bytes  # topic after <prefix>/<site>/<dev>
    pre: bytes
    mid: bytes = b""  # ends with TS_PLACEHOLDER
    post: bytes = b""
    enveloped: bool = True


def _cut(payload: bytes) -> tuple[bytes, bytes, bytes]:
    seq = b"%d" % _SEQ_MARK
    ts = b"%d" % _TS_MARK
    i, j = payload.index(seq), payload.index(ts)
    if not i < j or payload.count(b'"ts":') != 1:
        raise AssertionError("envelope layout changed: seq must precede a single ts")
    mid = payload[i + len(seq): j] + TS_PLACEHOLDER[5:]
    if not mid.endswith(TS_PLACEHOLDER):
        raise AssertionError("ts must be the envelope's 'ts' field")
    return payload[:i], mid, payload[j + len(ts):]


def _header(qos: int, retain: bool) -> bytes:
    return bytes([packets.PUBLISH | (qos << 1) | (1 if retain else 0)])


@dataclass(slots=True)
class Templates:
    """Per slot of the home: telemetry variants, event variants, status."""

    telemetry: list[list[Template]]
    event: list[list[Template]]
    status: list[Template]


def build_templates(boot: int, telemetry_qos: int) -> Templates:
    env = Envelope(boot=boot, seq=_SEQ_MARK, ts=_TS_MARK, tq=2)
    tel_hdr, qos1 = _header(telemetry_qos, False), _header(1, False)
    telemetry, events, status = [], [], []
    for kind in HOME:
        variants = []
        for v in range(VARIANTS):
            readings = {r.name: round(r.base + r.spread * (v / (VARIANTS - 1) - 0.5), 1)
                        for r in kind.readings}
            variants.append(Template(tel_hdr, b"/telemetry",
                                     *_cut(encode_telemetry(env, readings))))
        telemetry.append(variants)
        ev = []
        if kind.event is not None:
            leaf = f"/event/{kind.event}".encode()
            for val in kind.values or (None,):
                ev.append(Template(qos1, leaf, *_cut(encode_event(env, val))))
        events.append(ev)
        body = encode_status("ready", boot=boot, fw="1.2.0", kind=kind.kind, hb=60)
        status.append(Template(_header(1, True), b"/status", body, enveloped=False))
    return Templates(telemetry, events, status)


@dataclass(frozen=True, slots=True)
class StepPlan:
    rate: int  # messages per second
    duration: int  # seconds
    start_index: int  # the run's index of the step's first message
    connections: int
    slices_per_s: int = 20

    @property
    def messages(self) -> int:
        return self.rate * self.duration


@dataclass(slots=True)
class EncodedStep:
    plan: StepPlan
    # chunks[second][slice][connection]: frames with ts placeholders
    chunks: list[list[list[bytes]]]
    per_measurement: dict[str, int] = field(default_factory=dict)
    per_type: dict[str, int] = field(default_factory=dict)
    nbytes: int = 0


class Encoder:
    """Encodes rate steps for one fleet; keeps each connection's packet ids across steps."""

    def __init__(self, fleet: Fleet, *, prefix: str = "care/v1", boot: int = 1,
                 telemetry_qos: int = 1, connections: int = 4) -> None:
        if telemetry_qos not in (0, 1):
            raise ValueError("telemetry QoS must be 0 or 1")
        self.fleet = fleet
        self.prefix = Topics(prefix).prefix.encode()
        self.boot = boot
        self.telemetry_qos = telemetry_qos
        self.connections = connections
        self.templates = build_templates(boot, telemetry_qos)
        self._pids = [0] * connections

    def connection_of(self, dev: int) -> int:
        return dev % self.connections

    def encode(self, plan: StepPlan) -> EncodedStep:
        if plan.connections != self.connections:
            raise ValueError("the plan's connections differ from the encoder's")
        if plan.rate < 1 or plan.duration < 1 or plan.slices_per_s < 1:
            raise ValueError("rate, duration and slices per second must be positive")
        if plan.rate > self.fleet.devices * 1000:
            raise ValueError("rate too high for the fleet: a device would repeat a ms")
        fleet, tpl, prefix = self.fleet, self.templates, self.prefix
        ndev, nconn, hps = fleet.devices, self.connections, fleet.homes_per_site
        rate, nslices = plan.rate, plan.slices_per_s
        pids, ms3, pid2, len2, varint = self._pids, _MS3, _PID2, _LEN2, _VARINT
        tel_qos = self.telemetry_qos
        counts = [0, 0, 0]
        per_event: dict[str, int] = {}
        chunks: list[list[list[bytes]]] = []
        nbytes = 0
        g = plan.start_index
        for _second in range(plan.duration):
            parts: list[list[list[bytes]]] = [[[] for _ in range(nconn)] for _ in range(nslices)]
            for j in range(rate):
                dev, rnd = g % ndev, g // ndev
                g += 1
                home, slot = divmod(dev, DEVICES_PER_HOME)
                kind = HOME[slot]
                draw = mix32(dev, rnd)
                mtype = message_type(kind, draw)
                qos = 1
                if mtype is MsgType.TELEMETRY:
                    t = tpl.telemetry[slot][(draw >> 10) % VARIANTS]
                    qos = tel_qos
                elif mtype is MsgType.EVENT:
                    ev = tpl.event[slot]
                    t = ev[rnd % len(ev)]
                    per_event[kind.event or ""] = per_event.get(kind.event or "", 0) + 1
                else:
                    t = tpl.status[slot]
                counts[mtype] += 1
                if t.enveloped:
                    payload = b"%s%d%s%s%s" % (t.pre, rnd + 1, t.mid, ms3[j * 1000 // rate],
                                               t.post)
                else:
                    payload = t.pre
                topic = b"%s/site-%03d/dev-%06d-%d%s" % (prefix, home // hps, home, slot,
                                                          t.leaf)
                c = dev % nconn
                if qos:
                    pid = pids[c] % 65535 + 1
                    pids[c] = pid
                    rl = 4 + len(topic) + len(payload)
                    parts[j * nslices // rate][c] += (t.header, varint[rl], len2[len(topic)],
                                                      topic, pid2[pid], payload)
                else:
                    rl = 2 + len(topic) + len(payload)
                    parts[j * nslices // rate][c] += (t.header, varint[rl], len2[len(topic)],
                                                      topic, payload)
            second = [[b"".join(p) for p in s] for s in parts]
            nbytes += sum(len(b) for s in second for b in s)
            chunks.append(second)
        per_measurement = {MEASUREMENT[m]: counts[m] for m in MsgType}
        per_type = {"telemetry": counts[MsgType.TELEMETRY], **dict(sorted(per_event.items())),
                    "status": counts[MsgType.STATUS]}
        return EncodedStep(plan, chunks, per_measurement, per_type, nbytes)


def iter_frames(data: bytes) -> Iterator[tuple[int, str, int, bytes]]:
    """(header, topic, pid, payload) of each PUBLISH in ``data`` (for tests and checks)."""
    pos, end = 0, len(data)
    while pos < end:
        header = data[pos]
        i, length, shift = pos + 1, 0, 0
        while True:
            b = data[i]
            i += 1
            length |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        body = data[i: i + length]
        tlen = int.from_bytes(body[:2], "big")
        topic = body[2: 2 + tlen].decode()
        p = 2 + tlen
        pid = 0
        if (header >> 1) & 3:
            pid = int.from_bytes(body[p: p + 2], "big")
            p += 2
        yield header, topic, pid, bytes(body[p:])
        pos = i + length
