"""A simulated home: its state, its routine's timeline and what its sensors read.

Plain functions over ``HomeState``; ``engine.Simulation`` advances every home with them.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from dolbom.sim.incidents import SUPPRESSES_ACTIVITY, ActiveIncident, Incident
from dolbom.sim.model import DeviceState
from dolbom.sim.plan import HomePlan
from dolbom.sim.routine import (
    DAY_S,
    LIGHTS_ON,
    POWER_W,
    STANDBY_W,
    Act,
    Action,
    Activity,
    Profile,
    day_plan,
    daylight_lux,
    humidity_pct,
    relax,
    routine_day_of,
    target_temp_c,
)


@dataclass(slots=True)
class HomeState:
    plan: HomePlan
    profile: Profile
    actions: deque[Action]
    plan_end: float  # the timeline is generated up to this simulated time
    next_day: int
    activity: Activity
    bed: str  # last bed value the sensor reported
    temp_c: float
    last_sim: float
    rng: random.Random  # sensor noise and incidents, seeded per home
    next_random_ms: int | None
    plug_w: float = STANDBY_W
    incidents: dict[str, ActiveIncident] = field(default_factory=dict)
    scheduled: list[tuple[int, str, str]] = field(default_factory=list)  # (due ms, type, val)

    def suppressed(self) -> bool:
        return any(i.kind in SUPPRESSES_ACTIVITY for i in self.incidents.values())

    def has(self, kind: Incident) -> bool:
        return any(i.kind is kind for i in self.incidents.values())


# -- the routine's timeline -------------------------------------------------------
def start_routine(home: HomeState, seed: int, sim_t: float) -> None:
    """Generate the routine day under way at ``sim_t`` and set the state it implies."""
    home.next_day = routine_day_of(home.profile, seed, home.plan.id, sim_t)
    extend(home, seed, sim_t)
    # Apply the past part of the day silently: where the resident is now.
    while home.actions and home.actions[0].t <= sim_t:
        a = home.actions.popleft()
        if a.act is Act.ACTIVITY and a.val is not None:
            home.activity = Activity(a.val)
        elif a.act is Act.BED and a.val is not None:
            home.bed = a.val


def extend(home: HomeState, seed: int, sim_t: float) -> None:
    """Generate routine days until the timeline reaches past ``sim_t``."""
    while home.plan_end <= sim_t or not home.actions:
        _, end, actions = day_plan(home.profile, seed, home.plan.id, home.next_day)
        home.actions.extend(actions)
        home.plan_end = end
        home.next_day += 1
        if end > sim_t and actions:
            break


# -- climate, power, readings -----------------------------------------------------
def climate(home: HomeState, sim_t: float) -> None:
    """The room's temperature moves toward the routine's (or a heat wave's) target."""
    target = target_temp_c(home.profile, sim_t % DAY_S, home.has(Incident.HEAT_WAVE))
    home.temp_c = relax(home.temp_c, target, sim_t - home.last_sim)


def power_w(home: HomeState) -> float:
    if home.suppressed():
        return STANDBY_W
    return POWER_W[home.activity]


def readings(d: DeviceState, home: HomeState, sim_t: float) -> dict[str, float]:
    """What device ``d`` measures in ``home`` now (a plug remembers its draw)."""
    rng = home.rng
    r: dict[str, float] = {"rssi_dbm": float(round(d.rssi_dbm + rng.uniform(-3, 3)))}
    kind = d.plan.kind
    tod = sim_t % DAY_S
    if kind == "multisensor":
        t = home.temp_c + rng.gauss(0, 0.1)
        lux = daylight_lux(tod)
        if home.activity in LIGHTS_ON and not home.suppressed():
            lux += 150.0
        r["temperature_c"] = round(t, 1)
        r["humidity_pct"] = round(humidity_pct(t, tod) + rng.gauss(0, 0.5), 1)
        r["illuminance_lux"] = float(round(max(0.0, lux * rng.uniform(0.9, 1.1))))
    elif kind == "plug":
        w = power_w(home)
        home.plug_w = w
        r["power_w"] = round(w * rng.uniform(0.95, 1.05), 1)
    elif kind == "bed" and home.bed == "in" and not home.suppressed():
        r["heart_rate_bpm"] = float(round(rng.gauss(62, 3)))
        r["breath_rate_bpm"] = float(round(rng.gauss(15, 1.5)))
    if d.battery_pct is not None:
        r["battery_pct"] = round(d.battery_pct, 1)
    return r
