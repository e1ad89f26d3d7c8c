"""Simulated devices: clocks, envelopes, outboxes and what they send.

Two clocks, on purpose (DESIGN.md §3, "Envelope"):

* **Device time** is real: every message carries ``ts`` = the real wall-clock
  time at which it is emitted, with ``tq`` 2 (the simulator's host is
  NTP-synced). The receiver trusts device time only when it is NTP-synced and
  within 5 s of its own; stamping simulated time would either be overridden
  by the receiver's clock or, worse, be a lie it believes. Heartbeats, battery
  wakes, re-sends and incident durations therefore run on real time, which is
  also the time the alert engine measures "lost", "30 min" and "12 h" against.
* **Routine time** is simulated: ``SimClock`` maps real time to a faster
  time of day, so at 60× a resident's whole day (sleep, meals, going out) plays
  in 24 real minutes.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from dolbom.protocol import Envelope, Topics, encode_event, encode_status, encode_telemetry
from dolbom.protocol.messages import CLOCK_TOLERANCE_MS
from dolbom.sim.plan import DevicePlan, Power
from dolbom.sim.routine import DAY_S

TQ_NTP = 2


@dataclass(frozen=True, slots=True)
class SimClock:
    """Maps real time (ms) to simulated seconds since local midnight of simulated day 0."""

    start_ms: int  # real time the simulation started
    start_tod_s: float  # simulated time of day at that moment
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError("speed must be > 0")

    def sim(self, now_ms: int) -> float:
        return self.start_tod_s + (now_ms - self.start_ms) / 1000.0 * self.speed

    @staticmethod
    def describe(sim_s: float) -> str:
        """``day 2 07:31`` for display."""
        day, tod = divmod(int(sim_s), DAY_S)
        return f"day {day} {tod // 3600:02d}:{tod % 3600 // 60:02d}"


class MsgClass(enum.StrEnum):
    """Decides QoS and what a full queue may drop (never LIFE_SAFETY)."""

    STATUS = "status"
    TELEMETRY = "telemetry"
    EVENT = "event"  # activity and device events: QoS 1, no outbox
    LIFE_SAFETY = "life_safety"  # QoS 1, outbox until ack


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a device wants to publish."""

    device: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    cls: MsgClass
    name: str  # "status", "telemetry" or the event type
    env: Envelope | None = None  # for envelope messages: lets ``at`` re-encode
    val: str | None = None
    readings: dict[str, float] | None = None

    def at(self, now_ms: int) -> Outgoing:
        """This message as sent at ``now_ms``: marked ``hist`` if it is replayed backlog.

        A message older than the receiver's 5 s clock tolerance is backlog
        (DESIGN.md §3): ``hist`` keeps its device time and tells the alert
        side it is not news, except a life-safety event, which always is.
        """
        env = self.env
        if env is None or env.hist or now_ms - env.ts <= CLOCK_TOLERANCE_MS:
            return self
        old = dataclasses.replace(env, hist=True)
        if self.readings is not None:
            payload = encode_telemetry(old, self.readings)
        else:
            payload = encode_event(old, self.val)
        return dataclasses.replace(self, payload=payload, env=old)

    @property
    def key(self) -> tuple[int, int] | None:
        return None if self.env is None else (self.env.boot, self.env.seq)


@dataclass(slots=True)
class Pending:
    """A life-safety event in a device's outbox, waiting for its ack."""

    msg: Outgoing
    tries: int
    next_ms: int  # when to re-send


@dataclass(slots=True)
class DeviceState:
    """A device's memory: what survives a reboot (boot, outbox, battery) and what does not."""

    plan: DevicePlan
    site: str
    home: str
    boot: int
    battery_pct: float | None  # None for mains
    rssi_dbm: float
    seq: int = 0
    alive: bool = True  # False after ``device_death`` until ``recover``
    link_up: bool = False  # the runner's MQTT connection (set by the shell)
    next_report_ms: int = 0  # heartbeat (mains) or wake (battery)
    battery_low_sent: bool = False
    outbox: dict[tuple[int, int], Pending] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.plan.id

    @property
    def battery(self) -> bool:
        return self.plan.power is Power.BATTERY

    def envelope(self, now_ms: int) -> Envelope:
        """The next envelope of this boot: ``seq`` counts every event and telemetry message."""
        self.seq += 1
        return Envelope(boot=self.boot, seq=self.seq, ts=now_ms, tq=TQ_NTP)

    def telemetry(self, topics: Topics, readings: dict[str, float], now_ms: int) -> Outgoing:
        env = self.envelope(now_ms)
        return Outgoing(
            self.id, topics.telemetry(self.site, self.id), encode_telemetry(env, readings), 0,
            False, MsgClass.TELEMETRY, "telemetry", env=env, readings=readings,
        )

    def status(self, topics: Topics, fw: str, state: str, next_s: int | None = None
               ) -> Outgoing:
        payload = encode_status(state, boot=self.boot, fw=fw, kind=self.plan.kind,
                                hb=self.plan.hb, next=next_s)
        return Outgoing(self.id, topics.status(self.site, self.id), payload, 1, True,
                        MsgClass.STATUS, "status")

    def event(self, topics: Topics, etype: str, val: str | None, now_ms: int,
              cls: MsgClass = MsgClass.EVENT) -> Outgoing:
        """An activity or device event (QoS 1), or with ``cls`` LIFE_SAFETY an alarm."""
        env = self.envelope(now_ms)
        return Outgoing(
            self.id, topics.event(self.site, self.id, etype), encode_event(env, val), 1, False,
            cls, etype, env=env, val=val,
        )

    def reboot(self) -> None:
        """A new boot: ``boot`` is persisted and incremented, ``seq`` starts again."""
        self.boot += 1
        self.seq = 0
        self.battery_low_sent = False
