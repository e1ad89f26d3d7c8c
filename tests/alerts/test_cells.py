"""An alert service takes only its cell's homes (``DOLBOM_ALERTS__CELL``, docs/scale.md):
another cell's homes are never evaluated here (they would look silent: their devices
speak to another broker), and a site moved between cells changes hands at the next
registry refresh. SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.registry import service as registry
from tests.alerts.conftest import People


def _service(db_url: str, cell: str) -> AlertService:
    return AlertService(AlertsSettings(database_url=db_url,
                                       alerts=AlertOptions(metrics_port=0, cell=cell)),
                        clock=lambda: 1_700_000_000.0)


async def test_each_cell_takes_its_sites_homes_and_a_moved_site_changes_hands(
        care_db: tuple[Session, People], db_url: str) -> None:
    s, _ = care_db  # its site s1 is in the default cell
    with s.begin():
        registry.add_site(s, "sb", "Busan", cell="busan")
        registry.add_home(s, "hb1", "sb")
        registry.add_device(s, "ms-hb1", "sb", "hb1", "multisensor")
    default, busan = _service(db_url, "default"), _service(db_url, "busan")
    await default.registry.load()
    await busan.registry.load()
    assert "hb1" not in default.homes and set(busan.homes) == {"hb1"}
    assert default.homes and default.rules.route("ms-hb1") is None
    assert busan.rules.route("ms-hb1") is not None

    with s.begin():
        registry.set_site_cell(s, "sb", "default")
    await default.registry.refresh()
    await busan.registry.refresh()
    assert "hb1" in default.homes and busan.homes == {}
    assert busan.rules.route("ms-hb1") is None and "hb1" not in busan.states
