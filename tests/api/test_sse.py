"""The live alert stream: changes written by another process reach exactly the people who
may see them, resume with Last-Event-ID, and a slow client is cut off, not buffered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from dolbom.alerts import lifecycle
from dolbom.api.access import Scope
from dolbom.api.app import create_app
from dolbom.api.events import AlertBus, AlertChange
from dolbom.api.metrics import ApiMetrics
from dolbom.registry.models import User, UserRole
from dolbom.stack.proc import free_port
from tests.api.conftest import World

WAIT_S = 10.0  # bound of every wait for an event


@asynccontextmanager
async def serving(w: World) -> AsyncIterator[str]:
    """A second app on the same database, served by a real uvicorn on a free port."""
    port = free_port()
    app = create_app(w.settings, clock=w.clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(), name="uvicorn")
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:  # noqa: ASYNC110 - uvicorn has a flag, not an event
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


class Stream:
    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines

    async def next(self) -> dict[str, Any]:
        """The next event (comments and retry lines skipped), within WAIT_S."""
        event: dict[str, Any] = {}
        async with asyncio.timeout(WAIT_S):
            async for line in self.lines:
                if not line:
                    if "data" in event:
                        return event
                    event = {}
                elif line.startswith(":") or line.startswith("retry:"):
                    continue
                else:
                    key, _, value = line.partition(": ")
                    event[key] = json.loads(value) if key == "data" else value
        raise AssertionError("stream ended")

    async def ended(self) -> None:
        """The server closes the stream (within WAIT_S)."""
        async with asyncio.timeout(WAIT_S):
            async for _ in self.lines:
                pass

    async def until(self, alert_id: int, kind: str) -> list[dict[str, Any]]:
        """Events up to and including the one about ``alert_id`` of ``kind``."""
        seen = []
        while True:
            e = await self.next()
            seen.append(e)
            if e["data"]["alert_id"] == alert_id and e["data"]["kind"] == kind:
                return seen


@asynccontextmanager
async def stream(client: httpx.AsyncClient, url: str, token: str,
                 last_event_id: int | None = None) -> AsyncIterator[Stream]:
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with client.stream("GET", f"{url}/api/v1/alerts/stream", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.aiter_lines()
        async with asyncio.timeout(WAIT_S):
            first = await anext(lines)  # sent once the subscription is registered
        assert first.startswith("retry:")
        yield Stream(lines)


def _change(w: World, home: str, kind: str, username: str) -> None:
    """What the alerts service (another process) does: a lifecycle call in its own session."""
    with w.sessions.begin() as s:
        actor = s.get(User, w.users[username])
        assert actor is not None
        aid = w.alerts[home]
        if kind == "acknowledged":
            lifecycle.acknowledge(s, aid, actor, w.clock())
        else:
            lifecycle.add_note(s, aid, "on my way", actor, w.clock())


async def test_change_reaches_the_assigned_worker_and_not_the_unassigned(world: World) -> None:
    """w1 (assigned to h1) gets h1's change; w2 (h2 only) never sees it but gets h2's."""
    t1, t2 = world.token("w1"), world.token("w2")
    async with serving(world) as url, httpx.AsyncClient(timeout=WAIT_S) as client, \
            stream(client, url, t1) as s1, stream(client, url, t2) as s2:
        await asyncio.to_thread(_change, world, "h1", "acknowledged", "w1")
        got = await s1.until(world.alerts["h1"], "acknowledged")
        assert int(got[-1]["id"]) > 0 and got[-1]["event"] == "alert"
        assert got[-1]["data"]["status"] == "acknowledged"
        # A later change w2 may see: everything before it has been delivered to w2 by now
        # (one poller, in journal order), so h1's change is known not to have reached w2.
        await asyncio.to_thread(_change, world, "h2", "note", "w2")
        for e in await s2.until(world.alerts["h2"], "note"):
            assert e["data"]["home"] == "h2"
        await asyncio.to_thread(_change, world, "h1", "note", "w1")
        for e in await s1.until(world.alerts["h1"], "note"):
            assert e["data"]["home"] == "h1"


async def test_last_event_id_resumes_where_the_client_left(world: World) -> None:
    """A reconnecting client with Last-Event-ID gets the changes it missed, from the DB."""
    token = world.token("w1")
    async with serving(world) as url, httpx.AsyncClient(timeout=WAIT_S) as client:
        async with stream(client, url, token) as s:
            await asyncio.to_thread(_change, world, "h1", "note", "w1")
            last = int((await s.until(world.alerts["h1"], "note"))[-1]["id"])
        await asyncio.to_thread(_change, world, "h1", "acknowledged", "w1")  # while away
        async with stream(client, url, token, last_event_id=last) as s:
            e = await s.next()
            assert int(e["id"]) > last and e["data"]["kind"] == "acknowledged"


async def test_deactivation_ends_an_open_stream(world: World,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream re-checks its account: deactivating the person closes it."""
    from dolbom.api.routes import alerts as alert_routes

    monkeypatch.setattr(alert_routes, "SCOPE_REFRESH_S", 0.2)
    token = world.token("w1")
    async with serving(world) as url, httpx.AsyncClient(timeout=WAIT_S) as client, \
            stream(client, url, token) as s:
        r = await client.post(f"{url}/api/v1/users/w1/deactivate", headers=world.h("admin"))
        assert r.status_code == 200
        await s.ended()


async def test_an_open_stream_ends_when_its_token_expires(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream carries nothing past its token's expiry: the client must come back with a
    fresh token (and resumes with Last-Event-ID)."""
    from dolbom.api.routes import alerts as alert_routes

    monkeypatch.setattr(alert_routes, "SCOPE_REFRESH_S", 0.2)
    token = world.token("w1")
    async with serving(world) as url, httpx.AsyncClient(timeout=WAIT_S) as client, \
            stream(client, url, token) as s:
        world.clock.advance(world.settings.access_ttl_s + 1)
        await s.ended()


async def test_stream_needs_a_token(world: World) -> None:
    async with serving(world) as url, httpx.AsyncClient(timeout=WAIT_S) as client:
        r = await client.get(f"{url}/api/v1/alerts/stream")
        assert r.status_code == 401


def _change_of(event_id: int, home: str = "h1") -> AlertChange:
    return AlertChange(event_id, 1, "note", datetime(2026, 1, 1, tzinfo=UTC), "x", "open",
                       "high", "life_safety", "fall", "s1", home)


async def test_slow_subscriber_is_dropped_not_buffered(world: World) -> None:
    """A full queue disconnects that client (it reconnects and resumes); memory stays
    bounded; others are unaffected; the drop is counted."""
    metrics = ApiMetrics()
    bus = AlertBus(world.sessions, poll_s=0.05, queue_size=2, metrics=metrics)
    admin = Scope(0, UserRole.ADMIN, None, None, False, None, everything=True)
    worker = Scope(1, UserRole.CARE_WORKER, frozenset({1}), None, False, frozenset({"h2"}))
    slow, other = bus.subscribe(admin), bus.subscribe(worker)
    bus.publish([_change_of(i) for i in range(1, 4)])  # 3 > queue_size, h1 only
    assert slow.dropped and bus.subscribers == 1
    with pytest.raises(StopAsyncIteration):
        await anext(slow)
    assert not other.dropped and other.queue.empty()  # h1 is not w's: nothing queued
    assert metrics.sse_dropped._value.get() == 1
    bus.publish([_change_of(10, "h2")])
    assert (await anext(other)).event_id == 10
    await other.aclose()
    assert bus.subscribers == 0


async def test_one_poller_serves_every_subscriber(world: World) -> None:
    """However many clients, the journal is polled by the one background task."""
    metrics = ApiMetrics()
    bus = AlertBus(world.sessions, poll_s=0.01, metrics=metrics)
    admin = Scope(0, UserRole.ADMIN, None, None, False, None, everything=True)
    subs = [bus.subscribe(admin) for _ in range(20)]
    await bus.start()
    task = asyncio.create_task(bus.run(), name="poller")
    await asyncio.to_thread(_change, world, "h3", "note", "admin")
    for sub in subs:
        async with asyncio.timeout(WAIT_S):
            c = await anext(sub)
        assert c.alert_id == world.alerts["h3"]
    polls = metrics.sse_polls._value.get()
    bus.stop()
    await asyncio.wait_for(task, WAIT_S)
    assert polls >= 1
    for sub in subs:  # stopping the bus ends every stream
        with pytest.raises(StopAsyncIteration):
            await anext(sub)


async def test_resume_after_missing_too_much_replays_the_newest_and_flags_a_reset(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """More missed than MAX_BACKLOG: the newest are replayed (joining the live stream with
    no gap) and the subscription says the client must reload (SSE `reset` event)."""
    from dolbom.api import events

    monkeypatch.setattr(events, "MAX_BACKLOG", 2)
    for _ in range(3):
        await asyncio.to_thread(_change, world, "h1", "note", "w1")
    bus = AlertBus(world.sessions)
    admin = Scope(0, UserRole.ADMIN, None, None, False, None, everything=True)
    changes, truncated = bus.backlog(0)
    assert truncated and len(changes) == 2
    assert changes[0].event_id < changes[1].event_id  # in journal order
    sub = bus.subscribe(admin, last_event_id=0)
    assert [(await anext(sub)).event_id for _ in range(2)] == [c.event_id for c in changes]
    assert sub.truncated
    await sub.aclose()
