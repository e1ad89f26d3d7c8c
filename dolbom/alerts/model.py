"""Care alerts' shared vocabulary (DESIGN.md §5): rules, priorities, lifecycle, thresholds.

Pure data only: the engine (``engine.py`` and ``rules/``) turns observations and
the time into actions; the store and the service carry the actions out.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


class Priority(enum.StrEnum):
    HIGH = "high"  # life-safety
    MEDIUM = "medium"  # welfare; technical when a home has no working activity sensor
    LOW = "low"  # technical


class AlertClass(enum.StrEnum):
    LIFE_SAFETY = "life_safety"
    WELFARE = "welfare"
    TECHNICAL = "technical"


class Status(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Outcome(enum.StrEnum):
    FALSE_ALARM = "false_alarm"
    VISITED_OK = "visited_ok"
    NEEDS_CARE = "needs_care"
    EMERGENCY_DISPATCHED = "emergency_dispatched"
    HOSPITALISED = "hospitalised"
    DECEASED = "deceased"
    AUTO_CLEARED = "auto_cleared"  # the condition cleared (technical and welfare only)


class Rule(enum.StrEnum):
    # life-safety: one rule per event type
    BUTTON = "button"
    FALL = "fall"
    SMOKE = "smoke"
    GAS = "gas"
    SOS_VOICE = "sos_voice"
    # welfare
    INACTIVITY = "inactivity"
    NO_DOOR_USE = "no_door_use"
    HEAT = "heat"
    COLD = "cold"
    OUT_OF_BED_AT_NIGHT = "out_of_bed_at_night"
    NIGHT_EXIT = "night_exit"
    NO_POWER_USE = "no_power_use"
    WELFARE_CONCERN = "welfare_concern"  # signals far outside this person's norm, with reasons
    # technical
    DEVICE_LOST = "device_lost"
    BATTERY_LOW = "battery_low"
    TAMPER = "tamper"
    GATEWAY_LOST = "gateway_lost"
    SERVICE_UNREACHABLE = "service_unreachable"  # broker, InfluxDB, a notification channel
    SENSOR_BLIND = "sensor_blind"  # motion sensors alive but seeing nothing while others do
    SENSOR_DISAGREES = "sensor_disagrees"  # a reading the home's other sensors contradict
    OUTBOX_FAULT = "outbox_fault"  # a node dropped a life-safety event or cannot write flash
    ACL_DENIED = "acl_denied"  # a device keeps trying to write or read what the broker denies
    BROKER_BACKLOG = "broker_backlog"  # messages pile up in a cell's broker for an absent client


RULE_CLASS: dict[Rule, AlertClass] = {
    **{r: AlertClass.LIFE_SAFETY
       for r in (Rule.BUTTON, Rule.FALL, Rule.SMOKE, Rule.GAS, Rule.SOS_VOICE)},
    **{r: AlertClass.WELFARE
       for r in (Rule.INACTIVITY, Rule.NO_DOOR_USE, Rule.HEAT, Rule.COLD,
                 Rule.OUT_OF_BED_AT_NIGHT, Rule.NIGHT_EXIT, Rule.NO_POWER_USE,
                 Rule.WELFARE_CONCERN)},
    **{r: AlertClass.TECHNICAL
       for r in (Rule.DEVICE_LOST, Rule.BATTERY_LOW, Rule.TAMPER, Rule.GATEWAY_LOST,
                 Rule.SERVICE_UNREACHABLE, Rule.SENSOR_BLIND, Rule.SENSOR_DISAGREES,
                 Rule.OUTBOX_FAULT, Rule.ACL_DENIED, Rule.BROKER_BACKLOG)},
}

DEFAULT_PRIORITY: dict[AlertClass, Priority] = {
    AlertClass.LIFE_SAFETY: Priority.HIGH,
    AlertClass.WELFARE: Priority.MEDIUM,
    AlertClass.TECHNICAL: Priority.LOW,
}

# When a heatwave or a cold snap takes WAVE_HOMES homes of a site over the same limit
# within WAVE_WINDOW, the people get one list ordered by risk, not a push per home.
WAVE_RULES = frozenset({Rule.HEAT, Rule.COLD})
WAVE_HOMES = 3
WAVE_WINDOW = timedelta(hours=2)

# Activity sensors: a message from one of these is a sign of life (DESIGN.md §3).
ACTIVITY_EVENTS = frozenset({"motion", "door", "bed", "presence"})
ACTIVITY_KINDS = frozenset({"multisensor", "pir", "door", "bed", "presence", "radar"})
# The primary activity sensors: they see a person moving about the home, not only a door
# or a bed (DESIGN.md §5, "silence is not safety" per sensor).
MOTION_KINDS = frozenset({"multisensor", "pir", "presence", "radar"})


class InactivityTier(enum.IntEnum):
    CAUTION = 1
    ALARM = 2
    DANGER = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-resident rule settings (DESIGN.md §5 defaults); overrides live in the registry."""

    inactivity_caution_h: float = 12.0
    inactivity_alarm_h: float = 24.0
    inactivity_danger_h: float = 36.0
    # Sleep window, local time "HH:MM": quiet hours there do not count as inactivity.
    sleep_start: str = "22:00"
    sleep_end: str = "07:00"
    no_door_days: float = 3.0
    heat_c: float = 32.0
    cold_c: float = 10.0
    temp_minutes: float = 30.0
    temp_hysteresis_c: float = 1.0
    temp_repeat_h: float = 24.0  # at most one temperature alert per this many hours
    out_of_bed_minutes: float = 30.0
    night_start: str = "22:00"
    night_end: str = "06:00"
    wandering: bool = False  # night exit alerts for residents flagged for wandering
    no_power_h: float = 24.0
    power_on_w: float = 5.0  # above this, the smart plug counts as "in use"
    battery_low_pct: float = 20.0
    lost_factor: float = 3.0  # a device is lost after this many promised intervals
    timezone: str = "Asia/Seoul"


THRESHOLD_SETTINGS = frozenset(f.name for f in dataclasses.fields(Thresholds)) - {"wandering"}


def thresholds_from(overrides: Mapping[str, Any], wandering: bool = False, *,
                    on_bad: Callable[[str], None] | None = None) -> Thresholds:
    """Per-resident settings over the defaults, each converted to its default's type.
    A key that is not a setting, or a value that does not convert, is reported to
    ``on_bad`` (one line) and ignored; without ``on_bad`` it is a ``ValueError``."""
    base = Thresholds()
    kw: dict[str, Any] = {}
    for key, value in overrides.items():
        problem = None
        if key not in THRESHOLD_SETTINGS:
            problem = f"{key!r} is not a threshold setting"
        else:
            default = getattr(base, key)
            kind = type(default)
            try:
                if kind is bool and not isinstance(value, bool):
                    raise TypeError
                kw[key] = kind(value)
            except (TypeError, ValueError):
                problem = f"threshold {key}: {value!r} is not a {kind.__name__}"
        if problem is not None:
            if on_bad is None:
                raise ValueError(problem)
            on_bad(problem)
    return dataclasses.replace(base, wandering=wandering, **kw)


@dataclass(frozen=True, slots=True)
class Escalation:
    """One step of an escalation table: after ``after_s`` unacknowledged, do ``action``."""

    after_s: float
    action: str  # "renotify" (same people again) or "escalate" (next tier of people)


@dataclass(frozen=True, slots=True)
class EscalationTable:
    """Per priority (DESIGN.md §5): high re-notifies at 60 s and escalates at 180 s;
    medium escalates to the supervisor after 30 min. Cancelled by acknowledgement."""

    steps: dict[Priority, tuple[Escalation, ...]] = field(default_factory=lambda: {
        Priority.HIGH: (Escalation(60, "renotify"), Escalation(180, "escalate")),
        Priority.MEDIUM: (Escalation(1800, "escalate"),),
        Priority.LOW: (),
    })
