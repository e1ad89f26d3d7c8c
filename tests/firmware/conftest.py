"""Fixtures for firmware tests: one real stack (Mosquitto, InfluxDB, registry) for the
module, observers on the broker, and simulated nodes stopped by their PID."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from dolbom.mqtt import Client, MqttError, Received
from dolbom.protocol import Message, Topics, decode
from dolbom.stack.stack import Stack
from tests.firmware.simnode import SimNode

TOPICS = Topics()


@pytest.fixture(scope="module")
def fw_stack(runtime_dir: Path) -> Iterator[Stack]:
    s = Stack(Path(tempfile.mkdtemp(prefix="fwstack-", dir=runtime_dir)))
    s.up()
    yield s
    s.down()


@pytest.fixture()
def nodes() -> Iterator[list[SimNode]]:
    """Simulated nodes a test starts; each is killed (by its PID) afterwards."""
    started: list[SimNode] = []
    yield started
    for n in started:
        n.close()


def site_id() -> str:
    return "fw" + secrets.token_hex(3)


@dataclass
class Observer:
    """Everything the broker delivers under one device's topics, decoded by
    dolbom.protocol (a message that fails validation fails the test)."""

    stack: Stack
    site: str
    dev: str
    received: list[tuple[str, bytes, bool, Message]] = field(default_factory=list)
    client: Client | None = None
    _task: asyncio.Task[None] | None = None

    def _on(self, msg: Received) -> None:
        topic = TOPICS.parse(msg.topic)
        assert topic is not None, f"not a v1 topic: {msg.topic}"
        self.received.append((msg.topic, msg.payload, msg.retain, decode(topic, msg.payload)))

    async def _run(self) -> None:
        # Reconnects fast (every 0.1 s) so it is back before the node after a broker restart.
        while True:
            c = Client("127.0.0.1", self.stack.mosquitto.port, f"obs-{secrets.token_hex(4)}",
                       username="svc-operator", password=self.stack.secrets.mqtt["svc-operator"],
                       on_message=self._on, keepalive=5)
            try:
                await c.connect(timeout=2)
                await c.subscribe([(f"care/v1/{self.site}/{self.dev}/#", 0)])
                self.client = c
                await c.wait_closed()
            except (MqttError, OSError):
                pass
            finally:
                self.client = None
                c.abort()
            await asyncio.sleep(0.1)

    def of(self, suffix: str) -> list[tuple[str, bytes, bool, Message]]:
        return [r for r in self.received if r[0].endswith("/" + suffix)]

    def payloads(self, suffix: str) -> list[dict[str, object]]:
        return [orjson.loads(r[1]) for r in self.of(suffix)]


@contextlib.asynccontextmanager
async def observing(stack: Stack, site: str, dev: str) -> AsyncIterator[Observer]:
    obs = Observer(stack, site, dev)
    obs._task = asyncio.create_task(obs._run(), name="observer")
    try:
        for _ in range(100):
            if obs.client is not None:
                break
            await asyncio.sleep(0.05)
        assert obs.client is not None, "observer could not connect"
        yield obs
    finally:
        obs._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await obs._task


async def until(pred: object, timeout: float, what: str) -> None:
    """Poll ``pred()`` (bounded) without blocking the event loop."""
    assert callable(pred)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
