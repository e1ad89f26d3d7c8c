"""What the engine is told: observations of a home's devices, validated by
``dolbom.protocol`` before they get here (every time an int of ms UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dolbom.alerts.rules.base import LIFE_SAFETY_RULES


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
    # The node's own outbox of life-safety events, if it reports one (running totals
    # kept on its flash): (events evicted from a full outbox, failed flash writes).
    outbox: tuple[int, int] | None = None


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
