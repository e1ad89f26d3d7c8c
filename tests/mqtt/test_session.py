"""MqttSession against the real Mosquitto: kept connected across a broker's death,
subscribed again, its hooks called, stopped promptly, its persistent session kept."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable

import pytest

from dolbom.mqtt import Backoff, Client, ConnectionLost, Endpoint, MqttSession, Received
from dolbom.stack.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

FAST = (0.05, 0.3)  # backoff: initial, cap (seconds)


@pytest.fixture(scope="module")
def broker(make_mosquitto: Callable[[], Mosquitto]) -> Mosquitto:
    """A broker of this module's own: one test kills it."""
    b = make_mosquitto()
    subprocess.run(["mosquitto_passwd", "-b", str(b.dir / "passwd"), "svc", "svc-pw"],
                   check=True)
    b.files.acl.write_text("user svc\ntopic readwrite s/#\n")
    subprocess.run(["chown", "mosquitto:", str(b.dir / "passwd"), str(b.files.acl)],
                   check=True)
    b.reload()
    return b


def endpoint(b: Mosquitto) -> Endpoint:
    return Endpoint("127.0.0.1", b.port, "svc", "svc-pw", keepalive=5)


async def publish(b: Mosquitto, topic: str, payload: bytes) -> None:
    async with Client("127.0.0.1", b.port, "pub", username="svc", password="svc-pw") as c:
        await c.publish(topic, payload, qos=1)


class Watched:
    """A session whose hooks and messages the test can wait for."""

    def __init__(self, session: MqttSession) -> None:
        self.session = session
        self.hooks: list[str] = []
        self.messages: asyncio.Queue[tuple[Received, Client]] = asyncio.Queue()
        self.changed = asyncio.Event()
        session.on_up, session.on_down = self._up, self._down
        # With its client: a persistent session's queued message arrives before
        # subscribe returns, before ``session.client`` is set.
        session.on_message_from = self._message
        self.stopping = asyncio.Event()
        self.task = asyncio.create_task(session.run(self.stopping), name="session")

    async def _up(self) -> None:
        self.hooks.append("up")
        self.changed.set()

    async def _down(self) -> None:
        self.hooks.append("down")
        self.changed.set()

    def _message(self, m: Received, c: Client) -> None:
        c.ack(m)
        self.messages.put_nowait((m, c))

    async def until(self, hooks: list[str], timeout: float = 10) -> None:
        """Wait (bounded) until the hooks called so far end with ``hooks``."""
        async with asyncio.timeout(timeout):
            while self.hooks[-len(hooks):] != hooks:
                self.changed.clear()
                await self.changed.wait()

    async def received(self, timeout: float = 5) -> Received:
        m, c = await asyncio.wait_for(self.messages.get(), timeout)
        assert c is self.session.client or self.session.client is None
        return m

    async def stop(self, timeout: float = 2) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, timeout)


async def test_reconnects_and_subscribes_again_after_the_broker_is_killed(
        broker: Mosquitto) -> None:
    """SIGKILL of the broker: on_down is called, attempts fail while it is away, and once
    it is back the session is up and subscribed again (clean session: the new broker
    knows nothing of the old subscription)."""
    w = Watched(MqttSession(endpoint(broker), "kill", [("s/kill", 1)], backoff=Backoff(*FAST)))
    try:
        await w.until(["up"])
        await publish(broker, "s/kill", b"before")
        assert (await w.received()).payload == b"before"
        await asyncio.to_thread(broker.kill)
        await w.until(["down"])
        await w.until(["down", "down"])  # a failed attempt while the broker is away
        assert isinstance(w.session.error, Exception) and not w.session.connected
        await asyncio.to_thread(broker.start)
        await w.until(["up"])
        assert w.session.connected
        await publish(broker, "s/kill", b"after")
        assert (await w.received()).payload == b"after"
        assert w.hooks[0] == "up" and w.hooks.count("up") == 2
    finally:
        if broker.proc is None or broker.proc.poll() is not None:
            await asyncio.to_thread(broker.start)
        await w.stop()
    assert not w.session.connected  # disconnected on stop


async def test_stops_promptly_while_waiting_to_retry() -> None:
    """Nothing listens: the session waits out a long backoff, yet returns as soon as
    ``stopping`` is set, having called on_down for the failed attempt."""
    w = Watched(MqttSession(Endpoint("127.0.0.1", 9), "none", [], backoff=Backoff(30, 30)))
    await w.until(["down"])
    loop = asyncio.get_running_loop()
    t = loop.time()
    await w.stop(timeout=2)
    assert loop.time() - t < 1
    assert w.hooks == ["down"]


async def test_stops_promptly_while_connected(broker: Mosquitto) -> None:
    """Connected and idle: ``stopping`` ends run at once, with a clean DISCONNECT."""
    w = Watched(MqttSession(endpoint(broker), "idle", [("s/idle", 0)]))
    await w.until(["up"])
    client = w.session.client
    await w.stop(timeout=2)
    assert client is not None and not client.connected
    assert w.hooks == ["up"]


async def test_persistent_session_keeps_a_qos1_message_while_the_owner_is_away(
        broker: Mosquitto) -> None:
    """persistent=True: a QoS 1 message published while the session is stopped waits at
    the broker and arrives when it runs again (the broker kept the session), handed
    over with the client that received it."""
    first = Watched(MqttSession(endpoint(broker), "persist", [("s/p", 1)], persistent=True))
    await first.until(["up"])
    await first.stop()
    await publish(broker, "s/p", b"while-away")
    again = Watched(MqttSession(endpoint(broker), "persist", [("s/p", 1)], persistent=True))
    try:
        await again.until(["up"])
        assert again.session.client is not None and again.session.client.session_present
        m, c = await asyncio.wait_for(again.messages.get(), 5)
        assert (m.topic, m.payload, m.qos) == ("s/p", b"while-away", 1)
        assert c is again.session.client
    finally:
        await again.stop()


async def test_before_connect_holds_each_attempt_and_an_error_in_on_up_ends_the_link(
        broker: Mosquitto) -> None:
    """No attempt before ``before_connect`` returns; an MqttError raised by on_up (the
    owner's work on the link) ends that connection like a loss: on_down, a new attempt."""
    gate = asyncio.Event()
    attempts = 0

    async def before() -> None:
        nonlocal attempts
        await gate.wait()
        attempts += 1

    w = Watched(MqttSession(endpoint(broker), "gate", [], before_connect=before,
                            backoff=Backoff(*FAST)))
    record_up = w.session.on_up

    async def failing_up() -> None:
        await record_up()
        if w.hooks.count("up") == 1:
            raise ConnectionLost("the owner's work on the link failed")

    w.session.on_up = failing_up
    try:
        await asyncio.sleep(0.2)
        assert (w.hooks, attempts) == ([], 0)  # held
        gate.set()
        await w.until(["up", "down", "up"])
        assert attempts == 2 and w.session.connected
        assert isinstance(w.session.error, ConnectionLost)
    finally:
        await w.stop()
