"""``AlarmProcess``: the alarm path, the life-safety outbox and the escalation of
life-safety alerts, on an event loop and in a process of their own (see the package's
docstring for why)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.alerts.alarm.journal import Route
from dolbom.alerts.alarm.path import AlarmPath
from dolbom.alerts.escalations import Escalations
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.metrics import AlertsMetrics, measure_loop_lag
from dolbom.alerts.model import EscalationTable
from dolbom.alerts.notify.base import Channel
from dolbom.alerts.notify.factory import aclose_all
from dolbom.alerts.outbox import outbox_for
from dolbom.alerts.pause import pause
from dolbom.alerts.settings import AlertsSettings
from dolbom.metrics_http import serve_metrics
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.models import Device

log = logging.getLogger("dolbom.alerts.alarms")
ROUTES_CHECK_S = 30.0  # the device → home map is re-read when the registry moved
ROUTES_RELOAD_S = 600.0  # and in any case this often (a device moved to another home)


def _routes(s: Session, device: str | None = None) -> dict[str, Route]:
    stmt = (select(Device.id, Device.site_id, Device.home_id)
            .where(Device.revoked_at.is_(None), Device.home_id.is_not(None)))
    if device is not None:
        stmt = stmt.where(Device.id == device)
    return {dev: (sys.intern(site), sys.intern(home)) for dev, site, home in s.execute(stmt)
            if home is not None}


class AlarmProcess:
    """The alarm path, the life-safety outbox and the escalation of life-safety alerts,
    on their own event loop and process."""

    def __init__(self, settings: AlertsSettings, *, clock: Callable[[], float] = time.time,
                 channels: dict[str, Channel] | None = None,
                 table: EscalationTable | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.table = table or settings.alerts.escalation_table()
        self.sessions = session_factory(settings.database_url)
        self.metrics = AlertsMetrics()
        self.gate = WriteGate()
        self.stopping = asyncio.Event()
        self.outbox = outbox_for(settings, self.sessions, channels, clock=clock,
                                 table=self.table, metrics=self.metrics, gate=self.gate)
        self.routes: dict[str, Route] = {}
        # the unacknowledged life-safety alerts (the rules process does the others:
        # ``outbox.of_class``), ahead of other writes
        self.escalations = Escalations(self.sessions, self.gate, self.table, clock,
                                       self.outbox.wake.set, high=True, urgent=True, log=log)
        self._version: tuple[Any, ...] | None = None
        self._loaded_at = 0.0
        self.path = AlarmPath(settings, self.sessions, clock=clock, table=self.table,
                              gate=self.gate, metrics=self.metrics, wake=self.outbox.wake.set,
                              route=self.routes.get, lookup=self._lookup)

    async def load_routes(self, *, force: bool = False) -> None:
        known = None if force else self._version

        def read() -> tuple[tuple[Any, ...], dict[str, Route] | None]:
            with self.sessions() as s:
                version = registry.device_index_version(s)
                return version, (None if version == known else _routes(s))

        version, routes = await asyncio.to_thread(read)
        if routes is not None:
            self.routes.clear()
            self.routes.update(routes)  # the same dict: AlarmPath holds its .get
            self._loaded_at = time.monotonic()
        self._version = version

    async def _lookup(self, device: str) -> Route | None:
        """A device the map does not know: ask the registry about that device alone."""
        def read() -> dict[str, Route]:
            with self.sessions() as s:
                return _routes(s, device)

        found = await asyncio.to_thread(read)
        self.routes.update(found)
        return found.get(device)

    async def route_refresher(self) -> None:
        while not self.stopping.is_set():
            await pause(self.stopping, ROUTES_CHECK_S)
            try:
                await self.load_routes(
                    force=time.monotonic() - self._loaded_at >= ROUTES_RELOAD_S)
            except Exception:
                log.exception("could not re-read the device map; keeping the one we have")

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.path.connected, {
            "alarm_session": self.path.connected,
            "devices": len(self.routes),
            "life_safety_events": self.path.journalled,
            "notices_sent": self.outbox.sent,
            "escalation_steps": self.escalations.steps,
        }

    async def run(self) -> None:
        await self.load_routes(force=True)
        o = self.settings.alerts
        runner = await serve_metrics(o.metrics_host, o.alarm_metrics_port,
                                     self.metrics.registry, self.health)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.path.session(self.stopping), name="alarm-session")
                tg.create_task(self.path.worker(self.stopping), name="alarm-worker")
                tg.create_task(self.outbox.run(self.stopping, o.outbox_poll_s,
                                               classes=(True,)), name="alarm-outbox")
                tg.create_task(self.escalations.run(self.stopping, o.tick_s),
                               name="alarm-escalations")
                tg.create_task(self.route_refresher(), name="routes")
                tg.create_task(measure_loop_lag(self.metrics.loop_lag, self.stopping),
                               name="loop-lag")
        finally:
            await aclose_all(self.outbox.channels)
            if runner is not None:
                await runner.cleanup()
