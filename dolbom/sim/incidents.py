"""What can go wrong in a home, and which alert rule of DESIGN.md §5 each one exercises.

=================  =========================================================  =====================
incident           what the devices show                                      rule it must trigger
=================  =========================================================  =====================
button             ``event/button`` from the pendant (outbox until ack)       life-safety
fall               ``event/fall`` from the pendant, then no activity          life-safety, then
                                                                              inactivity
smoke              ``event/smoke`` from the smoke detector                    life-safety
silence            no motion/door/bed events; every device keeps heartbeating inactivity tiers
device_death       one device stops; its connection drops uncleanly, so the   device ``lost``
                   broker publishes its Will ``lost``
heat_wave          indoor temperature rises to ~34.5 °C and stays there       temperature ≥ 32 °C
                                                                              for 30 min
night_wandering    bed out, motion, the front door opens and shuts; the       night exit (wandering)
                   resident stays out                                         out of bed at night
recover            undoes every lasting incident of the home                  auto-resolve
=================  =========================================================  =====================

Lasting incidents hold until ``recover`` (on command) or until their drawn
duration ends (random ones), measured in *real* time: the alert engine times
"30 min" and "12 h" by the receive clock, not by the simulated day (see
``model``).
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass


class Incident(enum.StrEnum):
    BUTTON = "button"
    FALL = "fall"
    SMOKE = "smoke"
    SILENCE = "silence"
    DEVICE_DEATH = "device_death"
    HEAT_WAVE = "heat_wave"
    NIGHT_WANDERING = "night_wandering"
    RECOVER = "recover"


# Incidents that last until recovered; the others are a single event.
LASTING = frozenset(
    {Incident.FALL, Incident.SILENCE, Incident.DEVICE_DEATH, Incident.HEAT_WAVE,
     Incident.NIGHT_WANDERING}
)
# The resident is not moving in the home (fallen, unresponsive, or gone out at night).
SUPPRESSES_ACTIVITY = frozenset({Incident.FALL, Incident.SILENCE, Incident.NIGHT_WANDERING})

# Random incidents: relative weights, and how long a lasting one lasts (real
# seconds). The durations outlast the default rules they exercise where that
# is practical (heat 30 min, out of bed 30 min); inactivity needs 12 h by
# default, so a demo shortens that rule rather than the simulator lasting 12 h.
RANDOM_WEIGHTS: dict[Incident, float] = {
    Incident.BUTTON: 0.25,
    Incident.FALL: 0.15,
    Incident.SMOKE: 0.05,
    Incident.SILENCE: 0.15,
    Incident.DEVICE_DEATH: 0.15,
    Incident.HEAT_WAVE: 0.10,
    Incident.NIGHT_WANDERING: 0.15,  # only for residents flagged for wandering
}
RANDOM_DURATION_S: dict[Incident, tuple[float, float]] = {
    Incident.FALL: (10 * 60, 20 * 60),
    Incident.SILENCE: (20 * 60, 60 * 60),
    Incident.DEVICE_DEATH: (5 * 60, 15 * 60),
    Incident.HEAT_WAVE: (40 * 60, 90 * 60),
    Incident.NIGHT_WANDERING: (35 * 60, 60 * 60),
}


@dataclass(frozen=True, slots=True)
class ActiveIncident:
    kind: Incident
    since_ms: int
    until_ms: int | None  # None: until recovered on command
    device: str | None = None  # for device_death


def parse_incident(name: str) -> Incident:
    try:
        return Incident(name)
    except ValueError:
        raise ValueError(
            f"unknown incident {name!r}: one of {', '.join(i.value for i in Incident)}"
        ) from None


def next_random_at(rng: random.Random, now_ms: int, rate_per_hour: float) -> int | None:
    """When a home's next random incident happens (a Poisson process in real time)."""
    if rate_per_hour <= 0:
        return None
    return now_ms + math.ceil(rng.expovariate(rate_per_hour / 3_600_000.0))


def draw_random(rng: random.Random, wandering: bool) -> Incident:
    kinds = [k for k in RANDOM_WEIGHTS if wandering or k is not Incident.NIGHT_WANDERING]
    return rng.choices(kinds, weights=[RANDOM_WEIGHTS[k] for k in kinds])[0]


def draw_duration_ms(rng: random.Random, kind: Incident) -> int | None:
    span = RANDOM_DURATION_S.get(kind)
    if span is None:
        return None
    return int(rng.uniform(*span) * 1000)
