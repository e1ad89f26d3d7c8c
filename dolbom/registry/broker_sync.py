"""A cell's broker files kept in step with the central registry (docs/scale.md).

In a deployment of several cells the registry is central and each broker is on its own
machine, so nothing that changes the registry (the API, the command line) can write a
broker's files or signal it. ``dolbom registry sync-broker --cell C --watch`` runs on
each broker's machine instead: every ``every_s`` it reads a small fingerprint of what
the cell's broker files hold (devices added and revoked, gateways' children, service
accounts, which sites are in the cell) and, when it moved, writes the files for the
cell's devices only and reloads the broker. A revocation is in effect within
``every_s`` plus the broker's reload (about 2.5 s at 300,000 devices). A full write
every ``full_every_s`` catches what the fingerprint does not show (a gateway's password
changed by ``dolbom gateway provision`` on another machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.protocol import Topics
from dolbom.registry.broker import sync_broker
from dolbom.registry.broker_files import BrokerFiles
from dolbom.registry.errors import RegistryError
from dolbom.registry.gateways import GatewayChild
from dolbom.registry.models import ServiceAccount, Site, site_ids_in_cell
from dolbom.registry.service import device_index_version

log = logging.getLogger("dolbom.registry")
EVERY_S = 1.0
FULL_EVERY_S = 300.0


def fingerprint(session: Session, cell: str | None) -> str:
    """Changes whenever the cell's broker files would (but for a changed password)."""
    parts: list[object] = [device_index_version(session, cell)]
    parts.append(tuple(session.execute(
        select(func.count(), func.max(GatewayChild.since))).one()))
    parts += list(session.execute(select(ServiceAccount.name, ServiceAccount.role,
                                         ServiceAccount.mqtt_hash)
                                  .order_by(ServiceAccount.name)))
    if cell is not None:
        parts += list(session.scalars(site_ids_in_cell(cell).order_by(Site.id)))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


async def watch(sessions: sessionmaker[Session], files: BrokerFiles, topics: Topics,
                stopping: asyncio.Event, *, cell: str | None, every_s: float = EVERY_S,
                full_every_s: float = FULL_EVERY_S,
                monotonic: Callable[[], float] = time.monotonic) -> int:
    """Keep ``files`` in step until ``stopping``; returns how many times it wrote them.

    A registry that cannot be read, or a broker that cannot be reloaded, is logged and
    tried again at the next turn: the broker keeps the files it has."""
    seen: str | None = None
    last_full = monotonic()
    writes = 0
    while not stopping.is_set():
        def turn(known: str | None, full: bool) -> str | None:
            with sessions() as s:
                now = fingerprint(s, cell)
                if now == known and not full:
                    return None
                sync_broker(s, files, topics, cell=cell)
                return now

        full = monotonic() - last_full >= full_every_s
        try:
            wrote = await asyncio.to_thread(turn, seen, full)
        except (RegistryError, OSError) as e:
            log.error("broker files not synced (%s); trying again", e)
        except Exception:
            log.exception("broker files not synced; trying again")
        else:
            if wrote is not None:
                writes += 1
                log.info("broker files written for cell %s and the broker reloaded",
                         cell or "(all)")
                seen = wrote
            if full:
                last_full = monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every_s)
    return writes
