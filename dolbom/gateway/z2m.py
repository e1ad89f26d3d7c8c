"""Zigbee2MQTT sensors as gateway children (docs/gateway.md, "Zigbee2MQTT").

Zigbee2MQTT publishes each device's state as JSON on ``<base>/<friendly name>`` (the
whole cached state at every change) and its availability on
``<base>/<friendly name>/availability`` (``{"state": "online"|"offline"}``, or the
bare word in older versions). ``translate`` maps the documented fields to contract-v1
messages of the child device id the operator gave that friendly name:

    occupancy: true (was not)        event/motion
    contact: true / false (changed)  event/door "closed" / "open"
    smoke: true (was not)            event/smoke "alarm"     (life-safety)
    gas: true (was not)              event/gas "alarm"       (life-safety)
    action: "<any but release>"      event/button "<action>" (life-safety)
    tamper / battery_low: true       event/tamper, event/battery_low
    battery, temperature, humidity,  telemetry battery_pct, temperature_c, humidity_pct,
    power, illuminance(_lux)         power_w, illuminance_lux
    availability online / offline    status "ready" / "lost" (retained)

Edges, not levels: Zigbee2MQTT repeats the cached state with every report (a battery
report carries the last ``occupancy`` and ``contact`` too), so an event is emitted when
a value changes. ``water_leak`` has no event type in contract v1: it is counted as
unmapped, never forwarded under another name. Other fields (linkquality, voltage,
device-specific ones) are ignored.

The envelope is the gateway's: ``boot`` its boot count, ``seq`` a per-child counter
of this boot, ``ts`` the gateway's clock (``tq`` from the settings: 2 when the Pi keeps
NTP time).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from dolbom.gateway.classify import Refused
from dolbom.gateway.queue import Cls, Item
from dolbom.mqtt import Received
from dolbom.protocol import LIFE_SAFETY, Topics
from dolbom.protocol.messages import Scalar

READINGS = {
    "battery": "battery_pct",
    "temperature": "temperature_c",
    "humidity": "humidity_pct",
    "power": "power_w",
    "illuminance_lux": "illuminance_lux",
    "illuminance": "illuminance_lux",
}
IGNORED_ACTIONS = frozenset({"", "release", "hold_release", "off_long_release",
                             "on_long_release"})
FLAG_EVENTS = (("smoke", "smoke", "alarm"), ("gas", "gas", "alarm"), ("tamper", "tamper", None),
               ("battery_low", "battery_low", None))
UNMAPPED = ("water_leak",)


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one Zigbee2MQTT state message means in contract v1."""

    events: tuple[tuple[str, Scalar], ...]  # (event type, val)
    readings: dict[str, float]
    unmapped: tuple[str, ...]  # documented fields with no contract meaning


def map_state(prev: dict[str, Any] | None, obj: dict[str, Any]) -> Mapped:
    """Pure: the events and readings of state ``obj``, given the previous state."""
    prev = prev or {}
    events: list[tuple[str, Scalar]] = []
    occ = obj.get("occupancy")
    if occ is True and prev.get("occupancy") is not True:
        events.append(("motion", None))
    contact = obj.get("contact")
    if type(contact) is bool and contact != prev.get("contact"):
        events.append(("door", "closed" if contact else "open"))
    for key, etype, val in FLAG_EVENTS:
        if obj.get(key) is True and prev.get(key) is not True:
            events.append((etype, val))
    action = obj.get("action")
    if isinstance(action, str) and action not in IGNORED_ACTIONS and len(action) <= 64:
        events.append(("button", action))
    readings: dict[str, float] = {}
    for key, name in READINGS.items():
        v = obj.get(key)
        if name in readings or not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if math.isfinite(v):
            readings[name] = float(v)
    unmapped = tuple(k for k in UNMAPPED if obj.get(k) is True and prev.get(k) is not True)
    return Mapped(tuple(events), readings, unmapped)


def availability(payload: bytes) -> str | None:
    """"ready", "lost" or None from an availability payload (JSON or the bare word)."""
    text = payload.strip()
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        obj = text.decode("utf-8", "replace")
    state = obj.get("state") if isinstance(obj, dict) else obj
    return {"online": "ready", "offline": "lost"}.get(state) if isinstance(state, str) else None


@dataclass
class Z2MBridge:
    """Translates a home's Zigbee2MQTT topics into its children's contract-v1 messages."""

    topics: Topics
    site: str
    base: str
    devices: dict[str, str]  # friendly name -> child id
    boot: int
    tq: int = 2
    seq: dict[str, int] = field(default_factory=dict)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmapped: Counter[str] = field(default_factory=Counter)

    def filters(self) -> list[tuple[str, int]]:
        return [(f"{self.base}/+", 1), (f"{self.base}/+/availability", 1)]

    def handles(self, topic: str) -> bool:
        return topic.startswith(self.base + "/")

    def _env(self, dev: str, ts: int) -> dict[str, Any]:
        seq = self.seq[dev] = self.seq.get(dev, 0) + 1
        return {"v": 1, "boot": self.boot, "seq": seq, "ts": ts, "tq": self.tq}

    def translate(self, topic: str, payload: bytes, rx_ms: int,
                  live: bool) -> list[Item] | Refused:
        rest = topic[len(self.base) + 1:].split("/")
        name = rest[0]
        dev = self.devices.get(name)
        if dev is None:
            return Refused("z2m_unknown" if name != "bridge" else "z2m_bridge")
        t = self.topics
        if len(rest) == 2 and rest[1] == "availability":
            state = availability(payload)
            if state is None:
                return Refused("z2m_bad_payload")
            return [Item(t.status(self.site, dev), orjson.dumps({"state": state}),
                         Cls.STATUS, True, rx_ms, live, dev)]
        if len(rest) != 1:
            return Refused("z2m_other")
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return Refused("z2m_bad_payload")
        if not isinstance(obj, dict):
            return Refused("z2m_bad_payload")
        m = map_state(self.state.get(dev), obj)
        self.state[dev] = {**self.state.get(dev, {}), **obj}
        for k in m.unmapped:
            self.unmapped[k] += 1
        items: list[Item] = []
        for etype, val in m.events:
            env = self._env(dev, rx_ms)
            if val is not None:
                env["val"] = val
            cls = Cls.LIFE_SAFETY if etype in LIFE_SAFETY else Cls.EVENT
            items.append(Item(t.event(self.site, dev, etype), orjson.dumps(env), cls, False,
                              rx_ms, live, dev, env["boot"], env["seq"]))
        if m.readings:
            env = self._env(dev, rx_ms)
            env["readings"] = m.readings
            items.append(Item(t.telemetry(self.site, dev), orjson.dumps(env), Cls.TELEMETRY,
                              False, rx_ms, live, dev, env["boot"], env["seq"]))
        return items

    async def downlink(self, msg: Received) -> bool:
        """A Zigbee child's ``ack``/``cmd`` ends here: the gateway's queue was its outbox."""
        t = self.topics.parse(msg.topic)
        return t is not None and t.device in self.devices.values()


def attach_bridges(gw: Any) -> None:
    """Add the bridges the settings enable to a ``Gateway``."""
    s = gw.s
    if s.z2m.enabled and s.z2m.devices:
        gw.add_bridge(Z2MBridge(gw.topics, s.site, s.z2m.base_topic.strip("/"),
                                dict(s.z2m.devices), gw.boot, s.z2m.tq))
    if s.discovery.enabled:
        from dolbom.gateway.discovery import attach_discovery

        attach_discovery(gw)
