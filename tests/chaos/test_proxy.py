"""The fault proxy itself, in front of the real Mosquitto: each mode does what the
scenarios rely on (a scenario that passes because the fault never happened proves nothing)."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from dolbom.mqtt import Client, MqttError, Received
from dolbom.stack.stack import Stack
from tests.chaos.conftest import ProxyFactory
from tests.chaos.proxy import FaultProxy
from tests.integration.conftest import TOPICS, eventually, provision

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def test_the_proxy_forwards_to_loopback_only() -> None:
    """A fault proxy can never be pointed at another host."""
    with pytest.raises(ValueError, match="loopback only"):
        FaultProxy(1883, upstream_host="192.0.2.1")


async def test_modes_against_the_real_broker(stack: Stack, fault_proxy: ProxyFactory) -> None:
    """pass forwards; delay holds each chunk; blackhole holds everything (no PUBACK, no
    delivery) and loses nothing on heal; reset ends the connection at once; throttle
    caps the rate."""
    pw = provision(stack, "px", "hpx", {"ms-px": "multisensor"})["ms-px"]
    topic = TOPICS.telemetry("px", "ms-px")
    got: list[bytes] = []

    def on(msg: Received) -> None:
        got.append(msg.payload)

    def device(port: int) -> Client:
        return Client("127.0.0.1", port, "ms-px", username="ms-px", password=pw)

    async with fault_proxy(stack.mosquitto.port) as p, \
            Client("127.0.0.1", stack.mosquitto.port, "px-" + secrets.token_hex(3),
                   username="svc-operator", password=stack.secrets.mqtt["svc-operator"],
                   on_message=on) as sub:
        await sub.subscribe([(topic, 1)])
        async with device(p.port) as c:
            await c.publish(topic, b"pass", qos=1)
            await eventually(lambda: got == [b"pass"], 5, "pass")

            p.delay(400)
            t0 = time.monotonic()
            await c.publish(topic, b"delayed", qos=1)
            assert time.monotonic() - t0 >= 0.8  # the publish and its PUBACK, 0.4 s each
            await eventually(lambda: got[-1] == b"delayed", 5, "delayed")

            p.blackhole()
            held = asyncio.create_task(c.publish(topic, b"held", qos=1, timeout=30))
            await asyncio.sleep(1.0)
            assert not held.done() and got[-1] == b"delayed"
            p.heal()
            await asyncio.wait_for(held, 5)
            await eventually(lambda: got[-1] == b"held", 5, "held bytes after heal")

            p.reset()
            with pytest.raises(MqttError):
                await asyncio.wait_for(c.wait_closed(), 5)
        assert p.counters.reset >= 1
        p.heal()
        async with device(p.port) as again:  # healed: new connections work
            p.throttle(2000)
            t0 = time.monotonic()
            await again.publish(topic, b"x" * 3000, qos=1)
            assert time.monotonic() - t0 >= 1.0  # 3 KB at 2 KB/s
            await eventually(lambda: got[-1] == b"x" * 3000, 5, "throttled")
    assert got == [b"pass", b"delayed", b"held", b"x" * 3000]  # each exactly once
