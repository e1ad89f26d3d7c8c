"""The engine's vocabulary: a home's configuration, observations, actions and rule state.

``dolbom.alerts.engine`` re-exports all of this; the rule modules next to this one
share it. Configuration, observations, actions and the state are frozen dataclasses,
and every time is an int of ms UTC that the caller passes in: the engine has no clock
and does no I/O (STYLE.md, "Time").

The per-home state is kept small on purpose (DESIGN.md §7: ≤ 1 KB of service state
per home, 300,000 homes): ``HomeState`` is three ``bytes`` values (about 0.4 KB for
six devices) — per-device records in the order of ``HomeConfig.devices``, the home's
scalars, and ``tag``, which remembers which devices (and which thresholds) the state
was built for, so that a registry change is noticed and the records are re-keyed by
device id instead of being silently misread. The rules read and change ``Work``, its
unpacked form, for the length of one engine call.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache

from dolbom.alerts.model import ACTIVITY_KINDS, Priority, Rule, Thresholds
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


@dataclass(frozen=True, slots=True)
class HomeConfig:
    """What the rules need to know about one home. The order of ``devices`` is the order
    of the state's device records; the service may change it (the state is re-keyed)."""

    site: str
    home: str
    mode: str  # "normal" | "away" | "hospital"
    thresholds: Thresholds
    devices: tuple[DeviceInfo, ...]
    # Derived once here rather than on every message (not constructor arguments).
    tag: bytes = field(init=False, repr=False, compare=False)
    mode_index: int = field(init=False, repr=False, compare=False)
    activity: int = field(init=False, repr=False, compare=False)  # bitmask of activity sensors
    doors: int = field(init=False, repr=False, compare=False)
    beds: int = field(init=False, repr=False, compare=False)
    plugs: int = field(init=False, repr=False, compare=False)
    gateways: int = field(init=False, repr=False, compare=False)
    battery: int = field(init=False, repr=False, compare=False)  # battery-powered devices
    lost_ms: tuple[int, ...] = field(init=False, repr=False, compare=False)  # per registry hb
    records: struct.Struct = field(init=False, repr=False, compare=False)  # all REC at once

    def lost_after_ms(self, seconds: int) -> int:
        """How long a device that promised ``seconds`` may stay silent before it is lost."""
        return round(self.thresholds.lost_factor * seconds * 1000)

    def __post_init__(self) -> None:
        # One pass: 300,000 of these are built when the service starts.
        if self.mode not in MODES:
            raise ValueError(f"home {self.home}: mode {self.mode!r} is not one of {MODES}")
        if len(self.devices) > MAX_DEVICES:
            raise ValueError(f"home {self.home}: more than {MAX_DEVICES} devices")
        settings = _thresholds_tag(self.thresholds)  # also checks them
        masks = dict.fromkeys(("activity", "doors", "beds", "plugs", "gateways", "battery"), 0)
        tags: list[int] = []
        lost_ms: list[int] = []
        described: list[str] = []
        for i, d in enumerate(self.devices):
            b = 1 << i
            if d.kind in ACTIVITY_KINDS:
                masks["activity"] |= b
            group = _KIND_GROUP.get(d.kind)
            if group:
                masks[group] |= b
            if d.power == "battery":
                masks["battery"] |= b
            tags.append(_crc(d.device))
            lost_ms.append(self.lost_after_ms(d.hb_s))
            described.append(f"{d.device} {d.kind} {d.power} {d.hb_s}")
        if len({d.device for d in self.devices}) != len(tags):
            raise ValueError(f"home {self.home}: a device is listed twice")
        # The state remembers this tag: each device's id (to re-key its records when the
        # registry changes the home's devices), then everything its cached times depend on.
        described.sort()
        tags.append(_crc("\n".join(described)) ^ settings)
        setattr_ = object.__setattr__
        setattr_(self, "tag", struct.pack(f"<{len(tags)}I", *tags))
        setattr_(self, "mode_index", MODES.index(self.mode))
        for name, mask in masks.items():
            setattr_(self, name, mask)
        setattr_(self, "lost_ms", _shared(tuple(lost_ms)))
        setattr_(self, "records", _records(len(tags) - 1))

    def index(self, device: str) -> int:
        """Position of ``device`` in ``devices``, or -1 if it is not this home's."""
        for i, d in enumerate(self.devices):
            if d.device == device:
                return i
        return -1


@lru_cache(maxsize=4096)
def _shared(value: tuple[int, ...]) -> tuple[int, ...]:
    """One object for equal values: most homes have the same kinds of device."""
    return value


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


# --- observations (validated by dolbom.protocol before they get here) ------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """Any valid message from a device: it is alive (a heartbeat)."""

    device: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class StatusObs:
    device: str
    state: str  # "ready" | "sleeping" | "disconnected" | "lost" (the Last Will)
    hb_s: int | None
    next_s: int | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class ActivityObs:
    device: str
    type: str  # motion | door | bed | presence
    val: str | None
    at_ms: int
    hist: bool


@dataclass(frozen=True, slots=True)
class ReadingObs:
    device: str
    readings: Mapping[str, float]
    at_ms: int
    hist: bool


@dataclass(frozen=True, slots=True)
class LifeSafetyObs:
    device: str
    type: str  # button | fall | smoke | gas | sos_voice
    boot: int
    seq: int
    event_ts_ms: int
    at_ms: int
    hist: bool

    def __post_init__(self) -> None:
        # Checked here so that observe() cannot fail on a life-safety event.
        if self.type not in LIFE_SAFETY_RULES:
            raise ValueError(f"{self.type!r} is not a life-safety event type")


@dataclass(frozen=True, slots=True)
class DeviceEventObs:
    device: str
    type: str  # tamper | battery_low
    at_ms: int


Observation = Seen | StatusObs | ActivityObs | ReadingObs | LifeSafetyObs | DeviceEventObs


# --- actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Raise:
    """Open an alert, or repeat the open one of (home, rule). ``at_ms`` is when the
    condition was met (for a timed rule: the moment it matured)."""

    rule: Rule
    priority: Priority
    at_ms: int
    device: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)
    event_key: tuple[str, int, int] | None = None
    event_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    """The condition cleared: technical and welfare alerts auto-resolve (never life-safety)."""

    rule: Rule
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A welfare rule would have fired; recorded, not notified (mode, or lost sensors)."""

    rule: Rule
    at_ms: int
    reason: str


Action = Raise | Clear | Suppressed


# --- state ---------------------------------------------------------------------------------

# One record per device, in HomeConfig.devices order:
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
        Rule.BATTERY_LOW,
    ))
}


@dataclass(slots=True)
class Work:
    """The rule state of one home, unpacked: a private scratch copy that the rules
    change during one engine call, packed again into a ``HomeState`` at its end.
    (A frozen object per change would cost more than the rules themselves on the
    message path: 30,000 messages a second.)"""

    tag: bytes  # HomeConfig.tag this state was built for
    devs: bytearray  # REC per device
    mode: int  # index in MODES of the mode last applied (a return to normal restarts clocks)
    lost: int  # bitmask over devices: declared lost, not heard since
    battery_low: int  # bitmask over devices
    hot: int  # bitmask over devices: in a hot condition (hysteresis, see temperature.py)
    cold: int
    activity_ms: int  # last activity, or when the inactivity clock (re)started
    inact_tier: int  # inactivity tiers handled in this silence (0-3)
    inact_at: int  # when tier inact_tier + 1 matures; a lower bound until inact_exact
    inact_exact: bool
    door_ms: int  # last door use, or when the no-door-use clock (re)started
    power_ms: int  # last plug use, or when the no-power-use clock (re)started
    bed_out_ms: int  # out of bed at night since (0: not)
    heat_raised_ms: int  # last Raise(HEAT), for at most one per temp_repeat_h (0: never)
    cold_raised_ms: int
    raised: int  # BIT: alerts raised and not cleared (the ones this engine auto-clears)
    pending: int  # BIT: a silence rule matured; waits for a sensor to prove it is alive
    quiet: int  # BIT: welfare rules suppressed in the current episode
    timed_ms: int  # when the next silence rule matures (0: none), as of the last change
    due_ms: int  # when the next timer of any rule fires (0: none), as of the last change

    def rec(self, i: int) -> tuple[int, int, int]:
        """(seen_ms, next_s, temp_ms) of device ``i``."""
        seen, next_s, temp, _ = REC.unpack_from(self.devs, i * REC.size)
        return seen, next_s, temp

    def set_heard(self, cfg: HomeConfig, i: int, seen: int, next_s: int) -> None:
        """Device ``i``'s last message and promised interval (its ``lost`` bit already set
        as it should be): re-arms its lost deadline."""
        o = i * REC.size
        temp = I64.unpack_from(self.devs, o + TEMP_AT)[0]
        REC.pack_into(self.devs, o, seen, next_s, temp,
                      lost_deadline(cfg, i, seen, next_s, self.lost))

    def set_temp(self, i: int, temp: int) -> None:
        I64.pack_into(self.devs, i * REC.size + TEMP_AT, temp)

    def seen(self, i: int) -> int:
        seen: int = I64.unpack_from(self.devs, i * REC.size)[0]
        return seen

    def clear_bits(self, rule: Rule) -> None:
        """Forget ``rule``'s episode (raised, pending and quiet)."""
        keep = ~BIT[rule]
        self.raised &= keep
        self.pending &= keep
        self.quiet &= keep

    def pack_home(self) -> bytes:
        return HOME.pack(
            self.mode, self.lost, self.battery_low, self.hot, self.cold, self.activity_ms,
            self.inact_tier, self.inact_at, self.inact_exact, self.door_ms, self.power_ms,
            self.bed_out_ms, self.heat_raised_ms, self.cold_raised_ms, self.raised,
            self.pending, self.quiet, self.timed_ms, self.due_ms)

    def freeze(self) -> HomeState:
        return HomeState(self.tag, bytes(self.devs), self.pack_home())

    @staticmethod
    def thaw(st: HomeState) -> Work:
        return Work(st.tag, bytearray(st.devs), *HOME.unpack(st.home))


# The home's scalars of Work, in order (masks over devices are uint64: ≤ 64 devices).
HOME = struct.Struct("<B4QqBq?5q3H2q")
TIMERS_SIZE = 16  # timed_ms and due_ms, the last two fields: what a heartbeat can change
HOME_FIELDS = tuple(f.name for f in fields(Work))[2:]  # after tag and devs


@dataclass(frozen=True, slots=True, repr=False)
class HomeState:
    """Rule state of one home, packed (≈ 0.4 KB for six devices; ``Work`` is the
    unpacked form and names every field)."""

    tag: bytes  # HomeConfig.tag the state was built for
    devs: bytes  # REC per device, in HomeConfig.devices order
    home: bytes  # HOME: the home's scalars

    def view(self) -> Work:
        """An unpacked copy, to read (changing it does not change this state)."""
        return Work.thaw(self)

    def __repr__(self) -> str:
        w = self.view()
        fields = ", ".join(f"{n}={getattr(w, n)!r}" for n in HOME_FIELDS)
        recs = list(REC.iter_unpack(self.devs))
        return f"HomeState({fields}, devs={recs})"


def lost_deadline(cfg: HomeConfig, i: int, seen: int, next_s: int, lost: int) -> int:
    """When device ``i``, heard at ``seen``, becomes lost (NEVER if it already is): after
    lost_factor × the interval it promised (a battery node's announced ``next``, else the
    registry's hb_s; DESIGN.md §3, §5)."""
    if lost >> i & 1:
        return NEVER
    if next_s and cfg.battery >> i & 1:
        return seen + cfg.lost_after_ms(next_s)
    return seen + cfg.lost_ms[i]


def interval_s(d: DeviceInfo, next_s: int) -> int:
    """The interval a device promised (DESIGN.md §3): a battery node's announced ``next``
    if it announced one, else the registry's heartbeat interval."""
    return next_s if next_s and d.power == "battery" else d.hb_s


def mode_reason(w: Work) -> str:
    return f"home is in {MODES[w.mode]} mode"


WELFARE_PRIORITY = Priority.MEDIUM
