"""Ground truth of a simulated population: what really happened in each home.

Every item is an interval ``[start_ms, end_ms)`` in one home, with a category that
says how the scorer may use it (docs/evaluation.md):

=========== ==================================================================
category    types
=========== ==================================================================
incident    ``collapse_residual``, ``collapse_still``, ``death``, ``fall_button``,
            ``fall_still``, ``night_wandering``, ``no_food``, ``false_press``
condition   ``hot_room``, ``cold_room`` (the room itself, not a sensor's reading),
            ``decline`` (activity below 70 % of the person's own start)
absence     ``hospital``, ``away`` (``told``: a mode entry exists), ``day_out``
fault       ``pir_dead``, ``pir_blind``, ``battery_low``, ``battery_dead``,
            ``plug_unplugged``, ``gateway_outage``, ``sun_spike`` (with ``device``)
visit       ``visit`` (a carer or family in the home)
=========== ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

INCIDENT = "incident"
CONDITION = "condition"
ABSENCE = "absence"
FAULT = "fault"
VISIT = "visit"

# The resident cannot call for help: the events an immobility rule must find.
IMMOBILE = frozenset({"collapse_residual", "collapse_still", "death", "fall_still"})
# Incidents whose delay to a person's alert is reported.
DETECTED = (*sorted(IMMOBILE), "fall_button", "night_wandering", "no_food", "hot_room",
            "cold_room")


@dataclass(frozen=True, slots=True)
class Item:
    """One thing that really happened in one home."""

    site: str
    home: str
    category: str
    type: str
    start_ms: int
    end_ms: int
    device: str | None = None
    told: bool | None = None  # absences: whether a mode entry tells the system

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"site": self.site, "home": self.home, "category": self.category,
                             "type": self.type, "start_ms": self.start_ms,
                             "end_ms": self.end_ms}
        if self.device is not None:
            d["device"] = self.device
        if self.told is not None:
            d["told"] = self.told
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Item:
        return Item(str(d["site"]), str(d["home"]), str(d["category"]), str(d["type"]),
                    int(d["start_ms"]), int(d["end_ms"]), d.get("device"), d.get("told"))


@dataclass(frozen=True, slots=True)
class Truth:
    """The whole population's truth: the run's span and every item."""

    seed: int
    start_ms: int
    end_ms: int
    homes: int
    items: tuple[Item, ...]
    wandering: frozenset[str] = frozenset()  # homes whose resident is flagged for wandering
    habits: dict[str, tuple[str, ...]] = field(default_factory=dict)  # home -> habit tags

    @property
    def home_days(self) -> float:
        return self.homes * (self.end_ms - self.start_ms) / 86_400_000

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "homes": self.homes, "wandering": sorted(self.wandering),
                "habits": {h: list(t) for h, t in sorted(self.habits.items())},
                "items": [i.to_json() for i in self.items]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Truth:
        return Truth(int(d["seed"]), int(d["start_ms"]), int(d["end_ms"]), int(d["homes"]),
                     tuple(Item.from_json(i) for i in d["items"]),
                     frozenset(d.get("wandering", ())),
                     {str(h): tuple(t) for h, t in d.get("habits", {}).items()})


def merge(parts: list[Truth]) -> Truth:
    """One truth from the truths of disjoint sets of homes of the same run."""
    if not parts:
        raise ValueError("no truth to merge")
    first = parts[0]
    return Truth(first.seed, first.start_ms, first.end_ms, sum(p.homes for p in parts),
                 tuple(i for p in parts for i in p.items),
                 frozenset().union(*(p.wandering for p in parts)),
                 {h: t for p in parts for h, t in p.habits.items()})


def write(path: Path, truth: Truth) -> None:
    path.write_bytes(orjson.dumps(truth.to_json(), option=orjson.OPT_INDENT_2))


def read(path: Path) -> Truth:
    return Truth.from_json(orjson.loads(path.read_bytes()))
