"""A resident's life over the whole run, painted on a one-minute grid.

The grid holds one state per minute of the run (local minutes from the first
midnight). Days are painted first (sleep, meals, rest, naps, outings, visitors,
night trips), then what goes wrong is painted over them: a hospital stay, a
collapse, a fall, a death, a trip away, days without food, night wandering. Every
incident is written to the ground truth as it is painted, so truth and behaviour
cannot drift apart. Devices read the grid (``population``): a PIR sees motion at a
rate set by the state, the door opens when someone crosses it, the bed sensor sees
the person get in and out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from dolbom.eval.people import Person
from dolbom.eval.truth import ABSENCE, CONDITION, INCIDENT, VISIT, Item

MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MIN = 1440

# States (one byte per minute).
SLEEP, NAP, BATH, ACTIVE, COOK, MEAL, REST, TV, OUT, VISITED, ABSENT, DOWN, DEAD, WANDER, \
    RESCUE = range(15)
STATE_NAMES = ("sleep", "nap", "bath", "active", "cook", "meal", "rest", "tv", "out",
               "visited", "absent", "down", "dead", "wander", "rescue")

# Chance of a PIR hit in a minute of each state, before the person's liveliness.
MOTION_PER_MIN = (0.004, 0.015, 0.8, 0.4, 0.7, 0.3, 0.08, 0.06, 0.0, 0.75, 0.0, 0.0, 0.0,
                  0.0, 0.9)
# The states that need no living resident at home to explain motion (visitors, responders).
OTHERS_MOVE = frozenset({VISITED, RESCUE})
AWAY = frozenset({OUT, ABSENT, WANDER})
FREE = frozenset({ACTIVE, REST, TV})  # what an outing, a nap or a visit may replace
NORMAL = frozenset({SLEEP, NAP, BATH, ACTIVE, COOK, MEAL, REST, TV, VISITED})


@dataclass(slots=True)
class Life:
    """One home's minute grid and the point events that are not states."""

    days: int
    grid: bytearray
    chores: list[int] = field(default_factory=list)  # minute of a short door use
    residual: list[int] = field(default_factory=list)  # ms of motion hits of a fallen person
    presses: list[int] = field(default_factory=list)  # ms of button presses
    no_food: list[tuple[int, int]] = field(default_factory=list)  # minute spans: no plug use
    modes: list[tuple[int, str]] = field(default_factory=list)  # (ms from start, mode)
    truth: list[Item] = field(default_factory=list)
    factor: list[float] = field(default_factory=list)  # activity factor per day (decline)
    cold: list[tuple[int, int, float]] = field(default_factory=list)  # heating failures

    def in_bed(self, state: int, nap_in_bed: bool) -> bool:
        return state == SLEEP or (state == NAP and nap_in_bed)


def _paint(grid: bytearray, a: int, b: int, state: int) -> None:
    a, b = max(0, a), min(len(grid), b)
    if b > a:
        grid[a:b] = bytes((state,)) * (b - a)


def _paint_if(grid: bytearray, a: int, b: int, state: int, allowed: frozenset[int]) -> None:
    for i in range(max(0, a), min(len(grid), b)):
        if grid[i] in allowed:
            grid[i] = state


def _all_in(grid: bytearray, a: int, b: int, allowed: frozenset[int]) -> bool:
    if a < 0 or b > len(grid) or b <= a:
        return False
    return all(g in allowed for g in grid[a:b])


def _poisson(rng: random.Random, mean: float) -> int:
    k, t = 0, rng.expovariate(1.0) if mean > 0 else 2.0
    while mean > 0 and t < mean and k < 20:
        k += 1
        t += rng.expovariate(1.0)
    return k


def decline_factor(person: Person, day: int, days: int) -> float:
    if person.decline_from_day is None or day < person.decline_from_day:
        return 1.0
    span = max(1, days - 1 - person.decline_from_day)
    x = min(1.0, (day - person.decline_from_day) / span)
    return 1.0 - (1.0 - person.decline_to) * x


def paint_days(person: Person, rng: random.Random, days: int, weekday0: int) -> Life:
    """The ordinary days: sleep, meals, rest, naps, outings, visitors, night trips."""
    n = days * DAY_MIN
    grid = bytearray((SLEEP,)) * n
    life = Life(days, grid)
    life.factor = [decline_factor(person, d, days) for d in range(days)]
    wakes: list[int] = []
    beds: list[int] = []
    for d in range(days + 1):
        weekend = (weekday0 + d) % 7 >= 5
        j = max(-3.0, min(3.0, rng.gauss(0, 1))) * person.jitter_min
        wake = d * DAY_MIN + int(person.wake_h * 60 + j
                                 + (person.weekend_lie_in_h * 60 if weekend else 0))
        j = max(-3.0, min(3.0, rng.gauss(0, 1))) * person.jitter_min
        wakes.append(wake)
        beds.append(d * DAY_MIN + int(person.bed_h * 60 + j))
    for d in range(days):
        w, b = wakes[d], min(beds[d], wakes[d + 1] - 240)
        f = life.factor[d]
        weekend = (weekday0 + d) % 7 >= 5
        _paint(grid, w, b, ACTIVE)
        _paint(grid, w, w + int(rng.uniform(5, 12)), BATH)
        # Meals: breakfast after waking, lunch, dinner; cooked or not.
        times = [w + int(rng.uniform(25, 60))]
        if person.meals == 3:
            times.append(max(d * DAY_MIN + 720, w + 180) + int(rng.gauss(0, 20)))
        times.append(max(d * DAY_MIN + 1080, w + 420) + int(rng.gauss(0, 30)))
        if rng.random() < 0.75:
            a = d * DAY_MIN + int(rng.uniform(13.3, 14.5) * 60)
            _paint_if(grid, a, a + int(rng.uniform(60, 180)), REST, FREE)
        evening = max(times[-1] + 40, d * DAY_MIN + int(rng.uniform(19.0, 20.5) * 60))
        _paint_if(grid, evening, b, TV if rng.random() < person.tv_evenings else REST, FREE)
        for meal in times:
            t = meal
            if rng.random() < person.cook_prob * (0.5 + 0.5 * f):
                c = int(rng.uniform(10, 35))
                _paint(grid, t, t + c, COOK)
                t += c
            _paint(grid, t, t + int(rng.uniform(12, 30)), MEAL)
        if person.napper and rng.random() < 0.8:
            a = d * DAY_MIN + int(person.nap_h * 60 + rng.gauss(0, 20))
            _paint_if(grid, a, a + int(person.nap_min * rng.uniform(0.6, 1.4)), NAP, FREE)
        if rng.random() < person.day_out_prob * (1.5 if weekend else 1.0):
            _paint_if(grid, w + int(rng.uniform(60, 150)), b - int(rng.uniform(45, 180)), OUT,
                      NORMAL - {SLEEP})
        else:
            outings = 1 + (rng.random() < 0.3)
            for _ in range(outings):
                if rng.random() < person.out_prob * f * (1.2 if weekend else 1.0):
                    a = w + int(rng.uniform(90, max(120, b - w - 240)))
                    e = a + int(rng.uniform(30, 200))
                    if _all_in(grid, a, e, FREE | {MEAL}):
                        _paint(grid, a, e, OUT)
        if rng.random() < person.visits_per_week / 7:
            for _ in range(4):
                a = d * DAY_MIN + int(rng.uniform(9.5, 17.0) * 60)
                e = a + int(rng.uniform(30, 150))
                if _all_in(grid, a, e, FREE | {MEAL, COOK}):
                    _paint(grid, a, e, VISITED)
                    life.truth.append(Item("", "", VISIT, "visit", a * MIN_MS, e * MIN_MS))
                    break
        for _ in range(_poisson(rng, person.chores_per_day * f)):
            a = int(rng.uniform(w + 30, max(w + 31, b - 30)))
            if a < n and grid[a] in FREE:
                life.chores.append(a)
        # Night trips: the bathroom between bed and the next wake.
        nb, nw = b, wakes[d + 1]
        for _ in range(min(3, _poisson(rng, person.night_trips))):
            a = int(rng.uniform(nb + 30, max(nb + 31, nw - 30)))
            e = a + int(rng.uniform(3, 10))
            if _all_in(grid, a - 2, e + 2, frozenset({SLEEP})):
                _paint(grid, a, e, BATH)
    for d, f in enumerate(life.factor):
        if f <= 0.7:
            life.truth.append(Item("", "", CONDITION, "decline", d * DAY_MIN * MIN_MS,
                                   days * DAY_MIN * MIN_MS))
            break
    return life


# --------------------------------------------------------------------------
# what goes wrong


def _minute_in(rng: random.Random, grid: bytearray, lo: int, hi: int,
               states: frozenset[int], tries: int = 60) -> int | None:
    """A random minute in [lo, hi) whose state is in ``states``."""
    if hi <= lo:
        return None
    for _ in range(tries):
        m = rng.randrange(lo, hi)
        if grid[m] in states:
            return m
    return None


def _clear(grid: bytearray, a: int, b: int) -> bool:
    """True if [a, b) holds only ordinary life (nothing already painted over it)."""
    return _all_in(grid, max(0, a), min(len(grid), b), NORMAL | {OUT})


def _stay(life: Life, rng: random.Random, kind: str, a: int, b: int, told_p: float,
          mode: str) -> None:
    """Nobody home in [a, b): a hospital stay or a trip away, told to the system or not."""
    n = len(life.grid)
    _paint(life.grid, a, b, ABSENT)
    told = rng.random() < told_p
    life.truth.append(Item("", "", ABSENCE, kind, a * MIN_MS, min(b, n) * MIN_MS, told=told))
    if told:
        # A relative calls the centre (hospital), or the resident says so before leaving.
        lag = int(rng.uniform(60, 24 * 60)) if mode == "hospital" else -int(rng.uniform(10, 600))
        life.modes.append(((a + lag) * MIN_MS, mode))
        if b < n:
            life.modes.append(((b + int(rng.uniform(0, 12 * 60))) * MIN_MS, "normal"))


def _found(life: Life, rng: random.Random, at: int, then_hospital: bool) -> None:
    """Someone finds the resident at ``at``: responders in the home, then an empty home."""
    n = len(life.grid)
    r = at + int(rng.uniform(30, 90))
    _paint(life.grid, at, r, RESCUE)
    if not then_hospital or r >= n:
        _paint(life.grid, r, n, ABSENT)
        return
    _stay(life, rng, "hospital", r, r + int(rng.uniform(3, 12) * DAY_MIN), 0.5, "hospital")


def paint_incidents(life: Life, person: Person, rng: random.Random, major: str | None,
                    has_plug: bool) -> None:
    """Paint this home's incidents over its ordinary days; write each to the truth."""
    g = life.grid
    n = len(g)
    first = min(2 * DAY_MIN, n // 3)  # leave the first days for baselines to form
    awake = frozenset({ACTIVE, REST, TV, COOK, MEAL})
    if major == "hospital":
        m = _minute_in(rng, g, first, n - 60, awake)
        if m is not None:
            _stay(life, rng, "hospital", m, m + int(rng.uniform(2, 12) * DAY_MIN), 0.55,
                  "hospital")
    elif major in ("collapse_residual", "collapse_still", "fall_still", "death"):
        night = major in ("fall_still", "death") and rng.random() < 0.45
        states = frozenset({BATH, SLEEP}) if night else awake
        if major == "fall_still" and night:
            states = frozenset({BATH})
        m = _minute_in(rng, g, first, n - 60, states, 200) or _minute_in(rng, g, first,
                                                                         n - 60, awake)
        if m is not None:
            lo, hi = (24, 96) if major == "death" else (26, 72)
            found = m + int(rng.uniform(lo, hi) * 60)
            _paint(g, m, found, DEAD if major == "death" else DOWN)
            if major == "collapse_residual":
                for _ in range(rng.randint(2, 6)):
                    # Trying to get up or crawl: hits thin out over the first hour.
                    life.residual.append(m * MIN_MS + int(rng.triangular(0, 60, 0) * MIN_MS))
                life.residual.sort()
            life.truth.append(Item("", "", INCIDENT, major, m * MIN_MS, min(found, n) * MIN_MS))
            if found < n:
                _found(life, rng, found, major != "death")
    # Minor incidents: placed only over ordinary life.
    if rng.random() < 0.03:
        m = _minute_in(rng, g, first, n - 120, awake)
        if m is not None and _clear(g, m, m + 180):
            arrive = m + int(rng.uniform(15, 45))
            _paint(g, m, arrive, DOWN)
            life.presses.append(m * MIN_MS + int(rng.uniform(10_000, 180_000)))
            life.truth.append(Item("", "", INCIDENT, "fall_button", m * MIN_MS,
                                   arrive * MIN_MS))
            if rng.random() < 0.3:
                r = arrive + int(rng.uniform(20, 60))
                _paint(g, arrive, r, RESCUE)
                end = r + int(rng.uniform(1, 5) * DAY_MIN)
                if _clear(g, r, end):
                    _stay(life, rng, "hospital", r, end, 0.7, "hospital")
            else:
                _paint(g, arrive, arrive + int(rng.uniform(20, 60)), RESCUE)
    if rng.random() < 0.05:
        m = _minute_in(rng, g, first, n - 10, awake)
        if m is not None and _clear(g, m, m + 10):
            life.presses.append(m * MIN_MS + int(rng.uniform(0, 50_000)))
            life.truth.append(Item("", "", INCIDENT, "false_press", m * MIN_MS,
                                   (m + 10) * MIN_MS))
    if rng.random() < 0.08:
        m = _minute_in(rng, g, first, n - DAY_MIN, awake)
        end = (m or 0) + int(rng.uniform(1, 4) * DAY_MIN)
        if m is not None and _clear(g, m, end):
            _stay(life, rng, "away", m, end, 0.35, "away")
    if has_plug and rng.random() < 0.05:
        d0 = rng.randrange(first // DAY_MIN, max(first // DAY_MIN + 1, life.days - 2))
        a, b = d0 * DAY_MIN, min(n, (d0 + rng.randint(2, 5)) * DAY_MIN)
        life.no_food.append((a, b))
        for i in range(a, b):  # no cooking, no TV: the person is listless and not eating
            if g[i] in (COOK, MEAL, TV):
                g[i] = REST if g[i] == TV else ACTIVE
        life.truth.append(Item("", "", INCIDENT, "no_food", a * MIN_MS, b * MIN_MS))
    if rng.random() < 0.02:
        m = rng.randrange(first, max(first + 1, n - 6 * 60))
        e = min(n, m + int(rng.uniform(6, 30) * 60))
        life.cold.append((m, e, rng.uniform(4.0, 8.5)))
    if person.wandering:
        for d in range(first // DAY_MIN, life.days):
            if rng.random() < 0.2:
                m = _minute_in(rng, g, d * DAY_MIN + 22 * 60 - DAY_MIN if d else 0,
                               min(n, d * DAY_MIN + 5 * 60), frozenset({SLEEP}), 30)
                if m is None or m < first:
                    continue
                e = m + int(rng.uniform(15, 90))
                if _all_in(g, m, e, frozenset({SLEEP, BATH})):
                    _paint(g, m, e, WANDER)
                    life.truth.append(Item("", "", INCIDENT, "night_wandering", m * MIN_MS,
                                           e * MIN_MS))
