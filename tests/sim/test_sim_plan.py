"""Plan files and provisioning: 0600, round trip, idempotent, personal data in the registry only."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.sim.errors import PlanError
from dolbom.sim.plan import SimPlan, load_plan, save_plan
from tests.sim.sim_helpers import make_plan


def test_plan_round_trips_through_a_0600_file(tmp_path: Path) -> None:
    """save_plan writes the plan readable by its owner only; load_plan reads it back equal."""
    plan = make_plan(3, wandering=True)
    path = tmp_path / "sub" / "plan.json"
    save_plan(plan, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_plan(path) == plan


def test_plan_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A plan file others can read (it holds passwords) is refused, like an SSH key."""
    path = tmp_path / "plan.json"
    save_plan(make_plan(1), path)
    path.chmod(0o644)
    with pytest.raises(PlanError, match="chmod 600"):
        load_plan(path)


@pytest.mark.parametrize("doc", [
    b"not json",
    b'{"version": 2, "site": "s1", "seed": 1, "homes": []}',
    b'{"version": 1, "site": "S 1", "seed": 1, "homes": []}',
    b'{"version": 1, "site": "s1", "seed": 1, "homes": [{"id": "h1", "devices": '
    b'[{"id": "x", "kind": "toaster", "power": "mains", "hb": 60, "password": "p"}]}]}',
])
def test_bad_plans_raise_plan_error(doc: bytes) -> None:
    """Malformed plans raise PlanError with a reason, never a bare KeyError."""
    with pytest.raises(PlanError):
        SimPlan.from_json(doc)


def test_missing_plan_says_how_to_make_one(tmp_path: Path) -> None:
    """A missing plan file points at `dolbom sim provision`."""
    with pytest.raises(PlanError, match="dolbom sim provision"):
        load_plan(tmp_path / "nope.json")


def test_passwords_stay_out_of_repr() -> None:
    """A plan printed or logged does not show device passwords."""
    assert "pw-" not in repr(make_plan(1))


# -- provisioning (needs the registry) ------------------------------------------------


@pytest.fixture()
def factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    from dolbom.registry.db import make_engine, migrate

    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def test_provision_creates_homes_residents_and_devices(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Provisioning adds the site, h001.., one resident each and <kind>-<home> devices."""
    from dolbom.registry.models import Device, Home, Resident
    from dolbom.sim.provision import ensure_plan

    plan, created = ensure_plan(factory, "s1", 3, 5, tmp_path / "plan.json")
    assert created
    assert [h.id for h in plan.homes] == ["h001", "h002", "h003"]
    assert [d.id for d in plan.homes[0].devices] == [
        "pir-h001", "door-h001", "btn-h001", "smoke-h001", "bed-h001", "plug-h001"]
    with factory() as s:
        assert len(s.scalars(select(Home)).all()) == 3
        residents = s.scalars(select(Resident)).all()
        assert len(residents) == 3 and all(r.name and r.phone for r in residents)
        devices = {d.id: d for d in s.scalars(select(Device))}
    assert devices["btn-h002"].power.value == "battery"
    assert devices["btn-h002"].hb_s == plan.homes[1].device("button").hb  # type: ignore[union-attr]
    assert 300 <= devices["btn-h002"].hb_s < 900 and devices["pir-h002"].hb_s == 60
    # Residents' names are in the registry only: the plan has no Hangul and no phone numbers.
    text = (tmp_path / "plan.json").read_text()
    assert text.isascii() and "010-" not in text
    assert {r.wandering for r in residents} >= {False}
    assert [h.wandering for h in plan.homes] == [r.wandering for r in
                                                  sorted(residents, key=lambda r: r.home_id)]


def test_provision_twice_reuses_the_plan(factory: sessionmaker[Session], tmp_path: Path) -> None:
    """Provisioning an already provisioned site with its plan file returns the same plan."""
    from dolbom.sim.provision import ensure_plan

    first, _ = ensure_plan(factory, "s1", 2, 5, tmp_path / "plan.json")
    again, created = ensure_plan(factory, "s1", 2, 5, tmp_path / "plan.json")
    assert not created and again == first


def test_site_without_its_plan_is_refused(factory: sessionmaker[Session], tmp_path: Path) -> None:
    """A provisioned site whose plan (passwords) is lost cannot be reused silently."""
    from dolbom.sim.provision import ensure_plan

    ensure_plan(factory, "s1", 1, 5, tmp_path / "plan.json")
    with pytest.raises(PlanError, match="missing"):
        ensure_plan(factory, "s1", 1, 5, tmp_path / "other.json")
    with pytest.raises(PlanError, match="for site s1"):
        ensure_plan(factory, "s2", 1, 5, tmp_path / "plan.json")


def test_plan_not_written_means_nothing_committed(factory: sessionmaker[Session],
                                                  tmp_path: Path) -> None:
    """If the plan cannot be written, no device is left in the registry without a password."""
    from dolbom.registry.models import Device
    from dolbom.sim.provision import ensure_plan

    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(OSError):
        ensure_plan(factory, "s1", 1, 5, blocked / "plan.json")
    with factory() as s:
        assert s.scalars(select(Device)).all() == []
