"""The outbox delivers as notices fall due: receivers that hang on welfare notices never
hold up a life-safety notice (real HTTP receivers on loopback, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.metrics import AlertsMetrics
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.alerts.notify.base import DELIVERY_HEADER
from dolbom.alerts.notify.factory import aclose_all, build_channels
from dolbom.alerts.notify.settings import NotifySettings
from dolbom.alerts.outbox import HELD, PARALLEL, OutboxWorker
from dolbom.alerts.recipients import add_notice
from dolbom.registry.db import session_factory
from dolbom.registry.models import Contact, Outbox
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


class MovedClock:
    """Wall time plus an offset the test moves (the outbox's backoff runs on it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Silent:
    """A receiver that accepts and says nothing until ``answer`` is set: every request
    that reached it (its delivery id), and how many it held at once once known silent."""

    answer: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: list[str] = field(default_factory=list)
    holding: int = 0
    most_held: int = 0


@asynccontextmanager
async def silent_and_fast() -> AsyncIterator[tuple[str, Silent, list[str]]]:
    """/silent (a ``Silent``) and /fast (answers at once, records delivery ids)."""
    silent, fast = Silent(), []

    async def hold(request: web.Request) -> web.Response:
        silent.arrived.append(request.headers[DELIVERY_HEADER])
        silent.holding += 1
        silent.most_held = max(silent.most_held, silent.holding)
        try:
            await silent.answer.wait()
        finally:
            silent.holding -= 1
        return web.Response(status=204)

    async def quick(request: web.Request) -> web.Response:
        fast.append(request.headers[DELIVERY_HEADER])
        return web.Response(status=204)

    app = web.Application(handler_args={"handler_cancellation": True})
    app.router.add_post("/silent", hold)
    app.router.add_post("/fast", quick)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", silent, fast
    finally:
        silent.answer.set()
        await runner.cleanup()


async def until(what: Callable[[], bool], timeout_s: float, label: str) -> None:
    """Poll a condition (real I/O completing, not time-based logic)."""
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {label}"
        await asyncio.sleep(0.02)


def queue(w: Session, alert_id: int, user_id: int, address: str, n: int, first: int,
          now: datetime) -> None:
    contact = w.query(Contact).filter_by(user_id=user_id).one()
    contact.address = address
    for i in range(first, first + n):
        add_notice(w, alert_id, user_id, contact, "repeat", i, 1, now,
                   f"{alert_id}/repeat{i}/{user_id}/{address}")


async def test_silent_link_gets_one_attempt_at_a_time_and_a_healthy_one_is_not_slowed(
        care_db: tuple[Session, People], db_url: str) -> None:
    """F-13 at the outbox: five notices hang on a receiver that never answers; once the
    first attempt has timed out, only one attempt at a time goes to it (always the same
    notice), the others are held (pending, their attempts counted, so fallback and the
    technical alert go on); a notice to another receiver is delivered at once meanwhile;
    when the probe gets through, the held notices are sent at once, and each arrived at
    most twice (the probe once more per timed-out attempt)."""
    _, people = care_db
    sessions = session_factory(db_url)
    clock = MovedClock()
    now = datetime.fromtimestamp(clock(), UTC)
    async with silent_and_fast() as (base, silent, fast):
        with sessions.begin() as w:
            alert = lc.raise_alert(w, site="s1", home="h1", rule=Rule.INACTIVITY,
                                   priority=Priority.MEDIUM, at=now, table=EscalationTable())
            queue(w, alert.alert_id, people.worker.id, f"{base}/silent?who=w", 5, 0, now)
        channels = build_channels(NotifySettings(webhook_secret=SecretStr("k" * 32),
                                                 timeout_s=0.5))
        worker = OutboxWorker(sessions, channels, clock=clock, table=EscalationTable(),
                              retry_initial_s=2, retry_max_s=8, fallback_after_attempts=100,
                              channel_down_after_s=3600, metrics=AlertsMetrics())
        stopping = asyncio.Event()
        task = asyncio.create_task(worker.run(stopping, 0.02))
        try:
            await until(lambda: len(silent.arrived) == 5, 5, "the five first attempts")
            await until(lambda: bool(worker.silent), 5, "the link known silent")
            await until(lambda: silent.holding == 0, 5, "the first attempts timed out")
            silent.most_held = 0
            before = len(silent.arrived)
            for step in range(20):  # 40 s of clock: every notice falls due again and again
                clock.offset += 2
                worker.wake.set()
                if step == 5:  # the other receiver is not held up by the silent one
                    with sessions.begin() as w:
                        queue(w, alert.alert_id, people.responder.id, f"{base}/fast", 1, 9,
                              datetime.fromtimestamp(clock(), UTC))
                    worker.wake.set()
                    asked = time.monotonic()
                    await until(lambda: len(fast) == 1, 2, "the healthy receiver told")
                    assert time.monotonic() - asked < 1.0
                await asyncio.sleep(0.1)
            await until(lambda: silent.holding == 0, 5, "the last probe timed out")
            probes = silent.arrived[before:]
            assert 1 <= len(probes) < 20
            assert silent.most_held == 1  # one attempt at a time into the silent link
            assert len(set(probes)) == 1  # always the same notice
            assert worker.held >= 4
            assert worker.metrics is not None and worker.metrics.registry.get_sample_value(
                "dolbom_alerts_notices_total", {"channel": "webhook", "result": "held"}
            ) == worker.held
            with sessions() as s:
                rows = s.scalars(select(Outbox).where(Outbox.address.like("%/silent%"))).all()
                assert {o.status for o in rows} == {"pending"}  # held, not dropped
                held = [o for o in rows if o.last_error == HELD]
                assert len(held) == 4 and all(o.attempts >= 2 for o in held)
            silent.answer.set()  # the link answers again
            clock.offset += 10  # the probe falls due
            worker.wake.set()
            await until(lambda: not worker.silent, 5, "the probe delivered")
            await until(lambda: pending(sessions, "/silent") == 0, 5,
                        "the held notices sent at once")
        finally:
            stopping.set()
            await asyncio.wait_for(task, 10)
            await aclose_all(channels)
    copies = Counter(silent.arrived)
    assert len(copies) == 5
    probe = probes[0]
    assert copies[probe] == 1 + len(probes) + 1
    assert all(n == 2 for d, n in copies.items() if d != probe)  # first attempt, delivery


async def test_a_refused_connection_is_not_silence(
        care_db: tuple[Session, People], db_url: str) -> None:
    """A refusal is an answer: nothing is held, every notice keeps its own retries."""
    _, people = care_db
    sessions = session_factory(db_url)
    clock = MovedClock()
    now = datetime.fromtimestamp(clock(), UTC)
    with sessions.begin() as w:
        alert = lc.raise_alert(w, site="s1", home="h1", rule=Rule.INACTIVITY,
                               priority=Priority.MEDIUM, at=now, table=EscalationTable())
        queue(w, alert.alert_id, people.worker.id, f"http://127.0.0.1:{free_port()}/x", 3, 0,
              now)
    channels = build_channels(NotifySettings(webhook_secret=SecretStr("k" * 32), timeout_s=2))
    worker = OutboxWorker(sessions, channels, clock=clock, table=EscalationTable(),
                          retry_initial_s=1, retry_max_s=2, fallback_after_attempts=100,
                          channel_down_after_s=3600)
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping, 0.02))
    try:
        for _ in range(100):  # every notice tried three times, each on its own
            if min(attempts(sessions, "/x")) >= 3:
                break
            clock.offset += 3
            worker.wake.set()
            await asyncio.sleep(0.05)
        assert min(attempts(sessions, "/x")) >= 3
        assert worker.silent == {} and worker.held == 0
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
        await aclose_all(channels)


def pending(sessions: sessionmaker[Session], path: str) -> int:
    with sessions() as s:
        return len(s.scalars(select(Outbox).where(Outbox.status == "pending",
                                                  Outbox.address.like(f"%{path}%"))).all())


def attempts(sessions: sessionmaker[Session], path: str) -> list[int]:
    """Attempts of the notices to ``path`` (not those ``raise_alert`` queued itself)."""
    with sessions() as s:
        return sorted(o.attempts for o in s.scalars(
            select(Outbox).where(Outbox.address.like(f"%{path}%"))))
