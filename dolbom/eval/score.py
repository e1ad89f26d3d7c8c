"""Scoring alerts against the ground truth (docs/evaluation.md).

    score(truth, alerts) -> Score

An alert *reaches a care worker* when its action is ``raise`` or ``notify`` and
``care_worker`` is among its recipients. Rates are per worker per day at a
caseload of 363 homes: count / home-days x 363.

A welfare or technical alert that reaches a care worker is TRUE when a real
item of the home that justifies it overlaps ``[t - PRE_MS, t + 0]`` extended by
``POST_MS`` after the item ends (``start - PRE_MS <= t <= end + POST_MS``):

* ``heat`` / ``cold``: a real hot (>= 32 °C) / cold (<= 10 °C) room;
* any other welfare rule: an immobile resident (collapse, fall without a
  button, death), a fall with a button press, night wandering, days without
  food, or a gradual decline;
* technical: a real fault of the alert's device (any device of the home when
  the alert names none), or a gateway outage of the home.

A stay in hospital or away that nobody told the system is not a danger: the
alerts it causes are FALSE, reported under their own cause, and the precision
that would count them TRUE is reported beside.

Detection delay of an incident: from its start to the first ``raise`` or
``notify`` for that home to a person (care worker, responder or supervisor) at
or after the start; for hot and cold rooms only the ``heat`` / ``cold`` rule
counts, and from ``PRE_MS`` before the start (a sensor that reads a little
warmer than the room crosses the limit first: delay 0). No such alert before
the incident ends: missed. A hot or cold room while its resident is away or in
hospital and the system was told (away/hospital mode suppresses welfare rules,
DESIGN.md §5) endangers nobody: it is counted apart (``away_told``), not as
missed.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dolbom.eval.truth import (
    ABSENCE,
    CONDITION,
    DETECTED,
    FAULT,
    IMMOBILE,
    INCIDENT,
    VISIT,
    Item,
    Truth,
)

CASELOAD = 363  # homes per emergency-care worker (DESIGN.md §1)
HOUR_MS = 3_600_000
PRE_MS = 30 * 60_000  # a rule may fire slightly before the truth's onset (sensor offsets)
POST_MS = 2 * HOUR_MS  # alerts in flight when the incident ends
PERSON_ROLES = frozenset({"care_worker", "responder", "supervisor"})
WELFARE_TRUE = IMMOBILE | {"fall_button", "night_wandering", "no_food", "decline"}
ROOM_RULES = {"heat": "hot_room", "cold": "cold_room"}
DELAY_MARKS_H = (1, 12, 24)


def reaches_worker(a: dict[str, Any]) -> bool:
    return a.get("action") in ("raise", "notify") and "care_worker" in a.get("to", ())


def reaches_person(a: dict[str, Any]) -> bool:
    return a.get("action") in ("raise", "notify") and bool(PERSON_ROLES.intersection(
        a.get("to", ())))


def is_watch(a: dict[str, Any]) -> bool:
    return a.get("action") == "watch" or "watch_list" in a.get("to", ())


def _overlaps(i: Item, t: int) -> bool:
    return i.start_ms - PRE_MS <= t <= i.end_ms + POST_MS


# Which of a person's habits can explain a false alert of a rule with nothing behind it.
HABIT_RULES: dict[str, tuple[str, ...]] = {
    "out_of_bed_at_night": ("early riser", "night owl"),
    "night_exit": ("early riser", "night owl"),
    "inactivity": ("days out", "napper", "night owl", "early riser", "declining"),
    "no_power_use": ("rarely cooks", "tv plug", "kitchen plug"),
    "no_door_use": ("rarely out",),
}


def habit_cause(rule: str, tags: Sequence[str]) -> str:
    """``no incident``, with the person's habit most likely behind it."""
    for tag in HABIT_RULES.get(rule, ()):
        if tag in tags:
            return f"no incident ({tag})"
    return "no incident"


def judge(a: dict[str, Any], items: Sequence[Item]) -> tuple[bool, str]:
    """(TRUE?, cause) of one welfare or technical alert, given its home's truth."""
    t, rule, klass = int(a["t_ms"]), str(a.get("rule", "")), a.get("class")
    near = [i for i in items if _overlaps(i, t)]
    if klass == "technical":
        dev = a.get("device")
        for i in near:
            if i.category == FAULT and (dev is None or i.device == dev
                                        or i.type == "gateway_outage"):
                return True, i.type
    elif rule in ROOM_RULES:
        for i in near:
            if i.type == ROOM_RULES[rule]:
                return True, i.type
    else:
        for i in near:
            if i.type in WELFARE_TRUE:
                return True, i.type
    return False, false_cause(near)


def false_cause(near: Sequence[Item]) -> str:
    """The nearest real explanation of a false alert, most telling first."""
    for cat in (ABSENCE, FAULT, INCIDENT, CONDITION, VISIT):
        for i in near:
            if i.category == cat:
                if cat == ABSENCE and i.type != "day_out":
                    return f"{i.type} ({'told' if i.told else 'not told'})"
                return i.type
    return "no incident"


@dataclass(slots=True)
class Delays:
    """Detection delays of one incident type (hours; None: missed)."""

    delays_h: list[float | None] = field(default_factory=list)
    by_rule: Counter[str] = field(default_factory=Counter)
    away_told: int = 0  # rooms hot or cold while nobody was home, by the system's own mode

    def summary(self) -> dict[str, Any]:
        found = sorted(d for d in self.delays_h if d is not None)
        n = len(self.delays_h)
        out: dict[str, Any] = {"incidents": n, "missed": n - len(found)}
        if self.away_told:
            out["away_told"] = self.away_told
        out["p50_h"] = _pct(found, 0.5)
        out["p90_h"] = _pct(found, 0.9)
        out["max_h"] = round(found[-1], 2) if found else None
        for h in DELAY_MARKS_H:
            out[f"within_{h}h"] = round(sum(d <= h for d in found) / n, 3) if n else None
        out["first_rule"] = dict(self.by_rule.most_common())
        return out


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 2)


@dataclass(slots=True)
class Score:
    """Everything the report needs for one alerting system."""

    home_days: float
    worker: Counter[str] = field(default_factory=Counter)  # class -> alerts reaching workers
    false: Counter[str] = field(default_factory=Counter)  # class -> false ones
    false_causes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, cause)
    true_causes: Counter[tuple[str, str]] = field(default_factory=Counter)
    unannounced_absence: int = 0  # welfare alerts false only through an untold absence
    watch: int = 0
    life_safety: int = 0
    delays: dict[str, Delays] = field(default_factory=dict)
    weekly: dict[int, int] = field(default_factory=dict)  # week -> welfare+technical to workers
    week_home_days: dict[int, float] = field(default_factory=dict)

    def per_worker_day(self, n: float) -> float:
        return n / self.home_days * CASELOAD if self.home_days else 0.0

    def summary(self) -> dict[str, Any]:
        wt = self.worker["welfare"] + self.worker["technical"]
        wt_false = self.false["welfare"] + self.false["technical"]
        welfare, wfalse = self.worker["welfare"], self.false["welfare"]
        imm = Delays()
        for t in sorted(IMMOBILE):
            imm.delays_h += self.delays.get(t, Delays()).delays_h
        return {
            "home_days": round(self.home_days, 1),
            "alerts_to_workers": {k: v for k, v in sorted(self.worker.items())},
            "welfare_technical_per_worker_day": round(self.per_worker_day(wt), 3),
            "false_per_worker_day": round(self.per_worker_day(wt_false), 3),
            "welfare_per_worker_day": round(self.per_worker_day(welfare), 3),
            "technical_per_worker_day": round(self.per_worker_day(self.worker["technical"]), 3),
            "life_safety_per_worker_day": round(self.per_worker_day(self.life_safety), 3),
            "watch_per_worker_day": round(self.per_worker_day(self.watch), 3),
            "welfare_precision": round((welfare - wfalse) / welfare, 3) if welfare else None,
            "welfare_precision_untold_absence_true": (
                round((welfare - wfalse + self.unannounced_absence) / welfare, 3)
                if welfare else None),
            "technical_precision": (
                round(1 - self.false["technical"] / self.worker["technical"], 3)
                if self.worker["technical"] else None),
            "immobile": imm.summary(),
            "delays": {t: d.summary() for t, d in sorted(self.delays.items())},
            "false_by_cause": [{"rule": r, "cause": c, "count": n,
                                "per_worker_day": round(self.per_worker_day(n), 3)}
                               for (r, c), n in self.false_causes.most_common()],
            "true_by_cause": [{"rule": r, "cause": c, "count": n}
                              for (r, c), n in self.true_causes.most_common()],
            "weekly_per_worker_day": {
                w: round(n / self.week_home_days[w] * CASELOAD, 3)
                for w, n in sorted(self.weekly.items()) if self.week_home_days.get(w)},
        }


def score(truth: Truth, alerts: Iterable[dict[str, Any]]) -> Score:
    """Score one system's alerts against the truth."""
    by_home: dict[str, list[Item]] = defaultdict(list)
    for i in truth.items:
        by_home[i.home].append(i)
    s = Score(truth.home_days)
    days = (truth.end_ms - truth.start_ms) / 86_400_000
    weeks = max(1, int(-(-days // 7)))
    weekly = dict.fromkeys(range(1, weeks + 1), 0)
    person_times: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for a in alerts:
        home, klass = a.get("home"), a.get("class")
        if home is None:
            continue
        t = int(a["t_ms"])
        if is_watch(a):
            s.watch += 1
        if reaches_person(a):
            person_times[home].append((t, str(a.get("rule", ""))))
        if not reaches_worker(a):
            continue
        if klass == "life_safety":
            s.life_safety += 1
            continue
        if klass not in ("welfare", "technical"):
            continue
        s.worker[klass] += 1
        week = min(weeks, 1 + int((t - truth.start_ms) // (7 * 86_400_000)))
        weekly[max(1, week)] += 1
        ok, cause = judge(a, by_home.get(home, ()))
        rule = str(a.get("rule", ""))
        if cause == "no incident":
            cause = habit_cause(rule, truth.habits.get(home, ()))
        if ok:
            s.true_causes[(rule, cause)] += 1
        else:
            s.false[klass] += 1
            s.false_causes[(rule, cause)] += 1
            if klass == "welfare" and cause.endswith("(not told)"):
                s.unannounced_absence += 1
    # Weekly rates: each week's own home-days (the last week may be short).
    s.weekly = weekly
    s.week_home_days = {w: truth.homes * min(7.0, days - 7 * (w - 1)) for w in weekly}
    for seen in person_times.values():
        seen.sort()
    for i in truth.items:
        if i.type not in DETECTED:
            continue
        d = s.delays.setdefault(i.type, Delays())
        room = i.type in ROOM_RULES.values()
        if room and any(a.home == i.home and a.category == ABSENCE and a.told
                        and a.start_ms <= i.start_ms < a.end_ms for a in by_home[i.home]):
            d.away_told += 1
            continue
        seen = person_times.get(i.home, [])
        k = bisect.bisect_left(seen, (i.start_ms - (PRE_MS if room else 0), ""))
        hit: tuple[int, str] | None = None
        for t, rule in seen[k:]:
            if t > i.end_ms:
                break
            if room and ROOM_RULES.get(rule) != i.type:
                continue
            hit = (t, rule)
            break
        d.delays_h.append(None if hit is None else max(0, hit[0] - i.start_ms) / HOUR_MS)
        if hit is not None:
            d.by_rule[hit[1]] += 1
    return s


def incident_rates(truth: Truth) -> dict[str, Any]:
    """How often each real thing happens in the population (per 1,000 home-days)."""
    counts = Counter(i.type for i in truth.items)
    k = 1000 / truth.home_days if truth.home_days else 0.0
    welfare = [i for i in truth.items
               if i.type in WELFARE_TRUE or i.type in ROOM_RULES.values()]
    homes_with = len({i.home for i in welfare})
    return {
        "per_1000_home_days": {t: round(n * k, 2) for t, n in sorted(counts.items())},
        "counts": dict(sorted(counts.items())),
        "homes_with_welfare_truth": homes_with,
        "homes": truth.homes,
    }
