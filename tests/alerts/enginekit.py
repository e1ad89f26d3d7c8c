"""A care home driven through the rules engine with an injected clock (no sleeps).

``Home`` keeps a state, a clock and a log of (time of the call, action). Devices send
their heartbeats by themselves while the clock moves (``run``), unless ``silence``d;
the timer is driven exactly as the service drives it: ``tick`` at ``next_deadline``.
"""

from __future__ import annotations

import gc
import heapq
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from dolbom.alerts.engine import (
    Action,
    ActivityObs,
    Clear,
    DeviceEventObs,
    DeviceInfo,
    HomeConfig,
    HomeState,
    LifeSafetyObs,
    Observation,
    Raise,
    ReadingObs,
    Seen,
    StatusObs,
    Suppressed,
    Watch,
    initial_state,
    next_deadline,
    observe,
    tick,
)
from dolbom.alerts.model import Priority, Rule, Thresholds

SEOUL = ZoneInfo("Asia/Seoul")
S = 1000
MIN = 60 * S
H = 60 * MIN
DAY = 24 * H


def local(day: int, hh: int, mm: int = 0) -> int:
    """ms UTC of June ``day``, 2025, ``hh:mm`` in Seoul (a Monday when day = 2)."""
    return round(datetime(2025, 6, day, hh, mm, tzinfo=SEOUL).timestamp() * 1000)


PIR = DeviceInfo("pir-1", "multisensor", "mains", 60)
DOOR = DeviceInfo("door-1", "door", "battery", 300)
BUTTON = DeviceInfo("btn-1", "button", "battery", 300)
SMOKE = DeviceInfo("smoke-1", "smoke", "battery", 300)
BED = DeviceInfo("bed-1", "bed", "mains", 60)
PLUG = DeviceInfo("plug-1", "plug", "mains", 60)
GATEWAY = DeviceInfo("gw-1", "gateway", "mains", 60)
SIX = (PIR, DOOR, BUTTON, SMOKE, BED, PLUG)  # the typical home of DESIGN.md §1
PIR_ONLY = (PIR, BUTTON)  # one activity sensor


@dataclass
class Home:
    devices: tuple[DeviceInfo, ...] = SIX
    start: int = local(2, 8)
    mode: str = "normal"
    thresholds: Thresholds = field(default_factory=Thresholds)
    cfg: HomeConfig = field(init=False)
    state: HomeState = field(init=False)
    now: int = field(init=False)
    log: list[tuple[int, Action]] = field(default_factory=list)
    silent: set[str] = field(default_factory=set)  # devices that send nothing
    next_hb: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cfg = HomeConfig("s1", "h1", self.mode, self.thresholds, self.devices)
        self.state = initial_state(self.cfg, self.start)
        self.now = self.start
        self.next_hb = {d.device: self.start + d.hb_s * S for d in self.devices}

    # --- the configuration ------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        self.cfg = HomeConfig("s1", "h1", mode, self.cfg.thresholds, self.cfg.devices)

    def reconfigure(self, devices: tuple[DeviceInfo, ...] | None = None,
                    thresholds: Thresholds | None = None) -> None:
        self.cfg = HomeConfig("s1", "h1", self.cfg.mode, thresholds or self.cfg.thresholds,
                              devices if devices is not None else self.cfg.devices)
        for d in self.cfg.devices:
            self.next_hb.setdefault(d.device, self.now + d.hb_s * S)

    # --- driving ------------------------------------------------------------------------
    def observe(self, obs: Observation) -> list[Action]:
        assert obs.at_ms >= self.now or getattr(obs, "hist", False), "the clock only moves on"
        self.now = max(self.now, obs.at_ms)
        self.state, acts = observe(self.cfg, self.state, obs)
        self.log.extend((self.now, a) for a in acts)
        return acts

    def tick(self, at: int) -> list[Action]:
        self.now = at
        self.state, acts = tick(self.cfg, self.state, at)
        self.log.extend((at, a) for a in acts)
        return acts

    def deadline(self) -> int | None:
        return next_deadline(self.cfg, self.state)

    def run(self, until: int) -> list[Action]:
        """Move the clock to ``until``: heartbeats of the devices not silenced, and ticks at
        every deadline, in time order (at equal times, the message first)."""
        n = len(self.log)
        hb_s = {d.device: d.hb_s * S for d in self.cfg.devices}
        beats = [(t, d) for d, t in self.next_hb.items() if d not in self.silent and d in hb_s]
        heapq.heapify(beats)
        while True:
            hb_at, hb_dev = beats[0] if beats else (until + 1, "")
            dl = self.deadline()
            if dl is not None and dl < hb_at and dl <= until:
                self.tick(dl)
            elif hb_at <= until:
                self.observe(Seen(hb_dev, hb_at))
                self.next_hb[hb_dev] = hb_at + hb_s[hb_dev]
                heapq.heapreplace(beats, (self.next_hb[hb_dev], hb_dev))
            else:
                break
        self.now = until
        return [a for _, a in self.log[n:]]

    def routine(self, days: int, *, every: int = 20 * MIN, plug_at: int | None = 12,
                door_at: int | None = 10, until: int | None = None) -> None:
        """``days`` ordinary days from the current one (and not past ``until``): the
        resident moves about from 07:00 to 22:00 (a motion every ``every``), uses the
        door at ``door_at`` and the plug at ``plug_at`` o'clock (None: not); the home
        learns its baselines. The clock then runs on to ``until``, if given."""
        day0 = datetime.fromtimestamp(self.now / 1000, SEOUL)
        for d in range(days):
            base = round(datetime(day0.year, day0.month, day0.day,
                                  tzinfo=SEOUL).timestamp() * 1000) + d * DAY
            for t in range(base + 7 * H, base + 22 * H, every):
                if t <= self.now:
                    continue
                if until is not None and t > until:
                    break
                if plug_at is not None and t == base + plug_at * H and PLUG in self.devices:
                    self.reading(PLUG, t, power_w=600.0)
                if door_at is not None and t == base + door_at * H and DOOR in self.devices:
                    self.activity(DOOR, t, "door", "open")
                    continue
                self.activity(PIR, t)
        if until is not None:
            self.run(until)

    def catch_up(self, at: int) -> None:
        """Heartbeats and timers up to just before ``at`` (an observation comes at ``at``)."""
        if at > self.now:
            self.run(at - 1)

    def silence(self, *devices: DeviceInfo) -> None:
        self.silent.update(d.device for d in devices)

    def revive(self, device: DeviceInfo, at: int) -> list[Action]:
        self.catch_up(at)
        self.silent.discard(device.device)
        self.next_hb[device.device] = at + device.hb_s * S
        return self.observe(Seen(device.device, at))

    # --- observations ---------------------------------------------------------------------
    def activity(self, dev: DeviceInfo, at: int, type_: str = "motion", val: str | None = None,
                 hist: bool = False) -> list[Action]:
        if not hist:
            self.catch_up(at)
        return self.observe(ActivityObs(dev.device, type_, val, at, hist))

    def reading(self, dev: DeviceInfo, at: int, hist: bool = False,
                **readings: float) -> list[Action]:
        if not hist:
            self.catch_up(at)
        return self.observe(ReadingObs(dev.device, readings, at, hist))

    def status(self, dev: DeviceInfo, at: int, state: str = "sleeping",
               next_s: int | None = None) -> list[Action]:
        self.catch_up(at)
        return self.observe(StatusObs(dev.device, state, dev.hb_s, next_s, at))

    def event(self, dev: DeviceInfo, type_: str, at: int) -> list[Action]:
        self.catch_up(at)
        return self.observe(DeviceEventObs(dev.device, type_, at))

    def life_safety(self, dev: DeviceInfo, type_: str, at: int, seq: int = 1,
                    hist: bool = False) -> list[Action]:
        self.catch_up(at)
        return self.observe(LifeSafetyObs(dev.device, type_, 3, seq, at - 20, at, hist))

    # --- what happened --------------------------------------------------------------------
    def raised(self, rule: Rule | None = None) -> list[Raise]:
        return [a for _, a in self.log if isinstance(a, Raise) and rule in (None, a.rule)]

    def fixed(self) -> list[Raise]:
        """The raises of the fixed-limit rules: all but the quiet concern, which learns
        this person's pattern (tested on its own in test_rules_concern.py)."""
        return [r for r in self.raised() if r.rule is not Rule.WELFARE_CONCERN]

    def watched(self, rule: Rule | None = None) -> list[Watch]:
        return [a for _, a in self.log if isinstance(a, Watch) and rule in (None, a.rule)]

    def cleared(self, rule: Rule | None = None) -> list[Clear]:
        return [a for _, a in self.log if isinstance(a, Clear) and rule in (None, a.rule)]

    def suppressed(self, rule: Rule | None = None) -> list[Suppressed]:
        return [a for _, a in self.log if isinstance(a, Suppressed) and rule in (None, a.rule)]


def rules(actions: Iterable[Action]) -> list[tuple[str, Rule]]:
    return [(type(a).__name__, a.rule) for a in actions]


def raise_of(rule: Rule, at: int, priority: Priority = Priority.MEDIUM) -> tuple[Rule, int, str]:
    return rule, at, priority.value


def deep_size(obj: object) -> int:
    """Bytes of ``obj`` and everything it references, each object once, leaving out what
    every home shares (types, None, booleans, small ints, interned names)."""
    seen: set[int] = set()
    total = 0
    todo = [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, type) or o is None or isinstance(o, bool):
            continue
        if isinstance(o, int) and -5 <= o <= 256:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        todo.extend(gc.get_referents(o))
    return total
