"""Provision a simulated care site in the registry and keep its plan.

Residents get made-up Korean names, phone numbers and addresses so the
console and the registry look real; that personal data goes into the
registry only (DESIGN.md §6), never into the plan, topics, payloads or logs.
Like the registry's own functions, ``provision_care_home`` flushes and never
commits: ``ensure_plan`` commits only after the plan (the only copy of the
device passwords) is safely on disk.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from dolbom.registry import service
from dolbom.registry.models import Site
from dolbom.sim.errors import PlanError
from dolbom.sim.plan import (
    BATTERY_WAKE_S,
    DEFAULT_KINDS,
    KIND_POWER,
    KIND_PREFIX,
    MAINS_HB_S,
    DevicePlan,
    HomePlan,
    Power,
    SimPlan,
    load_plan,
    save_plan,
)

log = logging.getLogger(__name__)

_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
_GIVEN = ("순자", "영자", "정자", "옥순", "말순", "춘자", "영숙", "정숙", "순희", "복순",
          "영수", "영호", "상철", "병철", "만수", "광수", "정남", "춘식", "용길", "재복")
_DISTRICTS = ("종로구", "중구", "용산구", "성동구", "광진구", "동대문구", "중랑구", "성북구",
              "강북구", "도봉구", "노원구", "은평구", "서대문구", "마포구")
WANDERING_SHARE = 0.15  # share of residents flagged for night wandering (dementia)


@dataclass(frozen=True, slots=True)
class FakeResident:
    name: str
    phone: str
    address: str
    birth_year: int
    wandering: bool


def fake_resident(rng: random.Random) -> FakeResident:
    """A made-up resident (010-0xxx numbers are not issued; the road is fictional)."""
    return FakeResident(
        name=rng.choice(_SURNAMES) + rng.choice(_GIVEN),
        phone=f"010-0{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}",
        address=f"서울특별시 {rng.choice(_DISTRICTS)} 돌봄가상로 {rng.randrange(1, 300)}",
        birth_year=rng.randrange(1930, 1956),
        wandering=rng.random() < WANDERING_SHARE,
    )


def home_id(n: int) -> str:
    return f"h{n:03d}"


def device_id(kind: str, home: str) -> str:
    return f"{KIND_PREFIX[kind]}-{home}"


def provision_care_home(session: Session, site_id: str, homes: int, seed: int, *,
                        kinds: tuple[str, ...] = DEFAULT_KINDS,
                        site_name: str | None = None) -> SimPlan:
    """Add a site with ``homes`` homes, one resident each, and their devices; flush only.

    Raises the registry's errors (``AlreadyExists`` when an id is taken).
    """
    if homes < 1:
        raise ValueError("a care site needs at least one home")
    unknown = [k for k in kinds if k not in KIND_PREFIX]
    if unknown:
        raise ValueError(f"unknown device kinds: {', '.join(unknown)}")
    rng = random.Random(f"{seed}/provision/{site_id}")
    service.add_site(session, site_id, site_name or f"돌봄 시뮬레이션 {site_id}")
    planned: list[HomePlan] = []
    for n in range(1, homes + 1):
        hid = home_id(n)
        service.add_home(session, hid, site_id, label=f"sim-{n:03d}")
        r = fake_resident(rng)
        service.add_resident(session, hid, r.name, phone=r.phone, address=r.address,
                             birth_year=r.birth_year, wandering=r.wandering)
        devices = []
        for kind in kinds:
            power = KIND_POWER[kind]
            hb = MAINS_HB_S if power is Power.MAINS else rng.randrange(*BATTERY_WAKE_S)
            did = device_id(kind, hid)
            _, password = service.add_device(session, did, site_id, hid, kind,
                                             power=power.value, hb_s=hb)
            devices.append(DevicePlan(did, kind, power, hb, password))
        planned.append(HomePlan(hid, tuple(devices), r.wandering))
    return SimPlan(site_id, seed, tuple(planned))


def ensure_plan(factory: sessionmaker[Session], site_id: str, homes: int, seed: int,
                plan_path: Path, *, kinds: tuple[str, ...] = DEFAULT_KINDS
                ) -> tuple[SimPlan, bool]:
    """The plan for ``site_id``: reused from ``plan_path`` if provisioned, else provisioned.

    Returns (plan, created). Idempotent: run it twice and the second run reuses
    the plan. A site in the registry without its plan file cannot be reused
    (its device passwords were shown only once) and raises PlanError.
    """
    existing: SimPlan | None = None
    if plan_path.exists():
        existing = load_plan(plan_path)
        if existing.site != site_id:
            raise PlanError(f"plan file {plan_path} is for site {existing.site}, not {site_id}")
    with factory.begin() as session:
        in_registry = session.get(Site, site_id) is not None
        if existing is not None and in_registry:
            if len(existing.homes) != homes:
                log.warning("reusing plan %s with %d homes (asked for %d)", plan_path,
                            len(existing.homes), homes)
            return existing, False
        if in_registry:
            raise PlanError(
                f"site {site_id} is in the registry but plan file {plan_path} is missing; "
                "its device passwords are gone: provision another site id"
            )
        plan = provision_care_home(session, site_id, homes, seed, kinds=kinds)
        # Still inside the transaction: if the plan cannot be written, nothing is
        # committed, so no device exists whose password nobody has.
        save_plan(plan, plan_path)
    return plan, True
