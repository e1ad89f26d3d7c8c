"""Which InfluxDB holds a home's readings: its site's cell's (docs/scale.md).

Each cell has its own InfluxDB; the registry's ``cells`` table names it (URL and
database, ``dolbom cell add``). A home whose site's cell has no row is read from the
InfluxDB of the API's settings, as before cells had endpoints. The credentials are the
API's own (``DOLBOM_API__INFLUX__USERNAME`` / ``PASSWORD``) for every cell: the
read-only user must exist, with that password, on each cell's InfluxDB.

The cell is looked up at each request (one indexed join), so ``dolbom cell set`` takes
effect at the next request; the readers themselves are made once per (URL, database)
and kept. A page of many homes (the console's board) groups them by reader
(``by_reader``) so that each InfluxDB is asked once for all its homes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.influx.query import InfluxReader
from dolbom.registry.cells import influx_of_home
from dolbom.registry.models import Cell, Home, Site
from dolbom.settings import InfluxSettings

HOMES_PER_LOOKUP = 500  # bound parameters per IN (...): well under SQLite's limit


class CellReaders:
    """One ``InfluxReader`` per cell InfluxDB, made on first use (routes run in threads)."""

    def __init__(self, settings: InfluxSettings, default: InfluxReader) -> None:
        self._settings = settings
        self.default = default
        self._lock = threading.Lock()
        self._readers: dict[tuple[str, str], InfluxReader] = {
            (default.url, default.database): default}

    def reader(self, url: str, database: str) -> InfluxReader:
        key = (url.rstrip("/"), database)
        with self._lock:
            found = self._readers.get(key)
            if found is None:
                found = self._readers[key] = InfluxReader(
                    self._settings.model_copy(update={"url": key[0], "database": database}))
            return found

    def for_home(self, session: Session, home_id: str) -> InfluxReader:
        """The reader of the home's site's cell, else the settings' InfluxDB."""
        found = influx_of_home(session, home_id)
        return self.default if found is None else self.reader(*found)

    def by_reader(self, session: Session, home_ids: Iterable[str]
                  ) -> list[tuple[InfluxReader, list[str]]]:
        """The homes grouped by the reader of their site's cell (the settings' for a cell
        without a row, or a home not found), each reader once, its homes sorted.

        One join per ``HOMES_PER_LOOKUP`` homes, not one per home. Two cells naming the
        same InfluxDB (URL and database) share its reader, so they are one group.
        """
        wanted = sorted(set(home_ids))
        where: dict[str, tuple[str, str]] = {}
        for i in range(0, len(wanted), HOMES_PER_LOOKUP):
            chunk = wanted[i:i + HOMES_PER_LOOKUP]
            for home, url, db in session.execute(
                    select(Home.id, Cell.influx_url, Cell.influx_db)
                    .join(Site, Site.id == Home.site_id)
                    .join(Cell, Cell.name == Site.cell)
                    .where(Home.id.in_(chunk))):
                where[home] = (url, db)
        groups: dict[int, tuple[InfluxReader, list[str]]] = {}
        for home in wanted:
            found = where.get(home)
            reader = self.default if found is None else self.reader(*found)
            groups.setdefault(id(reader), (reader, []))[1].append(home)
        return list(groups.values())

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._readers)
