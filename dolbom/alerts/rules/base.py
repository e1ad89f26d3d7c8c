"""The engine's vocabulary: a home's configuration, the layout of its rule state's
records, and the constants and helpers the rule modules next to this one share.
Observations (``rules.observations``), actions (``rules.actions``) and the state itself
(``rules.state``) are their own modules; ``dolbom.alerts.engine`` re-exports them all.
Every time is an int of ms UTC that the caller passes in: the engine has no clock and
does no I/O (STYLE.md, "Time").

Configuration and state are kept small on purpose (DESIGN.md §7: ≤ 1 KB of service
state per home, 300,000 homes). A ``HomeConfig`` holds the home's device ids and refers
to a ``Profile`` that homes of the same mode, thresholds and kinds of device share.
``HomeState`` is one ``bytes`` value (per-device records in the order of
``HomeConfig.ids``, then the home's scalars: 314 B for six devices) and ``tag``, the
configuration's own, which remembers which devices (and which thresholds) the state
was built for, so that a registry change is noticed and the records are re-keyed by
device id instead of being silently misread.
"""

from __future__ import annotations

import struct
import weakref
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from dolbom.alerts.model import ACTIVITY_KINDS, MOTION_KINDS, Priority, Rule, Thresholds
from dolbom.alerts.rules.clock import hhmm, zone

MODES = ("normal", "away", "hospital")
NORMAL = 0
POWERS = frozenset({"mains", "battery"})
GATEWAY_KIND = "gateway"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DAY_MS = 24 * HOUR_MS
MAX_DEVICES = 64  # per-device flags are uint64 bitmasks


LIFE_SAFETY_RULES: dict[str, Rule] = {
    r.value: r for r in (Rule.BUTTON, Rule.FALL, Rule.SMOKE, Rule.GAS, Rule.SOS_VOICE)
}


_KIND_GROUP = {"door": "doors", "bed": "beds", "plug": "plugs", GATEWAY_KIND: "gateways"}


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


# --- configuration (from the registry) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device of a home, as the registry knows it."""

    device: str
    kind: str
    power: str  # "mains" | "battery"
    hb_s: int  # promised heartbeat interval

    def __post_init__(self) -> None:
        if self.power not in POWERS:
            raise ValueError(f"device {self.device}: power {self.power!r} is not mains/battery")
        if self.hb_s <= 0:
            raise ValueError(f"device {self.device}: hb_s must be > 0, not {self.hb_s}")


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Profile:
    """What homes of the same site, mode, thresholds and kinds of device share, and what
    the rules derive from it, once: most homes of a site share one (``HomeConfig.profile``)."""

    site: str
    mode: str  # "normal" | "away" | "hospital"
    thresholds: Thresholds
    kinds: tuple[str, ...]  # per device, in the order of HomeConfig.ids
    powers: tuple[str, ...]  # "mains" | "battery"
    hb_s: tuple[int, ...]  # promised heartbeat intervals
    # Derived once here rather than on every message (not constructor arguments).
    mode_index: int = field(init=False, repr=False, compare=False)
    activity: int = field(init=False, repr=False, compare=False)  # bitmask of activity sensors
    motion: int = field(init=False, repr=False, compare=False)  # of motion sensors (MOTION_KINDS)
    primary: int = field(init=False, repr=False, compare=False)  # motion sensors, else activity
    doors: int = field(init=False, repr=False, compare=False)
    beds: int = field(init=False, repr=False, compare=False)
    plugs: int = field(init=False, repr=False, compare=False)
    gateways: int = field(init=False, repr=False, compare=False)
    battery: int = field(init=False, repr=False, compare=False)  # battery-powered devices
    lost_ms: tuple[int, ...] = field(init=False, repr=False, compare=False)  # per hb_s
    records: struct.Struct = field(init=False, repr=False, compare=False)  # all REC at once
    settings: int = field(init=False, repr=False, compare=False)  # crc of the thresholds

    def __post_init__(self) -> None:
        masks = dict.fromkeys(
            ("activity", "motion", "doors", "beds", "plugs", "gateways", "battery"), 0)
        for i, (kind, power) in enumerate(zip(self.kinds, self.powers, strict=True)):
            b = 1 << i
            if kind in ACTIVITY_KINDS:
                masks["activity"] |= b
            if kind in MOTION_KINDS:
                masks["motion"] |= b
            group = _KIND_GROUP.get(kind)
            if group:
                masks[group] |= b
            if power == "battery":
                masks["battery"] |= b
        setattr_ = object.__setattr__
        for name, mask in masks.items():
            setattr_(self, name, mask)
        # "Silence is not safety" per sensor: the verdicts on a home's silence depend on
        # the sensors that see a person about the home; a door or bed sensor alone is
        # the primary one only in a home without a motion sensor.
        setattr_(self, "primary", masks["motion"] or masks["activity"])
        setattr_(self, "mode_index", MODES.index(self.mode))
        setattr_(self, "settings", _thresholds_tag(self.thresholds))  # also checks them
        setattr_(self, "lost_ms", tuple(self.lost_after_ms(s) for s in self.hb_s))
        setattr_(self, "records", _records(len(self.kinds)))

    def lost_after_ms(self, seconds: int) -> int:
        """How long a device that promised ``seconds`` may stay silent before it is lost."""
        return round(self.thresholds.lost_factor * seconds * 1000)


# Every Profile in use, once (for as long as a configuration refers to it).
_PROFILES: weakref.WeakValueDictionary[tuple[object, ...], Profile] = (
    weakref.WeakValueDictionary())


def _shared_profile(site: str, mode: str, thresholds: Thresholds, kinds: tuple[str, ...],
                    powers: tuple[str, ...], hb_s: tuple[int, ...]) -> Profile:
    key = (site, mode, thresholds, kinds, powers, hb_s)
    found = _PROFILES.get(key)
    if found is None:
        found = _PROFILES.setdefault(key, Profile(site, mode, thresholds, kinds, powers, hb_s))
    return found


@dataclass(frozen=True, slots=True, init=False)
class HomeConfig:
    """What the rules need to know about one home. The order of ``devices`` (and
    ``ids``) is the order of the state's device records; the service may change it (the
    state is re-keyed).

    The alerts service keeps 300,000 of these (DESIGN.md §7: ≤ 1 KB per home), so a
    home keeps only its id, its device ids and ``tag``, and refers to a ``Profile`` it
    shares with the homes of the same site, mode, thresholds and kinds of device;
    ``devices`` builds ``DeviceInfo`` objects on demand, for the rare paths. The device
    ids are one ``str`` (``packed``: 116 B for six ids, where six ``str`` objects and a
    tuple take 442 B); ``index`` finds a device in it with C-level ``str`` methods, and
    ``ids`` splits it, for the rare paths.
    """

    home: str
    packed: str  # "\n", then each device id and "\n", in the order of the state's records
    tag: bytes = field(repr=False, compare=False)  # derived from ids and profile
    profile: Profile

    def __init__(self, site: str, home: str, mode: str, thresholds: Thresholds,
                 devices: Sequence[DeviceInfo]) -> None:
        self._fill(site, home, mode, thresholds, tuple([d.device for d in devices]),
                   tuple([d.kind for d in devices]), tuple([d.power for d in devices]),
                   tuple([d.hb_s for d in devices]))

    @classmethod
    def of(cls, site: str, home: str, mode: str, thresholds: Thresholds,
           ids: tuple[str, ...], kinds: tuple[str, ...], powers: tuple[str, ...],
           hb_s: tuple[int, ...]) -> HomeConfig:
        """The same as from ``DeviceInfo``s, from their columns (the registry's rows),
        checked alike: 300,000 homes are built when the service starts."""
        for power in set(powers) - POWERS:
            raise ValueError(f"home {home}: power {power!r} is not mains/battery")
        if hb_s and min(hb_s) <= 0:
            raise ValueError(f"home {home}: hb_s must be > 0, not {min(hb_s)}")
        cfg = object.__new__(cls)
        cfg._fill(site, home, mode, thresholds, ids, kinds, powers, hb_s)
        return cfg

    def _fill(self, site: str, home: str, mode: str, thresholds: Thresholds,
              ids: tuple[str, ...], kinds: tuple[str, ...], powers: tuple[str, ...],
              hb_s: tuple[int, ...]) -> None:
        if mode not in MODES:
            raise ValueError(f"home {home}: mode {mode!r} is not one of {MODES}")
        if len(ids) > MAX_DEVICES:
            raise ValueError(f"home {home}: more than {MAX_DEVICES} devices")
        packed = "\n" + "".join([d + "\n" for d in ids])
        if len(set(ids)) != len(ids):
            raise ValueError(f"home {home}: a device is listed twice")
        if not all(ids) or packed.count("\n") != len(ids) + 1:  # the separator of ``packed``
            raise ValueError(f"home {home}: a device id is empty or holds a line break")
        profile = _shared_profile(site, mode, thresholds, kinds, powers, hb_s)
        # The state remembers this tag: each device's id (to re-key its records when the
        # registry changes the home's devices), then everything its cached times depend on.
        crc = zlib.crc32
        tags = [crc(d.encode()) for d in ids]
        described = sorted([f"{d} {k} {p} {h}" for d, k, p, h in zip(ids, kinds, powers, hb_s,
                                                                      strict=True)])
        tags.append(crc("\n".join(described).encode()) ^ profile.settings)
        setattr_ = object.__setattr__
        setattr_(self, "home", home)
        setattr_(self, "packed", packed)
        setattr_(self, "tag", struct.pack(f"<{len(tags)}I", *tags))
        setattr_(self, "profile", profile)

    # What the home shares with others (Profile), read through its configuration.
    @property
    def site(self) -> str:
        return self.profile.site

    @property
    def mode(self) -> str:
        return self.profile.mode

    @property
    def thresholds(self) -> Thresholds:
        return self.profile.thresholds

    @property
    def mode_index(self) -> int:
        return self.profile.mode_index

    @property
    def activity(self) -> int:
        return self.profile.activity

    @property
    def motion(self) -> int:
        return self.profile.motion

    @property
    def primary(self) -> int:
        return self.profile.primary

    @property
    def doors(self) -> int:
        return self.profile.doors

    @property
    def beds(self) -> int:
        return self.profile.beds

    @property
    def plugs(self) -> int:
        return self.profile.plugs

    @property
    def gateways(self) -> int:
        return self.profile.gateways

    @property
    def battery(self) -> int:
        return self.profile.battery

    @property
    def lost_ms(self) -> tuple[int, ...]:
        return self.profile.lost_ms

    @property
    def ids(self) -> tuple[str, ...]:
        """The device ids, in the order of the state's device records (new ``str``
        objects at every call: for the rare paths; the message path uses ``index``)."""
        return tuple(self.packed.split("\n")[1:-1])

    @property
    def devices(self) -> tuple[DeviceInfo, ...]:
        ids, p = self.ids, self.profile
        return tuple(DeviceInfo(d, p.kinds[i], p.powers[i], p.hb_s[i])
                     for i, d in enumerate(ids))

    def device(self, i: int) -> DeviceInfo:
        """Device ``i``, built on demand."""
        p = self.profile
        return DeviceInfo(self.ids[i], p.kinds[i], p.powers[i], p.hb_s[i])

    def lost_after_ms(self, seconds: int) -> int:
        """How long a device that promised ``seconds`` may stay silent before it is lost."""
        return self.profile.lost_after_ms(seconds)

    def index(self, device: str) -> int:
        """Position of ``device`` in ``ids``, or -1 if it is not this home's: where
        "\\n" + device + "\\n" starts in ``packed``, counted in line breaks before it."""
        packed = self.packed
        at = packed.find(f"\n{device}\n")
        if at < 0 or "\n" in device:  # "a\nb" is not two devices
            return -1
        return packed.count("\n", 0, at)

    def has(self, device: str) -> bool:
        """``device`` is one of this home's (``index(device) >= 0``, a little faster)."""
        return f"\n{device}\n" in self.packed and "\n" not in device


@lru_cache(maxsize=MAX_DEVICES + 1)
def _records(n: int) -> struct.Struct:
    return struct.Struct("<" + REC.format[1:] * n)


@lru_cache(maxsize=4096)
def _thresholds_tag(th: Thresholds) -> int:
    """crc32 of ``th`` once checked; cached because most homes share their thresholds and
    300,000 configurations are built at start-up."""
    check_thresholds(th)
    return _crc(repr(th))


def check_thresholds(th: Thresholds) -> None:
    """``ValueError`` with one clear line if the thresholds cannot work."""
    for name in ("sleep_start", "sleep_end", "night_start", "night_end"):
        hhmm(getattr(th, name))
    try:
        zone(th.timezone)
    except (KeyError, ValueError) as e:
        raise ValueError(f"unknown time zone {th.timezone!r}") from e
    tiers = (th.inactivity_caution_h, th.inactivity_alarm_h, th.inactivity_danger_h)
    if not 0 < tiers[0] < tiers[1] < tiers[2]:
        raise ValueError(f"inactivity tiers must grow: {tiers}")
    positive = ("no_door_days", "temp_minutes", "out_of_bed_minutes", "no_power_h",
                "lost_factor", "temp_repeat_h")
    for name in positive:
        if not getattr(th, name) > 0:
            raise ValueError(f"{name} must be > 0")
    if th.temp_hysteresis_c < 0 or th.cold_c >= th.heat_c:
        raise ValueError("temperature thresholds: need cold_c < heat_c and hysteresis >= 0")


# --- state ---------------------------------------------------------------------------------

# One record per device, in HomeConfig.ids order:
#   seen_ms   last time the device was heard (a sign it is alive, not of the resident)
#   next_s    interval a battery device announced in its last status (0: none)
#   temp_ms   start of the device's current hot or cold condition (0: none)
#   lost_ms   when it will be lost if not heard again (NEVER once lost): kept with the
#             record so the next deadline is a C-level min() on every heartbeat
REC = struct.Struct("<qIqq")
TEMP_AT = struct.calcsize("<qI")
I64 = struct.Struct("<q")
NEVER = 2**63 - 1

# Bits of raised / pending / quiet.
BIT: dict[Rule, int] = {
    rule: 1 << n
    for n, rule in enumerate((
        Rule.INACTIVITY, Rule.NO_DOOR_USE, Rule.HEAT, Rule.COLD, Rule.OUT_OF_BED_AT_NIGHT,
        Rule.NO_POWER_USE, Rule.NIGHT_EXIT, Rule.DEVICE_LOST, Rule.GATEWAY_LOST,
        Rule.BATTERY_LOW, Rule.WELFARE_CONCERN, Rule.SENSOR_BLIND, Rule.SENSOR_DISAGREES,
        Rule.OUTBOX_FAULT,
    ))
}


def lost_deadline(cfg: HomeConfig, i: int, seen: int, next_s: int, lost: int) -> int:
    """When device ``i``, heard at ``seen``, becomes lost (NEVER if it already is): after
    lost_factor × the interval it promised (a battery node's announced ``next``, else the
    registry's hb_s; DESIGN.md §3, §5)."""
    if lost >> i & 1:
        return NEVER
    p = cfg.profile
    if next_s and p.battery >> i & 1:
        return seen + p.lost_after_ms(next_s)
    return seen + p.lost_ms[i]


def interval_s(d: DeviceInfo, next_s: int) -> int:
    """The interval a device promised (DESIGN.md §3): a battery node's announced ``next``
    if it announced one, else the registry's heartbeat interval."""
    return next_s if next_s and d.power == "battery" else d.hb_s


WELFARE_PRIORITY = Priority.MEDIUM
