"""Each cell's endpoints in the registry (migration 0009, docs/scale.md): the ``cells``
table and ``dolbom cell add|list|set``, a site put into a cell without endpoints refused
once any cell has them, device configs that follow their site's cell, and
``dolbom stack-cells`` registering its cells. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.certs import CA_CERT, init_ca
from dolbom.cli import main
from dolbom.registry import cells
from dolbom.registry import service as registry
from dolbom.registry.db import alembic_config, make_engine, migrate
from dolbom.registry.errors import AlreadyExists, InvalidInput, NotFound
from dolbom.registry.models import Cell, Site
from dolbom.stack.cells import Cells

RunCli = Callable[..., tuple[int, str, str]]
NORTH = ("--broker-host", "north.example.org", "--broker-port", "8883",
         "--influx-url", "https://10.1.0.5:8086/", "--influx-db", "care")


@pytest.fixture()
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        db_url: str) -> RunCli:
    """``dolbom ARGS`` on a migrated database, with a clean DOLBOM_* environment."""
    for name in ("DOLBOM_BROKER_PASSWD", "DOLBOM_BROKER_ACL", "DOLBOM_BROKER_PID_FILE",
                 "DOLBOM_MQTT__HOST", "DOLBOM_MQTT__PORT", "DOLBOM_DEVICE_MQTT_HOST",
                 "DOLBOM_DEVICE_MQTT_PORT", "DOLBOM_DEVICE_MQTT_TLS_HOST",
                 "DOLBOM_DEVICE_MQTT_TLS_PORT", "DOLBOM_DEVICE_CA_FILE",
                 "DOLBOM_MQTT__TLS__CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOLBOM_DATABASE_URL", db_url)
    migrate(db_url)

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _ca(tmp_path: Path) -> Path:
    init_ca(tmp_path / "ca")
    return tmp_path / "ca" / CA_CERT


# -- the table -------------------------------------------------------------------------


def test_migration_0009_adds_the_table_and_takes_it_away(db_url: str) -> None:
    """Upgrading from 0008 keeps every site and its cell; downgrading drops only ``cells``."""
    cfg = alembic_config()
    engine = make_engine(db_url)
    try:
        migrate(db_url)
        with Session(engine) as s, s.begin():
            registry.add_site(s, "s1", "Site 1", cell="north")
            cells.add_cell(s, "north", broker_host="north.example.org", broker_port=8883,
                           influx_url="https://10.1.0.5:8086", influx_db="care")
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008")
        assert "cells" not in inspect(engine).get_table_names()
        with Session(engine) as s:
            assert s.scalars(select(Site.cell)).all() == ["north"]
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0009")
        assert "cells" in inspect(engine).get_table_names()
        with Session(engine) as s:
            assert s.scalars(select(Cell)).all() == []
            assert s.scalars(select(Site.cell)).all() == ["north"]
    finally:
        engine.dispose()


def test_add_update_list_and_lookups(factory: sessionmaker[Session]) -> None:
    """A cell's row is found from its sites and their homes; a site whose cell has no
    row, or no cell row at all, finds nothing (the caller's settings serve it)."""
    with factory.begin() as s:
        registry.add_site(s, "s1", "Site 1", cell="north")
        registry.add_site(s, "s2", "Site 2", cell="south")
        registry.add_home(s, "h1", "s1")
        registry.add_home(s, "h2", "s2")
        assert cells.cell_of_site(s, "s1") is None and cells.influx_of_home(s, "h1") is None
        cells.add_cell(s, "north", broker_host="north.example.org", broker_port=8883,
                       influx_url="https://10.1.0.5:8086/", influx_db="care")
    with factory.begin() as s:
        north = cells.cell_of_site(s, "s1")
        assert north is not None and (north.broker_host, north.broker_port) == (
            "north.example.org", 8883)
        assert north.created_at.tzinfo is not None
        assert cells.influx_of_home(s, "h1") == ("https://10.1.0.5:8086", "care")
        assert cells.cell_of_site(s, "s2") is None and cells.influx_of_home(s, "h2") is None
        assert cells.cell_of_site(s, "nowhere") is None
        cells.update_cell(s, "north", influx_url="https://influx-n.example.org:8443",
                          broker_port=18883)
    with factory() as s:
        assert cells.influx_of_home(s, "h1") == ("https://influx-n.example.org:8443", "care")
        assert [(c.name, c.broker_host, c.broker_port) for c in cells.list_cells(s)] == [
            ("north", "north.example.org", 18883)]


def test_unknown_duplicate_and_empty_changes_are_refused(
        factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        cells.add_cell(s, "north", broker_host="10.1.0.2", broker_port=8883,
                       influx_url="https://10.1.0.5:8086", influx_db="care")
    with factory.begin() as s, pytest.raises(AlreadyExists, match="cell 'north' already"):
        cells.add_cell(s, "north", broker_host="10.1.0.2", broker_port=8883,
                       influx_url="https://10.1.0.5:8086", influx_db="care")
    with factory.begin() as s, pytest.raises(NotFound, match="cell 'south' not found"):
        cells.update_cell(s, "south", broker_port=8883)
    with factory.begin() as s, pytest.raises(InvalidInput, match="nothing to change"):
        cells.update_cell(s, "north")


GOOD = {"name": "north", "broker_host": "north.example.org", "broker_port": 8883,
        "influx_url": "https://10.1.0.5:8086", "influx_db": "care"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("name", "North", r"cell 'North' is not valid"),
    ("name", "", r"cell '' is not valid"),
    ("broker_host", "mqtts://north.example.org", r"is not a host name or IP address"),
    ("broker_host", "north.example.org:8883", r"is not a host name or IP address"),
    ("broker_host", "", r"is not a host name or IP address"),
    ("broker_host", "north example", r"is not a host name or IP address"),
    ("broker_port", 0, r"broker port 0 is not a port number"),
    ("broker_port", 65536, r"broker port 65536 is not a port number"),
    ("influx_url", "10.1.0.5:8086", r"InfluxDB URL .* is not valid"),
    ("influx_url", "ftp://10.1.0.5", r"InfluxDB URL .* is not valid"),
    ("influx_url", "http://", r"InfluxDB URL .* is not valid"),
    ("influx_url", "https://10.1.0.5:99999", r"InfluxDB URL .* is not valid"),
    ("influx_url", "http://reader:pw@10.1.0.5:8086", r"must not carry a user or password"),
    ("influx_url", "https://10.1.0.5:8086/?db=care", r"must not have a query"),
    ("influx_url", "http://10.1.0.5:8086", r"plaintext to another machine: use https"),
    ("influx_db", "care db", r"InfluxDB database 'care db' is not valid"),
    ("influx_db", "", r"InfluxDB database '' is not valid"),
])
def test_bad_endpoints_are_refused_with_their_reason(
        factory: sessionmaker[Session], field: str, value: object, message: str) -> None:
    with factory.begin() as s, pytest.raises(InvalidInput, match=message):
        cells.add_cell(s, **{**GOOD, field: value})  # type: ignore[arg-type]
    with factory() as s:
        assert cells.list_cells(s) == []


def test_an_ip_address_is_a_broker_host(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        c = cells.add_cell(s, **{**GOOD, "broker_host": "fd00::0001"})  # type: ignore[arg-type]
        assert c.broker_host == "fd00::1"


def test_a_site_needs_a_known_cell_only_once_cells_have_rows(
        factory: sessionmaker[Session]) -> None:
    """No rows: any valid cell name goes (deployments without endpoints keep working).
    With rows: only a cell that has one, so a typo cannot send a site to the fallback."""
    with factory.begin() as s:
        cells.require_known_cell(s, "anything")
        cells.add_cell(s, **GOOD)  # type: ignore[arg-type]
    with factory.begin() as s:
        cells.require_known_cell(s, "north")
        with pytest.raises(NotFound, match=r"cell 'nort' has no endpoints .*cells: north"):
            cells.require_known_cell(s, "nort")


# -- the commands ----------------------------------------------------------------------


def test_cell_commands(run: RunCli) -> None:
    """add, list and set as an operator runs them; each failure is one line and exit 1."""
    rc, out, _ = run("cell", "add", "north", *NORTH)
    assert rc == 0 and out.strip() == ("cell north added: broker north.example.org:8883 (TLS), "
                                       "InfluxDB https://10.1.0.5:8086 database care")
    rc, out, _ = run("cell", "set", "north", "--broker-host", "10.1.0.2")
    assert rc == 0 and "broker 10.1.0.2:8883" in out
    rc, out, _ = run("cell", "list")
    header, row = out.strip().splitlines()
    assert header.split()[:2] == ["CELL", "BROKER"]
    assert row.split()[:4] == ["north", "10.1.0.2:8883", "https://10.1.0.5:8086", "care"]
    for args, message in [
        (("cell", "set", "south", "--broker-port", "8883"), "error: cell 'south' not found"),
        (("cell", "set", "north", "--broker-port", "70000"),
         "error: broker port 70000 is not a port number (1-65535)"),
        (("cell", "add", "north", *NORTH), "error: cell 'north' already exists"),
        (("cell", "add", "west", *NORTH[:-4], "--influx-url", "influx:8086", "--influx-db",
          "care"), "error: InfluxDB URL 'influx:8086' is not valid"),
    ]:
        rc, _, err = run(*args)
        assert rc == 1 and _one_line_error(err).startswith(message), err


def test_site_commands_refuse_a_cell_without_endpoints_once_there_are_some(
        run: RunCli) -> None:
    assert run("site", "add", "s0", "--name", "S0", "--cell", "east")[0] == 0  # no rows yet
    assert run("cell", "add", "north", *NORTH)[0] == 0
    rc, _, err = run("site", "add", "s1", "--name", "S1", "--cell", "nort")
    assert rc == 1 and "cell 'nort' has no endpoints" in _one_line_error(err)
    rc, _, err = run("site", "cell", "s0", "south")
    assert rc == 1 and "cell 'south' has no endpoints" in _one_line_error(err)
    assert run("site", "add", "s1", "--name", "S1", "--cell", "north")[0] == 0
    assert run("site", "cell", "s0", "north")[0] == 0


# -- device configs follow the site -------------------------------------------------------


def _config(run: RunCli, tmp_path: Path, dev: str, site: str, *extra: str) -> dict[str, object]:
    path = tmp_path / f"{dev}.json"
    rc, _, err = run("device", "add", dev, "--site", site, "--kind", "button",
                     "--config-out", str(path), *extra)
    assert rc == 0, err
    config: dict[str, object] = json.loads(path.read_text())
    return config


def test_a_device_gets_its_cells_broker_else_the_settings(
        run: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A device of a site in cell north gets north's broker, at its TLS port, with the
    CA; a site whose cell has no row gets the broker of the settings, as before; an
    explicit --broker-host / --broker-port wins over the cell."""
    monkeypatch.setenv("DOLBOM_DEVICE_MQTT_HOST", "192.168.0.10")
    monkeypatch.setenv("DOLBOM_DEVICE_CA_FILE", str(_ca(tmp_path)))
    run("site", "add", "s-north", "--name", "N", "--cell", "north")
    run("site", "add", "s-plain", "--name", "P")
    run("cell", "add", "north", *NORTH[:3], "18883", *NORTH[4:])

    north = _config(run, tmp_path, "btn-n", "s-north")
    assert {k: north[k] for k in ("broker_host", "broker_port", "tls_host", "tls_port")} == {
        "broker_host": "north.example.org", "broker_port": 18883,
        "tls_host": "north.example.org", "tls_port": 18883}
    assert "BEGIN CERTIFICATE" in str(north["ca"])

    plain = _config(run, tmp_path, "btn-p", "s-plain")
    assert {k: plain[k] for k in ("broker_host", "broker_port", "tls_host", "tls_port")} == {
        "broker_host": "192.168.0.10", "broker_port": 1883,
        "tls_host": "192.168.0.10", "tls_port": 8883}

    told = _config(run, tmp_path, "btn-t", "s-north", "--broker-host", "10.9.9.9")
    assert (told["tls_host"], told["tls_port"]) == ("10.9.9.9", 18883)
    told = _config(run, tmp_path, "btn-u", "s-north", "--broker-host", "10.9.9.9",
                   "--broker-port", "9883")
    assert (told["broker_host"], told["tls_port"]) == ("10.9.9.9", 9883)


def test_a_cells_broker_without_a_ca_is_refused_and_no_device_is_made(
        run: RunCli, tmp_path: Path) -> None:
    """A cell's broker is TLS only: with no CA for devices the config cannot be written,
    and no device is left whose password nobody has."""
    run("cell", "add", "north", *NORTH)
    run("site", "add", "s-north", "--name", "N", "--cell", "north")
    rc, _, err = run("device", "add", "btn-n", "--site", "s-north", "--kind", "button",
                     "--config-out", str(tmp_path / "n.json"))
    assert rc == 1 and "DOLBOM_DEVICE_CA_FILE" in _one_line_error(err)
    assert "btn-n" not in run("device", "list", "--all")[1]
    rc, _, err = run("device", "add", "btn-n", "--site", "s-north", "--kind", "button",
                     "--broker-host", "10.9.9.9")
    assert rc == 1 and "give --config-out" in _one_line_error(err)


# -- dolbom stack-cells --------------------------------------------------------------------


def test_stack_cells_registers_each_cells_endpoints(db_url: str, tmp_path: Path) -> None:
    """Each cell's broker TLS port and InfluxDB URL go into the table, and again (not
    twice) when the stack starts another time; every cell shares the reader password."""
    migrate(db_url)
    stack = Cells(tmp_path / "cells", ["c1", "c2"])
    stack.database_url = db_url  # the servers are not started: only the registration
    for _ in range(2):
        stack.register_endpoints()
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            rows = {c.name: (c.broker_host, c.broker_port, c.influx_url, c.influx_db)
                    for c in cells.list_cells(s)}
    finally:
        engine.dispose()
    assert rows == {c.name: ("127.0.0.1", c.stack.mosquitto.tls_port, c.stack.influx.url,
                             "care") for c in stack.cells}
    assert len({c.stack.secrets.influx_dashboard for c in stack.cells}) == 1
    assert stack.cells[0].stack.secrets.influx_dashboard == stack.dashboard_password
