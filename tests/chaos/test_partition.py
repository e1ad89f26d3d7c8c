"""Network partitions between a client and the broker, made by the fault proxy
(TESTPLAN F-11, F-12): sockets stay open, nothing flows, nothing is reset."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dolbom.protocol import encode_event, encode_telemetry
from dolbom.stack.stack import Stack
from tests.chaos.conftest import ProxyFactory
from tests.integration.conftest import (
    TOPICS,
    device_client,
    env,
    eventually,
    ingest_settings,
    provision,
    running_ingest,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
KEEPALIVE = 5


def count(stack: Stack, q: str) -> int:
    return stack.influx_admin().count(q, "care")


async def test_ingest_half_open_to_broker_detected_and_nothing_lost(
        stack: Stack, fault_proxy: ProxyFactory, tmp_path: Path) -> None:
    """F-12: ingest's link to the broker goes silent (blackhole, no RST) while devices keep
    sending. Ingest notices within 1.5 x keepalive, reconnects once the link heals, resumes
    its session, and every message sent before, during and after is exactly one point."""
    devices = {f"ms-c12-{i}": "multisensor" for i in range(3)}
    pw = provision(stack, "c12", "hc12", devices)
    async with fault_proxy(stack.mosquitto.port) as p:
        mqtt = stack.mqtt_settings().model_copy(update={"port": p.port,
                                                        "keepalive": KEEPALIVE})
        settings = ingest_settings(stack, tmp_path, mqtt=mqtt, client_id="ingest-c12")
        sent = 0

        async def burst(seq0: int, n: int) -> None:
            nonlocal sent
            for dev in devices:
                async with device_client(stack, dev, pw[dev]) as c:
                    for seq in range(seq0, seq0 + n):
                        await c.publish(TOPICS.telemetry("c12", dev), encode_telemetry(
                            env(seq), {"temperature_c": 20.0 + seq / 10}), qos=1)
                        sent += 1
                    await c.publish(TOPICS.event("c12", dev, "motion"),
                                    encode_event(env(seq0 + n)), qos=1)
                    sent += 1

        async with running_ingest(settings) as ing:
            await burst(1, 20)
            await eventually(lambda: ing.snapshot().points_written == sent, 15, "before")
            p.blackhole()
            cut = time.monotonic()
            await burst(100, 50)  # devices reach the broker directly: queued for ingest
            await eventually(lambda: not ing.snapshot().mqtt_connected, 3 * KEEPALIVE,
                             "ingest to notice the silent link")
            noticed = time.monotonic() - cut
            assert noticed <= 1.5 * KEEPALIVE + 0.5, f"noticed after {noticed:.1f} s"
            await burst(200, 50)
            p.heal()
            await eventually(lambda: ing.snapshot().mqtt_connected, 20, "reconnected")
            await burst(300, 20)
            await eventually(lambda: ing.snapshot().points_written >= sent
                             and ing.snapshot().pending == 0, 30, "every message stored",
                             lambda: (ing.snapshot(), sent))
        assert p.counters.accepted >= 2  # it did reconnect through the proxy
    assert sent == 3 * (20 + 50 + 50 + 20 + 4)
    readings = count(stack, "SELECT count(temperature_c) FROM reading WHERE site='c12'")
    events = count(stack, "SELECT count(seq) FROM event WHERE site='c12'")
    assert (readings, events) == (3 * 140, 3 * 4)
