"""``dolbom cell add|list|set``: each cell's broker and InfluxDB (``dolbom.registry.cells``).

Registered by ``dolbom.registry.cli`` beside the other registry commands, with its
settings loading and its one-line errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from dolbom.registry import cells
from dolbom.registry.db import make_engine
from dolbom.registry.models import Cell
from dolbom.registry.settings import RegistrySettings

Handler = Callable[[argparse.Namespace, RegistrySettings], int]
# A string: argparse's class is generic for type checkers only (Python 3.11).
Leaf = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]", str, str, Handler],
                argparse.ArgumentParser]


@contextmanager
def _begin(settings: RegistrySettings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    try:
        with sessionmaker(bind=engine, expire_on_commit=False).begin() as session:
            yield session
    finally:
        engine.dispose()


def _describe(c: Cell) -> str:
    return (f"broker {c.broker_host}:{c.broker_port} (TLS), "
            f"InfluxDB {c.influx_url} database {c.influx_db}")


def _add(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _begin(settings) as session:
        c = cells.add_cell(session, args.name, broker_host=args.broker_host,
                           broker_port=args.broker_port, influx_url=args.influx_url,
                           influx_db=args.influx_db)
        line = f"cell {c.name} added: {_describe(c)}"
    print(line)
    return 0


def _set(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _begin(settings) as session:
        c = cells.update_cell(session, args.name, broker_host=args.broker_host,
                              broker_port=args.broker_port, influx_url=args.influx_url,
                              influx_db=args.influx_db)
        line = f"cell {c.name}: {_describe(c)}"
    print(line)
    return 0


def _list(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _begin(settings) as session:
        rows: list[tuple[str, ...]] = [("CELL", "BROKER (TLS)", "INFLUXDB", "DATABASE",
                                        "CREATED (UTC)")]
        rows += [(c.name, f"{c.broker_host}:{c.broker_port}", c.influx_url, c.influx_db,
                  f"{c.created_at:%Y-%m-%d %H:%M:%S}") for c in cells.list_cells(session)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], leaf: Leaf) -> None:
    p = leaf(sub, "add", "register a cell's broker (TLS listener, as devices and gateways "
             "reach it) and InfluxDB", _add)
    p.add_argument("name", help="the cell's name, as `dolbom site add --cell` gives it")
    p.add_argument("--broker-host", required=True,
                   help="host name or address of the cell's broker, as in its certificate")
    p.add_argument("--broker-port", type=int, required=True,
                   help="the broker's TLS port (devices always get TLS)")
    p.add_argument("--influx-url", required=True,
                   help="the cell's InfluxDB, http(s)://HOST:PORT (no credentials: each "
                        "reader has its own, in its settings)")
    p.add_argument("--influx-db", required=True, help="the InfluxDB database, e.g. care")
    p = leaf(sub, "set", "change some of a cell's endpoints", _set)
    p.add_argument("name")
    p.add_argument("--broker-host")
    p.add_argument("--broker-port", type=int)
    p.add_argument("--influx-url")
    p.add_argument("--influx-db")
    leaf(sub, "list", "list the cells and their endpoints", _list)
