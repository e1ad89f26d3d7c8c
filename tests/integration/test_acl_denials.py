"""A spoofing device leaves a trace (TESTPLAN S-02): the real Mosquitto denies it, logs
the denial, and ``dolbom broker watch-denials`` raises one acl_denied alert for it."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.brokerwatch.watch import DenialMetrics, DenialOptions, DenialWatch
from dolbom.mqtt import Client, Received
from dolbom.protocol import Topics
from dolbom.registry import service as svc
from dolbom.registry.broker import sync_broker
from dolbom.registry.db import make_engine, migrate
from dolbom.registry.models import Alert
from dolbom.stack.mosquitto import Mosquitto

T = Topics()
DEADLINE_S = 10.0


@pytest.fixture()
def broker(runtime_dir: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto that logs its denials, stopped by the PID it was started as."""
    b = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-acl-", dir=runtime_dir)),
                  log_denials=True)
    b.prepare()
    b.start()
    yield b
    b.stop()


@pytest.fixture()
def registry(sqlite_url: str, broker: Mosquitto
             ) -> Iterator[tuple[sessionmaker[Session], dict[str, str]]]:
    """Site s1, home h1 with devices a, b and c, the ingest account; broker files synced."""
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory.begin() as s:
        svc.add_site(s, "s1", "Site one")
        svc.add_home(s, "h1", "s1")
        pw = {d: svc.add_device(s, d, "s1", "h1", "multisensor")[1] for d in ("a", "b", "c")}
        svc.ensure_service_account(s, "ingest", "ingest", "ingest-pw")
        pw["ingest"] = "ingest-pw"
    with factory() as s:
        sync_broker(s, broker.files, T)
    yield factory, pw
    engine.dispose()


async def _connect(broker: Mosquitto, user: str, password: str,
                   inbox: list[Received] | None = None) -> Client:
    """Connect, retrying a refusal for a bounded time while the broker applies its reload."""
    until = time.monotonic() + DEADLINE_S
    while True:
        c = Client("127.0.0.1", broker.port, user, username=user, password=password,
                   on_message=inbox.append if inbox is not None else None)
        try:
            await c.connect(timeout=2.0)
            return c
        except Exception:
            if time.monotonic() >= until:
                raise
            await asyncio.sleep(0.05)


async def _until(pred: Callable[[], bool], what: str) -> None:
    """A bounded poll: the broker writes its log when it writes it."""
    until = time.monotonic() + DEADLINE_S
    while not pred():
        if time.monotonic() >= until:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _alerts(factory: sessionmaker[Session]) -> list[Alert]:
    with factory() as s:
        return list(s.scalars(select(Alert).where(Alert.rule == "acl_denied")))


async def test_spoofing_device_is_denied_counted_and_alerted_once(
        broker: Mosquitto, registry: tuple[sessionmaker[Session], dict[str, str]]) -> None:
    """Device a publishing 10 times on b's topic: the ingest subscriber gets 0 of them, the
    watcher raises exactly one acl_denied alert for a naming the topic; c, denied once,
    raises none."""
    factory, pw = registry
    watch = DenialWatch(DenialOptions(metrics_port=0), broker.broker_log, factory,
                        metrics=DenialMetrics(CollectorRegistry()))
    watch.step()  # starts at the end of the log: what came before is history
    inbox: list[Received] = []
    ingest = await _connect(broker, "ingest", pw["ingest"], inbox)
    await ingest.subscribe([(f"{T.prefix}/#", 1)])
    spoofed = T.telemetry("s1", "b")
    a, b, c = [await _connect(broker, d, pw[d]) for d in ("a", "b", "c")]
    try:
        for seq in range(10):
            await a.publish(spoofed, orjson.dumps({"v": 1, "boot": 1, "seq": seq}), qos=1)
        await c.publish(spoofed, orjson.dumps({"v": 1, "boot": 1, "seq": 99}), qos=1)
        # b's own message, after the spoofs: once it is in, everything before it is too
        await b.publish(spoofed, b'{"from": "b"}', qos=1)
        await _until(lambda: len(inbox) >= 1, "b's own message at the subscriber")

        def denied() -> float:
            watch.step()
            value = watch.metrics.registry.get_sample_value(
                "dolbom_broker_acl_denied_total", {"reason": "publish"})
            return value or 0.0

        await _until(lambda: denied() >= 11, "the watcher to read 11 denials")
    finally:
        for client in (a, b, c, ingest):
            await client.disconnect()
    assert [(m.topic, m.payload) for m in inbox] == [(spoofed, b'{"from": "b"}')]
    assert denied() == 11
    [alert] = _alerts(factory)
    assert (alert.device_id, alert.site_id, alert.home_id, alert.klass, alert.priority,
            alert.count) == ("a", "s1", "h1", "technical", "low", 1)
    assert alert.detail["topic"] == spoofed
    assert alert.detail["identified_by"] == "username"
    assert alert.detail["denied"] >= 5
    assert "Denied PUBLISH from a" in broker.broker_log.read_text()
