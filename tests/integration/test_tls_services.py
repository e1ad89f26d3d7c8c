"""Dolbom's own services over the broker's TLS listener only (DESIGN.md §2).

Each test starts a whole stack (real Mosquitto with its TLS listener, real InfluxDB 1.6,
SQLite registry) on free loopback ports; the services under test are given the TLS port
and the stack's CA, never the plaintext listener.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dolbom.certs import CA_CERT, init_ca
from dolbom.ingest.service import Ingest
from dolbom.mqtt import Client, client_context
from dolbom.protocol import Envelope, encode_event, encode_telemetry
from dolbom.registry.db import session_factory
from dolbom.settings import MqttSettings, MqttTlsSettings
from dolbom.sim.provision import ensure_plan
from dolbom.sim.runner import run_simulator
from dolbom.sim.settings import SimOptions, SimSettings
from dolbom.sim.stats import SimStats
from dolbom.stack.stack import Stack
from tests.integration.conftest import (
    TOPICS,
    eventually,
    ingest_settings,
    provision,
    running_ingest,
    unique_now_ms,
)

pytestmark = pytest.mark.integration


def _count(stack: Stack, q: str) -> int:
    return stack.influx_admin().count(q, "care")


async def test_ingest_over_tls_only_stores_a_message(stack: Stack, tmp_path: Path) -> None:
    """Ingest given only the TLS port and the CA connects over TLS and stores a device's event."""
    pw = provision(stack, "tl1", "htl1", {"pir-htl1": "multisensor"})
    mqtt = stack.mqtt_tls_settings("svc-ingest")
    assert mqtt.port == stack.mosquitto.tls_port and mqtt.port != stack.mosquitto.port
    assert stack.mosquitto.tls_port is not None
    now = unique_now_ms()
    async with running_ingest(ingest_settings(stack, tmp_path, mqtt=mqtt)) as ing, \
            Client("127.0.0.1", stack.mosquitto.tls_port, "pir-htl1", username="pir-htl1",
                   password=pw["pir-htl1"], ssl=client_context(stack.ca_file)) as dev:
        assert ing.client is not None and ing.client.ssl is not None
        await dev.publish(TOPICS.event("tl1", "pir-htl1", "motion"),
                          encode_event(Envelope(1, 1, now, 2)), qos=1)
        await dev.publish(TOPICS.telemetry("tl1", "pir-htl1"),
                          encode_telemetry(Envelope(1, 2, now + 1, 2), {"temperature_c": 21.5}),
                          qos=1)
        await eventually(lambda: ing.snapshot().points_written == 2, 20, "2 points")
    events = stack.influx_admin().rows('SELECT * FROM "event" GROUP BY *', "care")
    assert [(e["device"], e["type"], e["seq"], e["time"]) for e in events] == [
        ("pir-htl1", "motion", 1, now)]
    assert _count(stack, 'SELECT count("temperature_c") FROM "reading"') == 1


async def test_ingest_trusting_another_ca_never_connects(
        stack: Stack, tmp_path: Path, runtime_dir: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Ingest trusting a CA that did not sign the broker's certificate logs why and stays down."""
    other = Path(tempfile.mkdtemp(prefix="ca-other-", dir=runtime_dir))
    init_ca(other)
    mqtt = stack.mqtt_tls_settings("svc-ingest").model_copy(
        update={"tls": MqttTlsSettings(enabled=True, ca_file=other / CA_CERT)})
    ing = Ingest(ingest_settings(stack, tmp_path, mqtt=mqtt))
    caplog.set_level(logging.WARNING, logger="dolbom.ingest")
    task = asyncio.create_task(ing.run(), name="ingest")

    def refusals() -> int:
        return sum("TLS with broker" in r.getMessage() and "certificate" in r.getMessage()
                   for r in caplog.records)

    try:
        await eventually(lambda: refusals() >= 2 or task.done(), 15, "two refused attempts")
        assert not task.done()
        assert not ing.snapshot().mqtt_connected and ing.client is None
    finally:
        ing.stopping.set()
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def _simulator(settings: SimSettings, plan_path: Path) -> AsyncIterator[SimStats]:
    from dolbom.sim.plan import load_plan

    plan = load_plan(plan_path)
    stats, stop = SimStats(), asyncio.Event()
    task = asyncio.create_task(run_simulator(
        plan, settings, speed=600.0, stats=stats, control_socket=None,
        random_incident_rate=0.0, stop=stop, start_tod_s=9 * 3600.0), name="sim")
    try:
        await eventually(lambda: (stats.devices > 0 and stats.connected == stats.devices)
                         or task.done(), 20, "every simulated device to connect",
                         state=stats.snapshot)
        if task.done():
            task.result()
        yield stats
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_simulator_over_tls_reaches_ingest_and_influxdb(stack: Stack,
                                                              tmp_path: Path) -> None:
    """The simulator's devices connect over TLS only; ingest (TLS too) stores what they send."""
    plan_path = tmp_path / "plan.json"
    plan, _ = ensure_plan(session_factory(stack.database_url), "ts1", 1, 5, plan_path)
    stack.sync_broker()
    devices = {d.id for _, d in plan.devices()}
    with tempfile.TemporaryDirectory(prefix="sim-", dir="/tmp") as state:
        sim = SimSettings(
            mqtt=MqttSettings(port=stack.mosquitto.tls_port,
                              tls=MqttTlsSettings(enabled=True, ca_file=stack.ca_file)),
            sim=SimOptions(state_dir=Path(state), tick_s=0.05, connect_backoff_cap_s=1.0,
                           drain_s=1.0))
        assert sim.mqtt.use_tls and sim.mqtt.port != stack.mosquitto.port
        ingest = ingest_settings(stack, tmp_path / "spool",
                                 mqtt=stack.mqtt_tls_settings("svc-ingest"))
        # The broker reloads its users on SIGHUP: refusals before that are retried.
        async with running_ingest(ingest) as ing, _simulator(sim, plan_path):
            await eventually(lambda: ing.snapshot().devices_seen >= len(devices), 20,
                             "a message from every simulated device", state=ing.snapshot)
    rows = stack.influx_admin().rows('SELECT * FROM "device_status" GROUP BY *', "care")
    assert devices <= {r["device"] for r in rows}
