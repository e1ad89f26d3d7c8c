"""What was provisioned for a simulated care site: homes, devices, their credentials.

A ``SimPlan`` is written once by ``dolbom sim provision`` and read by
``dolbom sim run``. It holds device passwords (the registry shows them only
once), so the file is written 0600 and refused when others can read it, like
an SSH key. It holds no personal data: residents' names live only in the
registry (DESIGN.md §6); the plan knows homes and devices by opaque id.
"""

from __future__ import annotations

import enum
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from dolbom.files import write_atomic
from dolbom.protocol import check_id
from dolbom.sim.errors import PlanError

PLAN_VERSION = 1


class Power(enum.StrEnum):
    MAINS = "mains"
    BATTERY = "battery"


# Device kinds of DESIGN.md §1 and the id prefix each gets (``pir-h001``).
KIND_PREFIX: dict[str, str] = {
    "multisensor": "pir",
    "door": "door",
    "button": "btn",
    "smoke": "smoke",
    "bed": "bed",
    "plug": "plug",
}
# A bed mat and a smart plug sit next to a socket; door contacts, pendants and
# smoke detectors run for years on a coin cell (DESIGN.md §3, "Delivery").
KIND_POWER: dict[str, Power] = {
    "multisensor": Power.MAINS,
    "door": Power.BATTERY,
    "button": Power.BATTERY,
    "smoke": Power.BATTERY,
    "bed": Power.MAINS,
    "plug": Power.MAINS,
}
DEFAULT_KINDS: tuple[str, ...] = ("multisensor", "door", "button", "smoke", "bed", "plug")
MAINS_HB_S = 60
BATTERY_WAKE_S = (300, 900)  # battery nodes wake every 5-15 min (DESIGN.md §3)


@dataclass(frozen=True, slots=True)
class DevicePlan:
    id: str
    kind: str
    power: Power
    hb: int  # heartbeat (mains) or wake interval (battery), seconds
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class HomePlan:
    id: str
    devices: tuple[DevicePlan, ...]
    wandering: bool = False  # resident flagged for night wandering (DESIGN.md §5)

    def device(self, kind: str) -> DevicePlan | None:
        return next((d for d in self.devices if d.kind == kind), None)


@dataclass(frozen=True, slots=True)
class SimPlan:
    site: str
    seed: int
    homes: tuple[HomePlan, ...]

    def devices(self) -> Iterator[tuple[HomePlan, DevicePlan]]:
        for home in self.homes:
            for dev in home.devices:
                yield home, dev

    def home(self, home_id: str) -> HomePlan | None:
        return next((h for h in self.homes if h.id == home_id), None)

    # -- JSON ------------------------------------------------------------------
    def to_json(self) -> bytes:
        doc = {
            "version": PLAN_VERSION,
            "site": self.site,
            "seed": self.seed,
            "homes": [
                {
                    "id": h.id,
                    "wandering": h.wandering,
                    "devices": [
                        {"id": d.id, "kind": d.kind, "power": d.power.value, "hb": d.hb,
                         "password": d.password}
                        for d in h.devices
                    ],
                }
                for h in self.homes
            ],
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> SimPlan:
        try:
            doc = orjson.loads(data)
            if doc.get("version") != PLAN_VERSION:
                raise PlanError(f"plan version {doc.get('version')!r} is not {PLAN_VERSION}")
            homes = []
            seen: set[str] = set()
            for h in doc["homes"]:
                devices = []
                for d in h["devices"]:
                    dev_id = check_id(str(d["id"]), "device id")
                    if dev_id in seen:
                        raise PlanError(f"device {dev_id} appears twice in the plan")
                    seen.add(dev_id)
                    kind = str(d["kind"])
                    if kind not in KIND_PREFIX:
                        raise PlanError(f"device {dev_id} has unknown kind {kind!r}")
                    hb = int(d["hb"])
                    if not 1 <= hb <= 86_400:
                        raise PlanError(f"device {dev_id} has hb {hb} outside 1..86400 s")
                    devices.append(DevicePlan(dev_id, kind, Power(d["power"]), hb,
                                              str(d["password"])))
                homes.append(HomePlan(str(h["id"]), tuple(devices), bool(h.get("wandering"))))
            return cls(check_id(str(doc["site"]), "site id"), int(doc["seed"]), tuple(homes))
        except PlanError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise PlanError(f"plan is not valid: {e}") from None


def save_plan(plan: SimPlan, path: Path) -> None:
    """Write ``plan`` atomically, readable by its owner only (it holds passwords)."""
    write_atomic(path, plan.to_json())


def load_plan(path: Path) -> SimPlan:
    """Read a plan written by ``save_plan``; refuse one that others can read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist: run `dolbom sim provision`") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PlanError(
            f"plan file {path} holds device passwords but is readable by others "
            f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it"
        )
    return SimPlan.from_json(path.read_bytes())

