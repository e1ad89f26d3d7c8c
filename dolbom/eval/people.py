"""The residents of a simulated population: habits drawn per person.

Each person gets a chronotype (early riser, typical, night owl), an activity level,
a nap habit, cooking and outing habits, visitors, night trips, and sometimes a
wandering flag or a slow decline. Everything is drawn from ``random.Random`` seeded
by (seed, home), so a home's person never depends on which other homes are
generated with it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Person:
    chronotype: str  # "early", "typical", "night_owl"
    wake_h: float  # usual wake time, hours after local midnight
    bed_h: float  # usual bed time, hours after the same midnight (> 24: after midnight)
    jitter_min: float  # day-to-day spread of wake and bed times
    weekend_lie_in_h: float  # later wake on Saturday and Sunday
    liveliness: float  # scales motion: 0.5 (frail, slow) .. 1.4
    napper: bool
    nap_h: float
    nap_min: float
    nap_in_bed: bool
    meals: int  # 2 or 3 a day
    cook_prob: float  # chance that a meal is cooked (the kitchen plug draws power)
    out_prob: float  # chance of an outing on a weekday
    day_out_prob: float  # chance of a whole day out (senior centre, family)
    visits_per_week: float  # carers and family coming to the home
    chores_per_day: float  # short door uses: mail, rubbish, a delivery
    night_trips: float  # mean bathroom trips a night
    tv_evenings: float  # chance of an evening in front of the TV
    wandering: bool  # flagged for wandering: night exits are incidents
    decline_from_day: int | None  # activity falls from this day on (None: stable)
    decline_to: float  # the activity factor reached on the last day of a decline


def habits(p: Person, plug: str | None) -> tuple[str, ...]:
    """Tags that explain a false alert with no incident behind it (the report's causes)."""
    tags = [{"early": "early riser", "night_owl": "night owl"}.get(p.chronotype, "typical")]
    if p.napper:
        tags.append("napper")
    if p.cook_prob < 0.3:
        tags.append("rarely cooks")
    if p.out_prob < 0.1:
        tags.append("rarely out")
    if p.day_out_prob > 0:
        tags.append("days out")
    if plug:
        tags.append(f"{plug} plug")
    if p.decline_from_day is not None:
        tags.append("declining")
    return tuple(tags)


CHRONOTYPES = (("early", 0.25), ("typical", 0.55), ("night_owl", 0.20))


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for name, p in table:
        x -= p
        if x < 0:
            return name
    return table[-1][0]


def draw_person(rng: random.Random, days: int) -> Person:
    """One person's habits; ``days`` bounds when a decline may start."""
    chrono = _pick(rng, CHRONOTYPES)
    if chrono == "early":
        wake, bed = rng.uniform(4.3, 5.8), rng.uniform(20.0, 21.5)
    elif chrono == "typical":
        wake, bed = rng.uniform(5.8, 7.8), rng.uniform(21.3, 23.3)
    else:
        wake, bed = rng.uniform(8.0, 10.5), rng.uniform(23.8, 26.0)
    rarely_cooks = rng.random() < 0.2
    rarely_out = rng.random() < 0.2
    napper = rng.random() < 0.35
    declines = rng.random() < 0.06
    return Person(
        chronotype=chrono,
        wake_h=wake,
        bed_h=bed,
        jitter_min=rng.uniform(10, 40),
        weekend_lie_in_h=rng.choice((0.0, 0.0, 0.5, 1.0)),
        liveliness=rng.uniform(0.5, 1.4),
        napper=napper,
        nap_h=rng.uniform(12.8, 15.5),
        nap_min=rng.uniform(30, 110),
        nap_in_bed=rng.random() < 0.5,
        meals=3 if rng.random() < 0.75 else 2,
        cook_prob=rng.uniform(0.03, 0.25) if rarely_cooks else rng.uniform(0.4, 0.95),
        out_prob=rng.uniform(0.01, 0.08) if rarely_out else rng.uniform(0.25, 0.8),
        day_out_prob=rng.uniform(0.05, 0.15) if rng.random() < 0.15 else 0.0,
        visits_per_week=rng.uniform(0.3, 3.5),
        chores_per_day=rng.uniform(0.0, 0.15) if rarely_out else rng.uniform(0.2, 1.5),
        night_trips=rng.uniform(0.0, 2.5),
        tv_evenings=rng.uniform(0.2, 0.95),
        wandering=rng.random() < 0.05,
        decline_from_day=rng.randrange(0, max(1, days // 2)) if declines else None,
        decline_to=rng.uniform(0.25, 0.5),
    )
