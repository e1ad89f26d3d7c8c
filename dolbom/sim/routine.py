"""A resident's day, as a timeline of what the home's sensors would see.

Pure and deterministic: a day's timeline depends only on (seed, home, day), so
any step size of the clock replays the same life, and a test can ask for day 3
without simulating days 0-2. Times are *simulated* seconds since local
midnight of simulated day 0 (see ``model.SimClock``).

A routine day runs from one wake-up to the next, so a night is never cut in
two. It is painted on a one-minute grid (sleep, meals, going out, a visitor,
bathroom trips at night), then swept into actions: a change of activity, bed
in/out, door open/closed, and at most one PIR motion per minute (a PIR holds
its output for about a minute after a detection, so it cannot report faster).
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

DAY_S = 86_400
MIN_S = 60


class Activity(enum.StrEnum):
    SLEEP = "sleep"
    BATHROOM = "bathroom"
    ACTIVE = "active"
    COOKING = "cooking"
    MEAL = "meal"
    RESTING = "resting"  # TV, a nap in the chair: few PIR hits
    VISIT = "visit"  # care worker or family
    OUT = "out"


# Chance of a PIR motion event in a minute of each activity.
MOTION_PER_MIN: dict[Activity, float] = {
    Activity.SLEEP: 0.002,
    Activity.BATHROOM: 0.8,
    Activity.ACTIVE: 0.35,
    Activity.COOKING: 0.7,
    Activity.MEAL: 0.3,
    Activity.RESTING: 0.08,
    Activity.VISIT: 0.7,
    Activity.OUT: 0.0,
}

# What the smart plug (kitchen/TV socket) draws, in W.
STANDBY_W = 3.0
POWER_W: dict[Activity, float] = {
    Activity.SLEEP: STANDBY_W,
    Activity.BATHROOM: STANDBY_W,
    Activity.ACTIVE: 12.0,
    Activity.COOKING: 1050.0,  # rice cooker / induction plate
    Activity.MEAL: 12.0,
    Activity.RESTING: 95.0,  # TV
    Activity.VISIT: 12.0,
    Activity.OUT: STANDBY_W,
}

LIGHTS_ON: frozenset[Activity] = frozenset(
    {Activity.BATHROOM, Activity.ACTIVE, Activity.COOKING, Activity.MEAL, Activity.RESTING,
     Activity.VISIT}
)


class Act(enum.StrEnum):
    ACTIVITY = "activity"  # val: Activity — internal, drives power and lights
    MOTION = "motion"
    DOOR = "door"  # val: "open" | "closed"
    BED = "bed"  # val: "in" | "out"


@dataclass(frozen=True, slots=True)
class Action:
    t: float  # simulated seconds
    act: Act
    val: str | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """One resident's habits (no personal data: derived from the seed and the home id)."""

    wake_s: float  # time of day, seconds
    bed_s: float
    night_trips: float  # mean bathroom trips a night
    out_prob: float  # chance of going out on a day
    visit_prob: float
    liveliness: float  # scales motion: 0.6 (frail) .. 1.3
    base_temp_c: float  # what the home's heating/cooling holds
    rssi_dbm: float


def profile_for(seed: int, home: str) -> Profile:
    rng = random.Random(f"{seed}/{home}/profile")
    return Profile(
        wake_s=rng.uniform(5.5, 7.5) * 3600,
        bed_s=rng.uniform(21.5, 23.5) * 3600,
        night_trips=rng.uniform(0.3, 2.0),
        out_prob=rng.uniform(0.2, 0.7),
        visit_prob=rng.uniform(0.1, 0.4),
        liveliness=rng.uniform(0.6, 1.3),
        base_temp_c=rng.uniform(22.0, 26.0),
        rssi_dbm=rng.uniform(-80.0, -45.0),
    )


def wake_time(profile: Profile, seed: int, home: str, day: int) -> float:
    """When the routine day ``day`` starts (simulated seconds); jitter of about ±20 min."""
    rng = random.Random(f"{seed}/{home}/wake/{day}")
    jitter = max(-45 * MIN_S, min(45 * MIN_S, rng.gauss(0.0, 20 * MIN_S)))
    return day * DAY_S + profile.wake_s + jitter


def routine_day_of(profile: Profile, seed: int, home: str, t: float) -> int:
    """The routine day that contains simulated time ``t`` (it starts at that day's wake-up)."""
    day = math.floor(t / DAY_S)
    return day if t >= wake_time(profile, seed, home, day) else day - 1


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth: fine for the small means used here.
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit and k < 10:
        k += 1
        p *= rng.random()
    return k


def day_plan(profile: Profile, seed: int, home: str, day: int) -> tuple[float, float, list[Action]]:
    """Actions of routine day ``day``: returns (start, end, actions sorted by time)."""
    rng = random.Random(f"{seed}/{home}/day/{day}")
    start = wake_time(profile, seed, home, day)
    end = wake_time(profile, seed, home, day + 1)
    n = int((end - start) // MIN_S)
    midnight = day * DAY_S

    def idx(tod_h: float) -> int:
        return max(0, min(n, int((midnight + tod_h * 3600 - start) // MIN_S)))

    def paint(a: int, b: int, what: Activity, only: frozenset[Activity] | None = None) -> None:
        for i in range(max(0, a), min(n, b)):
            if only is None or grid[i] in only:
                grid[i] = what

    grid = [Activity.ACTIVE] * n
    bed_jitter = max(-45 * MIN_S, min(45 * MIN_S, rng.gauss(0.0, 20 * MIN_S)))
    bed_i = idx((profile.bed_s + bed_jitter) / 3600)
    paint(bed_i, n, Activity.SLEEP)
    awake = frozenset({Activity.ACTIVE})
    paint(idx(13.5), idx(rng.uniform(16.5, 17.5)), Activity.RESTING, awake)
    paint(idx(rng.uniform(19.3, 20.0)), bed_i, Activity.RESTING, awake)
    # Meals: cooking first, then eating.
    meals = [
        int(rng.uniform(25, 50)),
        idx(12.0 + rng.gauss(0, 0.3)),
        idx(18.0 + rng.gauss(0, 0.3)),
    ]
    for m, (cook, eat) in zip(meals, ((10, 20), (15, 25), (20, 35)), strict=True):
        c = int(rng.uniform(cook * 0.6, cook * 1.4))
        e = int(rng.uniform(eat * 0.7, eat * 1.3))
        paint(m, m + c, Activity.COOKING)
        paint(m + c, m + c + e, Activity.MEAL)
    paint(0, int(rng.uniform(5, 12)), Activity.BATHROOM)
    free = frozenset({Activity.ACTIVE, Activity.RESTING})
    if rng.random() < profile.out_prob:
        if rng.random() < 0.5:
            a = idx(9.5 + rng.uniform(0, 0.75))
            b = min(a + int(rng.uniform(60, 120)), meals[1] - 10)
        else:
            a = idx(14.0 + rng.uniform(0, 1.0))
            b = min(a + int(rng.uniform(60, 150)), meals[2] - 10)
        if all(g in free for g in grid[a:b]):
            paint(a, b, Activity.OUT)
    if rng.random() < profile.visit_prob:
        for _ in range(3):
            a = idx(rng.uniform(10.0, 16.5))
            b = a + int(rng.uniform(25, 60))
            if b <= n and all(g in free for g in grid[a:b]):
                paint(a, b, Activity.VISIT)
                break
    for _ in range(min(3, _poisson(rng, profile.night_trips))):
        if n - 20 <= bed_i + 20:
            break
        a = int(rng.uniform(bed_i + 20, n - 20))
        b = a + int(rng.uniform(4, 10))
        if all(g is Activity.SLEEP for g in grid[a - 2 : b + 2]):
            paint(a, b, Activity.BATHROOM)

    actions: list[Action] = []
    prev = Activity.SLEEP  # the previous routine day ends asleep
    for i, cur in enumerate(grid):
        t = start + i * MIN_S
        if cur is not prev:
            actions.extend(_transition(prev, cur, t))
            prev = cur
        if rng.random() < MOTION_PER_MIN[cur] * profile.liveliness:
            actions.append(Action(t + rng.uniform(1.0, 59.0), Act.MOTION))
    actions.sort(key=lambda a: a.t)
    return start, end, actions


def _transition(prev: Activity, cur: Activity, t: float) -> list[Action]:
    out = [Action(t, Act.ACTIVITY, cur.value)]
    if prev is Activity.SLEEP:
        out.append(Action(t, Act.BED, "out"))
    if cur is Activity.SLEEP:
        out.append(Action(t + 5, Act.BED, "in"))
    # Leaving, coming back, a visitor arriving or leaving: the door opens and shuts.
    if cur is Activity.OUT or prev is Activity.OUT or (cur is Activity.VISIT) != (
        prev is Activity.VISIT
    ):
        out.append(Action(t, Act.DOOR, "open"))
        out.append(Action(t + 20, Act.DOOR, "closed"))
    return out


# --------------------------------------------------------------------------
# the home's climate and light


def target_temp_c(profile: Profile, tod_s: float, heat_wave: bool) -> float:
    """What the room drifts towards: a gentle daily swing, or a heat wave's 34-35 °C."""
    swing = 1.2 * math.sin((tod_s / DAY_S - 0.375) * 2 * math.pi)  # warmest mid-afternoon
    if heat_wave:
        # No cooling: the room follows the outside heat (2018 Korean heat wave: 35-39 °C).
        return 34.5 + swing
    return profile.base_temp_c + swing


TEMP_TAU_S = 20 * MIN_S  # how fast a room warms or cools, simulated seconds


def relax(value: float, target: float, dt_s: float, tau_s: float = TEMP_TAU_S) -> float:
    """First-order lag of ``value`` towards ``target`` over ``dt_s``."""
    if dt_s <= 0:
        return value
    return target + (value - target) * math.exp(-dt_s / tau_s)


def daylight_lux(tod_s: float) -> float:
    """Indoor daylight: none before 06:00 or after 19:00, up to ~300 lux at noon."""
    h = tod_s / 3600
    if not 6.0 <= h <= 19.0:
        return 0.0
    return 300.0 * math.sin((h - 6.0) / 13.0 * math.pi)


def humidity_pct(temp_c: float, tod_s: float) -> float:
    return max(20.0, min(90.0, 55.0 - (temp_c - 24.0) * 2.0 + 4.0 * math.cos(tod_s / DAY_S
                                                                              * 2 * math.pi)))
