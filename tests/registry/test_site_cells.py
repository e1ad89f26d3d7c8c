"""Sites belong to cells (migration 0008, docs/scale.md): the cell is validated, and
moving a site to another cell is a registry change for each of its homes, so both
cells' rules processes see it at their next refresh. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.registry import service as registry
from dolbom.registry.errors import InvalidInput, NotFound
from dolbom.registry.models import RegistryChange, RegistryVersion, Site


def _changed_since(s: Session, n: int) -> set[str]:
    return set(s.scalars(select(RegistryChange.home_id).where(RegistryChange.n > n)))


def test_a_site_is_in_the_default_cell_unless_told(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        registry.add_site(s, "s1", "Site 1")
        registry.add_site(s, "s2", "Site 2", cell="busan-1")
    with factory() as s:
        assert {x.id: x.cell for x in s.scalars(select(Site))} == {"s1": "default",
                                                                   "s2": "busan-1"}


@pytest.mark.parametrize("cell", ["", "Busan", "-x", "a/b", "x" * 33, "cell 1"])
def test_a_bad_cell_is_refused_with_its_reason(factory: sessionmaker[Session],
                                               cell: str) -> None:
    with factory.begin() as s, pytest.raises(InvalidInput, match=r"cell .* is not valid"):
        registry.add_site(s, "s1", "Site 1", cell=cell)


def test_moving_a_site_changes_each_of_its_homes_only(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        registry.add_site(s, "s1", "Site 1")
        registry.add_site(s, "s2", "Site 2")
        for home, site in (("h1", "s1"), ("h2", "s1"), ("h3", "s2")):
            registry.add_home(s, home, site)
    with factory() as s:
        n = s.scalars(select(RegistryVersion.n)).one()
    with factory.begin() as s:
        registry.set_site_cell(s, "s1", "seoul-2")
    with factory() as s:
        assert _changed_since(s, n) == {"h1", "h2"}
        n = s.scalars(select(RegistryVersion.n)).one()
    with factory.begin() as s:  # the same cell again: no change
        registry.set_site_cell(s, "s1", "seoul-2")
    with factory() as s:
        assert _changed_since(s, n) == set()
    with factory.begin() as s, pytest.raises(NotFound):
        registry.set_site_cell(s, "nowhere", "seoul-2")
