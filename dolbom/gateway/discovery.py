"""Home Assistant MQTT discovery (opt-in), so a family's Home Assistant shows the home's
sensors (docs/gateway.md). Device-based discovery: one retained config per child on the
local broker, ``<prefix>/device/dolbom_<dev>/config``, its entities reading the
children's own contract-v1 topics, availability from their ``status``.

No personal data (DESIGN.md §6): names are the device's kind and opaque id, never the
resident's name, the home or the address.
"""

from __future__ import annotations

from typing import Any

import orjson

from dolbom import __version__
from dolbom.mqtt import Client
from dolbom.protocol import Topics

ORIGIN = {"name": "dolbom-gateway", "sw": __version__,
          "url": "https://github.com/dolbom/dolbom/blob/main/docs/gateway.md"}
AVAILABILITY = "{{ 'online' if value_json.state in ('ready', 'sleeping') else 'offline' }}"


def _reading(key: str, reading: str, device_class: str, unit: str) -> tuple[str, dict[str, Any]]:
    return key, {"p": "sensor", "device_class": device_class, "unit_of_measurement": unit,
                 "state_class": "measurement", "topic": "telemetry",
                 "value_template": "{{ value_json.readings." + reading
                 + " | default(this.state, true) }}"}


def _flag(key: str, event: str, device_class: str, on: str = "'ON'",
          off_delay: int | None = 60) -> tuple[str, dict[str, Any]]:
    c: dict[str, Any] = {"p": "binary_sensor", "device_class": device_class,
                         "topic": f"event/{event}", "value_template": "{{ " + on + " }}"}
    if off_delay is not None:
        c["off_delay"] = off_delay
    return key, c


BATTERY = _reading("battery", "battery_pct", "battery", "%")
TEMPERATURE = _reading("temperature", "temperature_c", "temperature", "°C")
HUMIDITY = _reading("humidity", "humidity_pct", "humidity", "%")
POWER = _reading("power", "power_w", "power", "W")
MOTION = _flag("motion", "motion", "motion")
DOOR = _flag("door", "door", "door",
             on="'ON' if value_json.val == 'open' else 'OFF'", off_delay=None)
SMOKE = _flag("smoke", "smoke", "smoke", off_delay=300)
GAS = _flag("gas", "gas", "gas", off_delay=300)
BUTTON = _flag("button", "button", "safety", off_delay=30)
BED = _flag("bed", "bed", "occupancy",
            on="'ON' if value_json.val == 'in' else 'OFF'", off_delay=None)

BY_KIND: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "multisensor": (TEMPERATURE, HUMIDITY, MOTION, DOOR, BUTTON, BATTERY),
    "door": (DOOR, BATTERY),
    "button": (BUTTON, BATTERY),
    "smoke": (SMOKE, GAS, BATTERY),
    "bed": (BED, BATTERY),
    "plug": (POWER,),
}


def config(topics: Topics, site: str, dev: str, kind: str | None) -> tuple[str, bytes]:
    """(topic, payload) of one child's device-based discovery config."""
    obj_id = f"dolbom_{dev}"
    comps: dict[str, Any] = {}
    for key, template in BY_KIND.get(kind or "", (BATTERY,)):
        c = dict(template)
        leaf = c.pop("topic")
        c["state_topic"] = f"{topics.prefix}/{site}/{dev}/{leaf}"
        c["unique_id"] = f"{obj_id}_{key}"
        c["name"] = key.replace("_", " ")
        comps[f"{obj_id}_{key}"] = c
    payload = {
        "dev": {"ids": obj_id, "name": f"Dolbom {kind or 'sensor'} {dev}", "mf": "Dolbom",
                "mdl": kind or "sensor"},
        "o": ORIGIN,
        "cmps": comps,
        "availability_topic": topics.status(site, dev),
        "availability_template": AVAILABILITY,
        "qos": 1,
    }
    return f"{{prefix}}/device/{obj_id}/config", orjson.dumps(payload)


def configs(topics: Topics, site: str, children: dict[str, str | None],
            prefix: str) -> list[tuple[str, bytes]]:
    out = []
    for dev in sorted(children):
        topic, payload = config(topics, site, dev, children[dev])
        out.append((topic.replace("{prefix}", prefix.strip("/")), payload))
    return out


def attach_discovery(gw: Any) -> None:
    """Publish the children's discovery (retained) on every local (re)connection."""
    s = gw.s
    kinds: dict[str, str | None] = {c: s.discovery.kinds.get(c) for c in gw.children}

    async def publish(client: Client) -> None:
        for topic, payload in configs(gw.topics, s.site, kinds, s.discovery.prefix):
            await client.publish(topic, payload, qos=1, retain=True)

    gw.on_local_up(publish)
