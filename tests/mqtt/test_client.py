"""Our MQTT 3.1.1 client against the real Mosquitto."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable

import pytest

from dolbom.mqtt import Client, ConnectRefused, Received, Will
from dolbom.stack.mosquitto import Mosquitto

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(make_mosquitto: Callable[[], Mosquitto]) -> Mosquitto:
    b = make_mosquitto()
    passwd = b.dir / "passwd"
    for user in ("alice", "bob"):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, f"{user}-pw"], check=True)
    b.files.acl.write_text("user alice\ntopic readwrite t/#\nuser bob\ntopic read t/#\n")
    subprocess.run(["chown", "mosquitto:", str(passwd), str(b.files.acl)], check=True)
    b.reload()
    return b


def client(b: Mosquitto, user: str, cid: str, **kw: object) -> Client:
    return Client("127.0.0.1", b.port, cid, username=user, password=f"{user}-pw", **kw)  # type: ignore[arg-type]


async def test_wrong_password_refused(broker: Mosquitto) -> None:
    """Bad credentials get CONNACK 'not authorised', not a hang."""
    c = Client("127.0.0.1", broker.port, "x", username="alice", password="nope")
    with pytest.raises(ConnectRefused) as e:
        await c.connect(timeout=5)
    assert not e.value.retryable


async def test_publish_subscribe_qos0_qos1_retain(broker: Mosquitto) -> None:
    """QoS 0 and 1 messages arrive intact and in order; retained ones reach late subscribers."""
    async with client(broker, "alice", "pub") as pub, client(broker, "bob", "sub") as sub:
        await sub.subscribe([("t/a/#", 1)])
        await pub.publish("t/a/x", b"zero", qos=0)
        await pub.publish("t/a/y", b"one", qos=1)
        await pub.publish("t/a/r", b"kept", qos=1, retain=True)
        got: list[Received] = []
        async with asyncio.timeout(5):
            async for m in sub.messages():
                got.append(m)
                sub.ack(m)
                if len(got) == 3:
                    break
        assert [(m.topic, m.payload, m.qos) for m in got] == [
            ("t/a/x", b"zero", 0), ("t/a/y", b"one", 1), ("t/a/r", b"kept", 1)]
    async with client(broker, "bob", "late") as late:
        await late.subscribe([("t/a/r", 1)])
        async with asyncio.timeout(5):
            m = await anext(aiter(late.messages()))
        assert (m.payload, m.retain) == (b"kept", True)


async def test_unacked_messages_are_redelivered_to_persistent_session(broker: Mosquitto) -> None:
    """A QoS 1 message not acked before the connection drops comes back on reconnect."""
    sub = client(broker, "bob", "persist", clean_session=False)
    await sub.connect()
    await sub.subscribe([("t/p", 1)])
    async with client(broker, "alice", "pub2") as pub:
        await pub.publish("t/p", b"must-survive", qos=1)
        async with asyncio.timeout(5):
            m = await anext(aiter(sub.messages()))
        assert m.payload == b"must-survive"
        sub.abort()  # no PUBACK was sent
        again = client(broker, "bob", "persist", clean_session=False)
        assert await again.connect()  # session present
        async with asyncio.timeout(5):
            m2 = await anext(aiter(again.messages()))
        assert (m2.payload, m2.dup) == (b"must-survive", True)
        again.ack(m2)
        await again.disconnect()


async def test_will_fires_on_abort_not_on_disconnect(broker: Mosquitto) -> None:
    """The Last Will is published when a client dies, not when it says goodbye."""
    async with client(broker, "bob", "watch") as watch:
        await watch.subscribe([("t/will/#", 1)])
        clean = client(broker, "alice", "clean", will=Will("t/will/clean", b"lost", 1, False))
        await clean.connect()
        await clean.disconnect()
        dead = client(broker, "alice", "dead", will=Will("t/will/dead", b"lost", 1, False))
        await dead.connect()
        dead.abort()
        async with asyncio.timeout(5):
            m = await anext(aiter(watch.messages()))
        assert m.topic == "t/will/dead"


async def test_acl_denies_publish_outside_rights(broker: Mosquitto) -> None:
    """A user may only publish where the ACL lets it (bob is read-only)."""
    async with client(broker, "alice", "w") as w, client(broker, "bob", "r") as r:
        await w.subscribe([("t/acl", 0)])
        await r.publish("t/acl", b"from-bob", qos=1)  # broker acks but drops it
        await r.publish("t/acl", b"x", qos=0)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await anext(aiter(w.messages()))


async def test_ack_many_acknowledges_a_batch_in_one_write(broker: Mosquitto) -> None:
    """A batch acked together is settled: none comes back on reconnect; the unacked one does."""
    sub = client(broker, "bob", "batch", clean_session=False)
    await sub.connect()
    await sub.subscribe([("t/b", 1)])
    async with client(broker, "alice", "pub3") as pub:
        for i in range(6):
            await pub.publish("t/b", b"%d" % i, qos=1)
        got: list[Received] = []
        async with asyncio.timeout(5):
            async for m in sub.messages():
                got.append(m)
                if len(got) == 6:
                    break
        sub.ack_many(got[:5])  # the sixth is not durable yet
        # a QoS 1 round trip: the broker has handled the PUBACKs written before it
        await sub.publish("t/b-sync", b"", qos=1)
        sub.abort()
        again = client(broker, "bob", "batch", clean_session=False)
        assert await again.connect()
        async with asyncio.timeout(5):
            m = await anext(aiter(again.messages()))
        assert m.payload == b"5"
        again.ack_many([m])
        await again.disconnect()


async def test_a_flood_is_dispatched_in_slices_in_order(broker: Mosquitto) -> None:
    """Thousands of queued messages arriving at once are handed over in order, but never
    more than FRAMES_PER_SLICE without the event loop running something else in between
    (another session of the process, e.g. the life-safety one, must not wait behind them)."""
    from dolbom.mqtt.reader import FRAMES_PER_SLICE

    n = 3000
    parked = client(broker, "bob", "flood", clean_session=False)
    await parked.connect()
    await parked.subscribe([("t/flood", 1)])
    await parked.disconnect()
    async with client(broker, "alice", "pub4") as pub:
        for i in range(n):
            pub.publish_nowait("t/flood", b"%d" % i, qos=1)
        await pub.publish("t/flood", b"end", qos=1)
    trace: list[object] = []
    done = asyncio.Event()

    def on_message(m: Received) -> None:
        trace.append(m.payload)
        sub.ack(m)
        if m.payload == b"end":
            done.set()

    async def ticker() -> None:
        while not done.is_set():
            trace.append(None)
            await asyncio.sleep(0)

    sub = client(broker, "bob", "flood", clean_session=False, on_message=on_message)
    tick = asyncio.create_task(ticker())
    assert await sub.connect()  # the session and its queue were kept
    await asyncio.wait_for(done.wait(), 20)
    await tick
    await sub.disconnect()
    got = [p for p in trace if p is not None]
    assert got == [b"%d" % i for i in range(n)] + [b"end"]
    longest = run = 0
    for p in trace:
        run = 0 if p is None else run + 1
        longest = max(longest, run)
    assert longest <= FRAMES_PER_SLICE <= 256


def test_reading_resumes_only_when_every_reason_has_resumed() -> None:
    """Pauses for different reasons (ingest's backlog, a slice) compose."""

    class Transport:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def is_closing(self) -> bool:
            return False

        def pause_reading(self) -> None:
            self.calls.append("pause")

        def resume_reading(self) -> None:
            self.calls.append("resume")

    c = Client("127.0.0.1", 1, "x")
    t = Transport()
    c._transport = t  # type: ignore[assignment]
    c.pause_reading("backlog")
    c.pause_reading("slice")
    c.resume_reading("slice")
    assert t.calls == ["pause"]  # still paused for the backlog
    c.resume_reading("backlog")
    assert t.calls == ["pause", "resume"]
