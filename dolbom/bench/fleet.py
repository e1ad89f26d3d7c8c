"""The benchmark's fleet and message mix (pure): which device sends what, and when.

DESIGN.md §7: 300,000 homes × 6 devices, each sending one message a minute,
is 30,000 msg/s. Every home has the same six devices (the national service's
home: activity sensors, a door sensor, a bed sensor, a smart plug and a fire
sensor); their ids are opaque, like real ones.

The load is a round-robin over the fleet: message ``g`` of the run comes from
device ``g % devices`` and is that device's ``g // devices``-th message, so at
30,000 msg/s every device sends once a minute, and its ``seq`` (``round + 1``)
grows by one per message within one ``boot``: ``(dev, boot, seq)`` never
repeats (ingest dedups on it, DESIGN.md §3).

What a message is (the mix) is drawn from a hash of (device, round), so it is
deterministic and needs no state. Per device kind, in messages per 1000:

    ========  ===========  ===========================================  =====  ======
    slot      kind         telemetry readings (the heartbeat)           event  status
    ========  ===========  ===========================================  =====  ======
    living    multisensor  temperature, humidity, illuminance, rssi     250 motion   5
    bedroom   multisensor  temperature, humidity, illuminance, rssi     170 motion   5
    door      door         battery, rssi                                150 door     5
    bed       bed          heart rate, breath rate, rssi                120 bed      5
    plug      plug         power, rssi                                    —          5
    smoke     smoke        battery, temperature, rssi                     —          5
    ========  ===========  ===========================================  =====  ======

which makes the fleet's mix (``overall_mix``): telemetry 88 %, motion 7 %,
door 2.5 %, bed 2 %, status 0.5 %. No life-safety events: they raise alerts
and are measured by the latency benchmark, not by this throughput one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NATIONAL_HOMES = 300_000
DEVICES_PER_HOME = 6
HOMES_PER_SITE = 1_200  # a regional centre's caseload: 300,000 homes in 250 sites
MESSAGES_PER_DEVICE_PER_MIN = 1
PER_MILLE = 1000
STATUS_PER_MILLE = 5  # a device reconnecting (and announcing "ready") every ~3 h
MAX_HOMES = 1_000_000  # ids have six digits

DEFAULT_RATES = (5_000, 7_500, 10_000, 12_500, 15_000, 17_500, 20_000, 25_000, 30_000, 35_000,
                 40_000)
# The national fleet is 300,000 homes (1.8 M devices, NATIONAL_HOMES), but
# InfluxDB 1.6 cannot hold its 1.8 M series on this 24 GB machine: creating them
# at 10,000 msg/s took its RSS past 18 GB and points stopped arriving
# (measured; docs/benchmarks.md). The default fleet is a sixth of it, each
# device sending six times a minute: the same message rate and mix, 300,000
# series. ``--homes 300000`` runs the national fleet where memory allows.
DEFAULT_HOMES = 50_000


class MsgType(enum.IntEnum):
    TELEMETRY = 0
    EVENT = 1
    STATUS = 2


@dataclass(frozen=True, slots=True)
class Reading:
    name: str
    base: float
    spread: float  # the 16 variants of a reading are spread evenly over base ± spread/2


@dataclass(frozen=True, slots=True)
class DeviceKind:
    slot: str
    kind: str  # registry kind (dolbom.registry.models.DEVICE_KINDS)
    readings: tuple[Reading, ...]
    event: str | None = None
    event_per_mille: int = 0
    values: tuple[str, ...] = ()  # the event's ``val``, alternating by round


_RSSI = Reading("rssi_dbm", -62.0, 20.0)
_TEMP = Reading("temperature_c", 23.0, 8.0)
_ROOM = (_TEMP, Reading("humidity_pct", 48.0, 30.0), Reading("illuminance_lux", 150.0, 300.0),
         _RSSI)

HOME: tuple[DeviceKind, ...] = (
    DeviceKind("living", "multisensor", _ROOM, "motion", 250),
    DeviceKind("bedroom", "multisensor", _ROOM, "motion", 170),
    DeviceKind("door", "door", (Reading("battery_pct", 80.0, 30.0), _RSSI), "door", 150,
               ("open", "closed")),
    DeviceKind("bed", "bed", (Reading("heart_rate_bpm", 70.0, 24.0),
                              Reading("breath_rate_bpm", 15.0, 8.0), _RSSI), "bed", 120,
               ("in", "out")),
    DeviceKind("plug", "plug", (Reading("power_w", 60.0, 400.0), _RSSI)),
    DeviceKind("smoke", "smoke", (Reading("battery_pct", 85.0, 20.0), _TEMP, _RSSI)),
)
assert len(HOME) == DEVICES_PER_HOME


def mix32(dev: int, rnd: int) -> int:
    """A 32-bit hash of (device, round): the draw that decides the message."""
    x = ((dev * 0x9E3779B1) ^ (rnd * 0x85EBCA77)) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    return x


def message_type(kind: DeviceKind, draw: int) -> MsgType:
    pm = draw % PER_MILLE
    if pm < STATUS_PER_MILLE:
        return MsgType.STATUS
    if pm < STATUS_PER_MILLE + kind.event_per_mille:
        return MsgType.EVENT
    return MsgType.TELEMETRY


def overall_mix() -> dict[str, float]:
    """The fleet's expected share of each message type (``telemetry``, event types, ``status``)."""
    out: dict[str, float] = {"telemetry": 0.0}
    n = len(HOME)
    for k in HOME:
        out["telemetry"] += (PER_MILLE - STATUS_PER_MILLE - k.event_per_mille) / PER_MILLE / n
        if k.event:
            out[k.event] = out.get(k.event, 0.0) + k.event_per_mille / PER_MILLE / n
    out["status"] = STATUS_PER_MILLE / PER_MILLE
    return out


@dataclass(frozen=True, slots=True)
class Fleet:
    homes: int = NATIONAL_HOMES
    homes_per_site: int = HOMES_PER_SITE

    def __post_init__(self) -> None:
        if not 1 <= self.homes <= MAX_HOMES:
            raise ValueError(f"homes must be 1..{MAX_HOMES}, not {self.homes}")
        if self.homes_per_site < 1:
            raise ValueError("homes_per_site must be at least 1")

    @property
    def devices(self) -> int:
        return self.homes * DEVICES_PER_HOME

    @property
    def sites(self) -> int:
        return -(-self.homes // self.homes_per_site)

    @property
    def nominal_rate(self) -> int:
        """Messages per second when every device sends once a minute."""
        return self.devices * MESSAGES_PER_DEVICE_PER_MIN // 60

    @staticmethod
    def site_id(site: int) -> str:
        return f"site-{site:03d}"

    @staticmethod
    def home_id(home: int) -> str:
        return f"home-{home:06d}"

    @staticmethod
    def device_id(dev: int) -> str:
        return f"dev-{dev // DEVICES_PER_HOME:06d}-{dev % DEVICES_PER_HOME}"

    def site_of(self, dev: int) -> int:
        return dev // DEVICES_PER_HOME // self.homes_per_site

    def kind_of(self, dev: int) -> DeviceKind:
        return HOME[dev % DEVICES_PER_HOME]
