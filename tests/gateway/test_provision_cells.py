"""``dolbom gateway provision`` gives a gateway the broker of its site's cell (the
registry's ``cells`` table, docs/scale.md) at its TLS listener; an explicit
``--central-host`` / ``--central-port`` wins; a site whose cell has no row needs
``--central-host``, as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dolbom.cli import main
from dolbom.gateway.provision import provision
from dolbom.protocol import Topics
from dolbom.registry import cells
from dolbom.registry import service as registry
from dolbom.registry.db import make_engine, migrate
from dolbom.registry.errors import InvalidInput


@pytest.fixture()
def sites(sqlite_url: str) -> str:
    """A registry with site s-north in cell north (which has a row) and s-plain in the
    default cell (no row)."""
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with sessionmaker(bind=engine).begin() as s:
            _sites(s)
    finally:
        engine.dispose()
    return sqlite_url


def _sites(s: Session) -> None:
    registry.add_site(s, "s-north", "North", cell="north")
    registry.add_site(s, "s-plain", "Plain")
    cells.add_cell(s, "north", broker_host="north.example.org", broker_port=18883,
                   influx_url="https://10.1.0.5:8086", influx_db="care")


def _env(url: str, out: Path, site: str, host: str | None, port: int | None) -> dict[str, str]:
    p = provision(url, out, site=site, gateway_id=f"gw-{out.name}", home=None, children=[],
                  central_host=host, central_port=port, ca_file=None, topics=Topics(),
                  data_dir=out / "data", etc_dir=out)
    lines = p.env_file.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")


def _central(env: dict[str, str]) -> tuple[str, str, str | None]:
    return (env["DOLBOM_GW_CENTRAL__HOST"], env["DOLBOM_GW_CENTRAL__PORT"],
            env.get("DOLBOM_GW_CENTRAL__TLS__ENABLED"))


def test_a_gateway_follows_its_sites_cell(sites: str, tmp_path: Path) -> None:
    assert _central(_env(sites, tmp_path / "a", "s-north", None, None)) == (
        "north.example.org", "18883", "true")
    # An explicit host keeps the cell's TLS port; host and port both: the cell is unused.
    assert _central(_env(sites, tmp_path / "b", "s-north", "10.9.9.9", None)) == (
        "10.9.9.9", "18883", "true")
    assert _central(_env(sites, tmp_path / "c", "s-north", "10.9.9.9", 9883)) == (
        "10.9.9.9", "9883", None)


def test_a_site_whose_cell_has_no_row_takes_the_command_lines_broker(
        sites: str, tmp_path: Path) -> None:
    assert _central(_env(sites, tmp_path / "a", "s-plain", "broker.example.org", None)) == (
        "broker.example.org", "8883", None)
    with pytest.raises(InvalidInput, match="no central broker for site 's-plain'"):
        _env(sites, tmp_path / "b", "s-plain", None, None)
    assert not (tmp_path / "b").exists()


def test_the_command_says_what_is_missing_in_one_line(
        sites: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOLBOM_DATABASE_URL", sites)
    for name in ("DOLBOM_BROKER_PASSWD", "DOLBOM_BROKER_ACL", "DOLBOM_BROKER_PID_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["gateway", "provision", "--site", "s-plain", "--gateway", "gw-1",
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no central broker for site 's-plain'") and "\n" not in err
    assert main(["gateway", "provision", "--site", "s-north", "--gateway", "gw-2",
                 "--out", str(tmp_path / "out")]) == 0
    env = (tmp_path / "out" / "gateway.env").read_text()
    assert "DOLBOM_GW_CENTRAL__HOST=north.example.org\n" in env
