"""Helpers for alert tests: a real webhook receiver on loopback, a movable clock, the service."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import SecretStr

from dolbom.alerts.notify.base import verify
from dolbom.alerts.notify.settings import NotifySettings
from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.models import DEFAULT_CELL
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.conftest import eventually

SECRET = secrets.token_hex(16)


class Clock:
    """Wall time plus an offset that tests move forward instead of sleeping."""

    def __init__(self) -> None:
        import time

        self._time = time.time
        self.offset = 0.0

    def __call__(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Receiver:
    """A real HTTP server that records signed webhook deliveries."""

    url: str = ""
    status: int = 200
    hang: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    attempts: int = 0
    fallback: list[dict[str, Any]] = field(default_factory=list)
    who: list[str] = field(default_factory=list)  # the ?who= of each delivery's URL


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.attempts += 1
        body = await request.read()
        if rec.hang:
            await asyncio.sleep(3600)
        if rec.status != 200:
            return web.Response(status=rec.status)
        if not verify(body, SECRET.encode(), request.headers.get("X-Dolbom-Signature", "")):
            rec.bad_signatures += 1
            return web.Response(status=401)
        rec.received.append(orjson.loads(body))
        rec.deliveries.append(request.headers.get("X-Dolbom-Delivery", ""))
        rec.who.append(request.query.get("who", ""))
        return web.Response(status=200)

    async def fallback(request: web.Request) -> web.Response:
        body = await request.read()
        if verify(body, SECRET.encode(), request.headers.get("X-Dolbom-Signature", "")):
            rec.fallback.append(orjson.loads(body))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    app.router.add_post("/fallback", fallback)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


def alerts_settings(stack: Stack, **kw: Any) -> AlertsSettings:
    options: dict[str, Any] = dict(
        tick_s=0.05, state_flush_s=0.2, outbox_poll_s=0.05, retry_initial_s=1.0, metrics_port=0,
        alarm_process=False,  # the injected clock lives in this process
        retry_max_s=10.0, channel_down_after_s=60.0, export_s=0.5,
        alarm_client_id=f"alarm-{secrets.token_hex(3)}",
        stream_client_id=f"stream-{secrets.token_hex(3)}",
    )
    options.update(kw)
    return AlertsSettings(
        database_url=stack.database_url, mqtt=stack.mqtt_settings("svc-alerts"),
        influx=stack.influx_settings(),
        notify=NotifySettings(webhook_secret=SecretStr(SECRET), timeout_s=2),
        alerts=AlertOptions(**options))


@asynccontextmanager
async def running_alerts(settings: AlertsSettings, clock: Clock) -> AsyncIterator[AlertService]:
    svc = AlertService(settings, clock=clock)
    task = asyncio.create_task(svc.run(), name="alerts")
    try:
        await eventually(lambda: (svc.alarm_client is not None and svc.alarm_client.connected
                                  and svc.stream_client is not None
                                  and svc.stream_client.connected) or task.done(), 15,
                         "alerts service to connect")
        if task.done():
            task.result()
        yield svc
    finally:
        svc.stopping.set()
        await asyncio.wait_for(task, 30)


def care_home(stack: Stack, site: str, home: str, devices: dict[str, str], hook_url: str,
              *, wandering: bool = False, with_supervisor: bool = True,
              fallback_url: str | None = None, cell: str = DEFAULT_CELL) -> dict[str, str]:
    """A home with a resident, an assigned care worker, a responder and a supervisor,
    each reachable by webhook, in a site of ``cell``; returns device passwords."""
    pw: dict[str, str] = {}
    with session_factory(stack.database_url).begin() as s:
        registry.add_site(s, site, site, cell)
        registry.add_home(s, home, site)
        r = registry.add_resident(s, home, "홍길동", wandering=wandering)
        for dev, kind in devices.items():
            power = "battery" if kind in {"button", "door", "smoke"} else "mains"
            _, pw[dev] = registry.add_device(s, dev, site, home, kind, power=power)
        registry.add_user(s, f"w-{site}", "care_worker", site_id=site, locale="ko")
        registry.add_contact(s, f"w-{site}", "webhook", hook_url + "?who=worker")
        if fallback_url:
            registry.add_contact(s, f"w-{site}", "webhook", fallback_url)
        registry.assign(s, f"w-{site}", r.id)
        registry.add_user(s, f"r-{site}", "responder", site_id=site, locale="en")
        registry.add_contact(s, f"r-{site}", "webhook", hook_url + "?who=responder")
        if with_supervisor:
            registry.add_user(s, f"s-{site}", "supervisor", site_id=site)
            registry.add_contact(s, f"s-{site}", "webhook", hook_url + "?who=supervisor")
    stack.sync_broker()
    return pw


__all__ = ["Clock", "Path", "Receiver", "alerts_settings", "care_home", "running_alerts",
           "webhook_receiver"]
