"""The outbox delivers as notices fall due: receivers that hang on welfare notices never
hold up a life-safety notice (real HTTP receivers on loopback, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.orm import Session

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.alerts.notify.factory import aclose_all, build_channels
from dolbom.alerts.notify.settings import NotifySettings
from dolbom.alerts.outbox import PARALLEL, OutboxWorker
from dolbom.alerts.recipients import add_notice
from dolbom.registry.db import session_factory
from dolbom.registry.models import Contact
from dolbom.stack.proc import free_port
from tests.alerts.conftest import People


@asynccontextmanager
async def receivers() -> AsyncIterator[tuple[str, list[str], list[float], asyncio.Event]]:
    """/slow never answers (until the test ends); /fast records the rules it is told of."""
    fast: list[str] = []
    told = asyncio.Event()
    hanging: list[float] = []
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        hanging.append(time.monotonic())
        await release.wait()
        return web.Response(status=204)

    async def quick(request: web.Request) -> web.Response:
        fast.append((await request.json())["rule"])
        told.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/fast", quick)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", fast, hanging, told
    finally:
        release.set()
        await runner.cleanup()


async def test_hanging_welfare_receivers_do_not_hold_up_an_alarm(
        care_db: tuple[Session, People], db_url: str) -> None:
    _, people = care_db
    sessions = session_factory(db_url)
    now = datetime.now(UTC)
    async with receivers() as (base, fast, hanging, told):
        with sessions.begin() as w:
            for c in w.query(Contact):
                c.address = f"{base}/fast" if c.user_id == people.responder.id else f"{base}/slow"
            welfare = lc.raise_alert(w, site="s1", home="h1", rule=Rule.INACTIVITY,
                                     priority=Priority.MEDIUM, at=now, table=EscalationTable())
            contact = w.query(Contact).filter_by(user_id=people.worker.id).one()
            for i in range(3 * PARALLEL):  # more hanging notices than delivery slots
                add_notice(w, welfare.alert_id, people.worker.id, contact, "repeat", i, 1,
                              now, f"{welfare.alert_id}/repeat{i}/{people.worker.id}/webhook")
        channels = build_channels(NotifySettings(webhook_secret=SecretStr("k" * 32),
                                                 timeout_s=60))
        worker = OutboxWorker(sessions, channels, clock=time.time, table=EscalationTable(),
                              retry_initial_s=1, retry_max_s=5, fallback_after_attempts=3,
                              channel_down_after_s=60)
        stopping = asyncio.Event()
        task = asyncio.create_task(worker.run(stopping, 0.05))
        try:
            for _ in range(100):  # every welfare slot is taken by a receiver that hangs
                if len(hanging) >= PARALLEL:
                    break
                await asyncio.sleep(0.05)
            assert len(hanging) == PARALLEL
            with sessions.begin() as w:
                lc.raise_alert(w, site="s1", home="h1", rule=Rule.BUTTON,
                               priority=Priority.HIGH, at=datetime.now(UTC),
                               table=EscalationTable(), device="btn-1")
            worker.wake.set()
            pressed = time.monotonic()
            await asyncio.wait_for(told.wait(), 10)
            assert fast == ["button"]  # the responder was told while welfare still hangs
            assert time.monotonic() - pressed < 2.0
            # the assigned worker's receiver hangs on the alarm too, in an alarm slot
            assert len(hanging) == PARALLEL + 1
        finally:
            stopping.set()
            await asyncio.wait_for(task, 10)
            await aclose_all(channels)
