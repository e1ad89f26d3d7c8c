"""What ``/health`` says about InfluxDB: the settings' one and every cell's.

The console and the resident views read each home from its cell's InfluxDB
(``dolbom.api.cell_readers``), so one cell's InfluxDB down is a degraded API for that
cell's homes even while the settings' one answers. ``/health`` pings them all: the
settings' InfluxDB and every cell in the registry's ``cells`` table (a cell just added
counts before any page has read from it), each URL once, all at the same time. Each ping
waits at most ``dolbom.influx.query.ping``'s 2 s, so ``/health`` answers within about
2 s for up to ``PINGS_AT_ONCE`` distinct InfluxDBs (2 s more per further batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.influx.query import ping
from dolbom.registry.models import Cell

PINGS_AT_ONCE = 16


def cell_influx_urls(session: Session) -> dict[str, str]:
    """Each cell's InfluxDB URL, by cell name (the database is not pinged)."""
    return {name: url for name, url in session.execute(
        select(Cell.name, Cell.influx_url).order_by(Cell.name))}


def influx_up(default_url: str, cells: Mapping[str, str]) -> tuple[bool, dict[str, bool]]:
    """Whether every InfluxDB answered (the settings' and each cell's), and per cell."""
    urls = sorted({default_url.rstrip("/"), *(u.rstrip("/") for u in cells.values())})
    with ThreadPoolExecutor(max_workers=min(len(urls), PINGS_AT_ONCE),
                            thread_name_prefix="health-influx") as pool:
        up = dict(zip(urls, pool.map(ping, urls), strict=True))
    per_cell = {name: up[url.rstrip("/")] for name, url in cells.items()}
    return all(up.values()), per_cell
