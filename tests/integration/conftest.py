"""Fixtures for end-to-end tests: a whole stack per test, ingest in-process."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Client
from dolbom.protocol import Envelope, Topics
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.stack import Stack


@pytest.fixture()
def stack(runtime_dir: Path) -> Iterator[Stack]:
    s = Stack(Path(tempfile.mkdtemp(prefix="stack-", dir=runtime_dir)))
    s.up()
    yield s
    s.down()


def provision(stack: Stack, site: str, home: str, devices: dict[str, str]) -> dict[str, str]:
    """Register a site, a home and devices {id: kind}; return {id: password}."""
    out = {}
    with session_factory(stack.database_url).begin() as s:
        registry.add_site(s, site, f"Site {site}")
        registry.add_home(s, home, site)
        for dev, kind in devices.items():
            _, pw = registry.add_device(s, dev, site, home, kind)
            out[dev] = pw
    stack.sync_broker()
    return out


def ingest_settings(stack: Stack, spool: Path, **kw: Any) -> IngestSettings:
    base: dict[str, Any] = dict(
        database_url=stack.database_url, mqtt=stack.mqtt_settings(),
        influx=stack.influx_settings(), spool_dir=spool, metrics_port=0,
        flush_interval_s=0.2, retry_initial_s=0.1, retry_max_s=1.0, seen_flush_s=0.5,
    )
    base.update(kw)
    return IngestSettings(**base)


async def eventually(pred: Callable[[], bool], timeout: float = 20.0, what: str = "",
                     state: Callable[[], object] | None = None) -> None:
    """Poll ``pred`` until true, failing after ``timeout`` seconds (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.1)
    detail = f"; state: {state()}" if state is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}{detail}")


@asynccontextmanager
async def running_ingest(settings: IngestSettings,
                         clock: Callable[[], float] = time.time) -> AsyncIterator[Ingest]:
    ing = Ingest(settings, clock=clock)
    task = asyncio.create_task(ing.run(), name="ingest")
    try:
        await eventually(lambda: ing.snapshot().mqtt_connected or task.done(), 15,
                         "ingest to connect")
        if task.done():
            task.result()
        yield ing
    finally:
        ing.stopping.set()
        await asyncio.wait_for(task, 30)


def device_client(stack: Stack, dev: str, password: str) -> Client:
    return Client("127.0.0.1", stack.mosquitto.port, dev, username=dev, password=password)


_last_ts = 0


def unique_now_ms() -> int:
    """Now, in ms, but never the same ms twice: a device sends at most one point per
    series per millisecond, and InfluxDB keeps one point per (series, time)."""
    global _last_ts  # noqa: PLW0603 - test helper state
    _last_ts = max(_last_ts + 1, int(time.time() * 1000))
    return _last_ts


def env(seq: int, boot: int = 1, tq: int = 2, ts: int | None = None) -> Envelope:
    return Envelope(boot, seq, ts if ts is not None else unique_now_ms(), tq)


Publisher = Callable[[str, bytes], Awaitable[None]]
TOPICS = Topics()
