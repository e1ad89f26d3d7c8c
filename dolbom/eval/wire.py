"""A simulated home's devices on the wire (DESIGN.md §3): envelopes with (boot, seq) per
device, receive times, retained status, Last Wills, re-boots and a gateway's late backlog.

The part of ``dolbom.eval.population`` that turns what happened in a home into the
messages the central broker would hand a subscriber.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Any

PREFIX = "care/v1"
FW = "1.2.0"
WILL_DELAY_MS = 90_000  # the broker publishes a Will 1.5 x a 60 s keepalive after the drop


@dataclass(slots=True)
class Device:
    id: str
    kind: str  # registry kind (homes.json)
    role: str  # pir, door, bed, plug, temp, button, smoke, gateway
    power: str
    hb_s: int
    boot: int
    via_gateway: bool = False
    battery0: float = 100.0
    drain_per_day: float = 0.0
    temp_offset: float = 0.0
    reads_temp: bool = False

    def spec(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "power": self.power, "hb_s": self.hb_s}


class Writer:
    """Collects one home's messages: envelopes with (boot, seq) per device."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.out: list[tuple[int, str, dict[str, Any] | str, int]] = []  # rx, topic, payload, ts

    def topic(self, dev: str, leaf: str) -> str:
        return f"{PREFIX}/{self.site}/{dev}/{leaf}"

    def add(self, rx: int, topic: str, payload: dict[str, Any] | str, ts: int) -> None:
        self.out.append((rx, topic, payload, ts))


def status_payload(d: Device, state: str) -> dict[str, Any]:
    p: dict[str, Any] = {"state": state, "boot": d.boot, "fw": FW, "kind": d.kind, "hb": d.hb_s}
    if d.power == "battery":
        p["next"] = d.hb_s
    return p


def emit_device(w: Writer, d: Device, items: list[tuple[int, str, dict[str, Any]]],
                 start_ms: int, gen: random.Random, unplugged: list[tuple[int, int]],
                 dead_at: int | None) -> None:
    """Envelopes (boot, seq per boot), receive times, Wills and re-boots of one device."""
    boot, seq, last_rx = d.boot, 0, 0
    lat = (150, 900) if d.via_gateway else (40, 600)
    t0 = start_ms + gen.randrange(0, 2_000)
    w.add(t0, w.topic(d.id, "status"), status_payload(d, "ready"), t0)  # retained, at subscribe
    spans = iter(unplugged)
    span = next(spans, None)
    for t, leaf, body in items:
        while span is not None and t >= span[0]:
            a, b = span
            w.add(a + WILL_DELAY_MS, w.topic(d.id, "status"), {"state": "lost"}, a)
            if t < b:
                break
            boot, seq = boot + 1, 0
            d.boot = boot
            w.add(b, w.topic(d.id, "status"), status_payload(d, "ready"), b)
            span = next(spans, None)
        if span is not None and span[0] <= t < span[1]:
            continue
        # One connection, in order: a device's messages arrive in the order it sent them.
        rx = last_rx = max(last_rx + 1, t + gen.randrange(*lat))
        if leaf == "status":
            w.add(rx, w.topic(d.id, leaf), body, t)
            continue
        seq += 1
        payload = {"v": 1, "boot": boot, "seq": seq, "ts": t, "tq": 2, **body}
        w.add(rx, w.topic(d.id, leaf), payload, t)
    # A battery node that dies (``dead_at``) was asleep: no Will, just silence.
    del dead_at


def apply_outages(w: Writer, site: str, home: str, devices: list[Device],
                   outages: list[tuple[int, int]], gen: random.Random) -> None:
    """A gateway's uplink is cut: its Will, then at reconnection the held backlog, late."""
    if not outages:
        return
    gw = f"{home}-gw"
    children = {d.id for d in devices if d.via_gateway}
    starts = [a for a, _ in outages]
    kept: list[tuple[int, str, dict[str, Any] | str, int]] = []
    backlog: dict[int, list[tuple[int, str, dict[str, Any] | str, int]]] = {}
    for rx, topic, payload, ts in w.out:
        i = bisect.bisect_right(starts, ts) - 1
        if i < 0 or not outages[i][0] <= ts < outages[i][1] or rx <= outages[i][0]:
            kept.append((rx, topic, payload, ts))
            continue
        dev = topic.split("/")[3]
        if dev == gw:
            continue  # the gateway's own heartbeat is not sent while it is cut off
        if dev in children and isinstance(payload, dict) and "v" in payload:
            backlog.setdefault(i, []).append((rx, topic, {**payload, "hist": True}, ts))
        elif dev not in children:
            kept.append((rx, topic, payload, ts))
        # a child's status while cut off is not forwarded (it is retained, superseded)
    status = f"{PREFIX}/{site}/gw/{gw}/status"
    gw_dev = next(d for d in devices if d.id == gw)
    for i, (a, b) in enumerate(outages):
        kept.append((a + WILL_DELAY_MS, status, {"state": "lost"}, a))
        kept.append((b, status, status_payload(gw_dev, "ready"), b))
        rx = b + 3_000
        for _, topic, payload, ts in sorted(backlog.get(i, []), key=lambda x: x[3]):
            rx += gen.randrange(5, 60)
            kept.append((rx, topic, payload, ts))
    w.out = kept
