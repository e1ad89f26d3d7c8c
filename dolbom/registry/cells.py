"""Each cell's endpoints (docs/scale.md, migration 0009): where a site's devices and
gateways reach their broker, and where readers find its InfluxDB.

A cell is named by ``sites.cell``. A row in ``cells`` gives its broker as devices and
gateways reach it, always the TLS listener (DESIGN.md §2: no device speaks plaintext to
a broker it does not share a machine with), and its InfluxDB as a URL and a database.
The InfluxDB credentials are not here: every reader has its own user (the API's is
``DOLBOM_API__INFLUX__USERNAME`` / ``PASSWORD``), the same on every cell's InfluxDB.

A site whose cell has no row is served as before the table existed: by the broker and
InfluxDB each command or service is configured with. So a deployment that never adds a
cell keeps working, and one that does should add a row for every cell its sites name:
once the table has a row, a site can only be put into a cell that has one
(``require_known_cell``).

Like ``service``, each function takes a ``Session`` and flushes, never commits.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.mqtt.tls import is_loopback
from dolbom.registry.errors import AlreadyExists, InvalidInput, NotFound
from dolbom.registry.models import CELL_PATTERN, Cell, Home, Site, utcnow

HOST_MAX = 253
URL_MAX = 500
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_DB_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not re.fullmatch(CELL_PATTERN, name):
        raise InvalidInput(f"cell {name!r} is not valid: use 1-32 characters a-z, 0-9, '_' "
                           "or '-', starting with a letter or digit")
    return name


def check_host(host: str) -> str:
    """A host name or an IP address, as in the broker's certificate; no scheme, no port."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_RE.match(host):
        raise InvalidInput(f"broker host {host!r} is not a host name or IP address "
                           "(no scheme, no port: give the port with --broker-port)")
    return host


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InvalidInput(f"broker port {port} is not a port number (1-65535)")
    return port


def check_influx_url(url: str) -> str:
    """An http(s) URL of an InfluxDB, without credentials (readers bring their own)."""
    try:
        parts = urllib.parse.urlsplit(url)
        # .port raises ValueError for a port that is not a number or out of range
        ok = (parts.scheme in ("http", "https") and bool(parts.hostname)
              and parts.port != 0 and len(url) <= URL_MAX)
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInput(f"InfluxDB URL {url!r} is not valid: use http(s)://HOST[:PORT]")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("the InfluxDB URL must not carry a user or password: readers "
                           "take theirs from their own settings")
    if parts.query or parts.fragment:
        raise InvalidInput(f"InfluxDB URL {url!r} must not have a query or fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        # readers send their user and password to it (Basic auth): not in clear
        raise InvalidInput(f"InfluxDB URL {url!r} is plaintext to another machine: use "
                           "https:// (http:// only on loopback)")
    return url.rstrip("/")


def check_influx_db(db: str) -> str:
    if not _DB_RE.match(db):
        raise InvalidInput(f"InfluxDB database {db!r} is not valid: 1-64 characters "
                           "A-Z, a-z, 0-9, '_', '.' or '-'")
    return db


def add_cell(session: Session, name: str, *, broker_host: str, broker_port: int,
             influx_url: str, influx_db: str, now: datetime | None = None) -> Cell:
    check_name(name)
    if session.get(Cell, name) is not None:
        raise AlreadyExists(f"cell {name!r} already exists; change it with `dolbom cell set`")
    cell = Cell(name=name, broker_host=check_host(broker_host),
                broker_port=check_port(broker_port), influx_url=check_influx_url(influx_url),
                influx_db=check_influx_db(influx_db), created_at=now or utcnow())
    session.add(cell)
    session.flush()
    return cell


def update_cell(session: Session, name: str, *, broker_host: str | None = None,
                broker_port: int | None = None, influx_url: str | None = None,
                influx_db: str | None = None) -> Cell:
    """Change some of a cell's endpoints. Devices already provisioned keep the broker
    their config names; the API reads the new InfluxDB from its next request."""
    cell = session.get(Cell, name)
    if cell is None:
        raise NotFound(f"cell {name!r} not found; add it with `dolbom cell add`")
    if broker_host is None and broker_port is None and influx_url is None and influx_db is None:
        raise InvalidInput("nothing to change: give --broker-host, --broker-port, "
                           "--influx-url or --influx-db")
    if broker_host is not None:
        cell.broker_host = check_host(broker_host)
    if broker_port is not None:
        cell.broker_port = check_port(broker_port)
    if influx_url is not None:
        cell.influx_url = check_influx_url(influx_url)
    if influx_db is not None:
        cell.influx_db = check_influx_db(influx_db)
    session.flush()
    return cell


def put_cell(session: Session, name: str, *, broker_host: str, broker_port: int,
             influx_url: str, influx_db: str) -> Cell:
    """Add the cell, or set all its endpoints if it exists (a stack started again)."""
    if session.get(Cell, name) is None:
        return add_cell(session, name, broker_host=broker_host, broker_port=broker_port,
                        influx_url=influx_url, influx_db=influx_db)
    return update_cell(session, name, broker_host=broker_host, broker_port=broker_port,
                       influx_url=influx_url, influx_db=influx_db)


def list_cells(session: Session) -> list[Cell]:
    return list(session.scalars(select(Cell).order_by(Cell.name)))


def require_known_cell(session: Session, name: str) -> None:
    """Refuse to put a site into a cell without endpoints, once any cell has them.

    With an empty table nothing is refused: deployments without cell rows keep working
    as before (every site served by the configured endpoints). Once one cell has a row,
    a site put into an unknown cell (a typo, a cell not yet added) would silently get
    the configured fallback broker and InfluxDB instead of its cell's; so it is refused.
    """
    if session.get(Cell, name) is not None:
        return
    if session.scalar(select(Cell.name).limit(1)) is not None:
        known = ", ".join(session.scalars(select(Cell.name).order_by(Cell.name)))
        raise NotFound(f"cell {name!r} has no endpoints in the registry (cells: {known}); "
                       f"add it first with `dolbom cell add {name} ...`")


def cell_of_site(session: Session, site_id: str) -> Cell | None:
    """The endpoints of the site's cell; None if the site's cell has no row (or there is
    no such site): the caller falls back to its configured endpoints."""
    return session.scalar(select(Cell).join(Site, Site.cell == Cell.name)
                          .where(Site.id == site_id))


def influx_of_home(session: Session, home_id: str) -> tuple[str, str] | None:
    """The InfluxDB (URL, database) of the home's site's cell; None: the configured one."""
    row = session.execute(select(Cell.influx_url, Cell.influx_db)
                          .join(Site, Site.cell == Cell.name)
                          .join(Home, Home.site_id == Site.id)
                          .where(Home.id == home_id)).first()
    return None if row is None else (row[0], row[1])
