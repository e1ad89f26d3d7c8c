"""A simulated room's real temperature (docs/evaluation.md): a setpoint with a daily
swing, the site's heat waves (many homes hot on the same days) and heating failures."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from dolbom.eval import life as lf

P_HEATWAVE_SITE = 0.35


@dataclass(frozen=True, slots=True)
class HeatWave:
    day: int
    intensity: float  # 0.8 .. 1.2


def site_heatwaves(seed: int, site: str, days: int) -> tuple[HeatWave, ...]:
    """A site's heat-wave days: many homes of the site are hot on the same days."""
    rng = random.Random(f"{seed}/site/{site}")
    if rng.random() >= P_HEATWAVE_SITE or days < 3:
        return ()
    first = rng.randrange(1, max(2, days - 2))
    return tuple(HeatWave(d, rng.uniform(0.8, 1.2))
                 for d in range(first, min(days, first + rng.randint(2, 5))))


def _bump(h: float, start: float, peak: float, end: float) -> float:
    """0 outside [start, end], 1 at ``peak``, a raised cosine in between."""
    if h <= start or h >= end:
        return 0.0
    x = (h - start) / (peak - start) if h < peak else (end - h) / (end - peak)
    return 0.5 - 0.5 * math.cos(math.pi * x)


@dataclass(frozen=True, slots=True)
class Climate:
    """The room's real temperature: setpoint, a daily swing, heat waves, heating failures."""

    base_c: float
    swing_c: float
    heat_excess: dict[int, float]  # day -> how far above normal the room gets at its peak
    cold: tuple[tuple[int, int, float], ...]  # (from minute, to minute, outdoor-ish °C)

    def at(self, minute: float) -> float:
        day, tod_min = divmod(minute, lf.DAY_MIN)
        h = tod_min / 60
        t = self.base_c + self.swing_c * math.sin(2 * math.pi * (h - 9) / 24)
        ex = self.heat_excess.get(int(day))
        if ex:
            t += ex * _bump(h, 9.0, 16.0, 24.0)
        if int(day) - 1 in self.heat_excess and h < 6:  # the night after a hot day cools slowly
            t += self.heat_excess[int(day) - 1] * 0.25 * (1 - h / 6)
        for a, b, cold in self.cold:
            if a <= minute < b + 180:
                ramp = min(1.0, (minute - a) / 180) if minute < b else 1 - (minute - b) / 180
                t += (cold - t) * max(0.0, ramp)
        return t
