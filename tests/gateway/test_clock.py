"""The gateway in this process with an injected clock, on real brokers: a life-safety
event is re-sent upstream when its ack is late (the clock is moved, not slept), dropped
from the queue by its ack, which goes on to the device; a late reading is backlog."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path

import orjson
import pytest

from dolbom.gateway.service import Gateway
from dolbom.gateway.settings import GatewaySettings
from dolbom.mqtt import Client, Received
from dolbom.protocol import Envelope, encode_ack, encode_event, encode_telemetry
from dolbom.settings import load
from dolbom.stack.stack import Stack
from tests.gateway.conftest import TOPICS, Home, watching, write_home
from tests.integration.alerting import Clock
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


async def test_late_ack_resends_the_alarm_and_the_ack_reaches_the_device(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No ack within ack_timeout_s (clock moved 31 s): the button goes up again with the
    same (boot, seq); the central ack removes it from the queue and reaches the device.
    A reading that waited longer than hist_after_s goes up with "hist": true."""
    dev = "esp32-" + secrets.token_hex(2)
    home = write_home(central, tmp_path, runtime_dir, {dev: "button"}, "http://127.0.0.1:9/",
                      extra_env={"DOLBOM_GW_ACK_TIMEOUT_S": "30",
                                 "DOLBOM_GW_HIST_AFTER_S": "30"})
    homes.append(home)
    settings = load(GatewaySettings, home.env_file)
    settings.central.tls.ca_file = central.ca_file  # provisioned for the Pi's path
    clock = Clock()
    gw = Gateway(settings, clock=clock)
    task = asyncio.create_task(gw.run(), name="gateway")
    acks: list[Received] = []
    try:
        async with watching(central, f"care/v1/{home.site}/{dev}/#") as w, \
                home.local_client(dev, on_message=acks.append) as d, \
                Client("127.0.0.1", central.mosquitto.port, "a-" + secrets.token_hex(2),
                       username="svc-alerts",
                       password=central.secrets.mqtt["svc-alerts"]) as alerts:
            await eventually(lambda: gw.snapshot().central_up and gw.snapshot().local_up, 10,
                             "both brokers")
            await d.subscribe([(TOPICS.ack(home.site, dev), 1)])
            env = Envelope(1, 1, 1_760_000_000_000, 2)
            await d.publish(TOPICS.event(home.site, dev, "button"), encode_event(env), qos=1)
            await eventually(lambda: len(w.on("/event/button")) == 1, 5, "the button up")
            await asyncio.sleep(0.5)
            assert len(w.on("/event/button")) == 1  # PUBACKed, waiting for its ack
            clock.advance(31)
            gw.forwarder.wake()
            await eventually(lambda: len(w.on("/event/button")) == 2, 5, "the re-send")
            first, again = (orjson.loads(m.payload) for m in w.on("/event/button"))
            assert (again["boot"], again["seq"]) == (first["boot"], first["seq"])
            assert again["hist"] is True  # it waited longer than hist_after_s
            assert gw.snapshot().life_safety_pending == 1
            await alerts.publish(TOPICS.ack(home.site, dev), encode_ack(1, 1), qos=1)
            await eventually(lambda: bool(acks), 5, "the ack at the device")
            assert orjson.loads(acks[0].payload) == {"boot": 1, "seq": 1}
            await eventually(lambda: gw.snapshot().depth == 0, 5, "the queue empty")
            assert gw.snapshot().counters["acked"] == 1
            await d.publish(TOPICS.telemetry(home.site, dev),
                            encode_telemetry(Envelope(1, 2, 1_760_000_000_001, 2),
                                             {"battery_pct": 80}), qos=1)
            await eventually(lambda: len(w.on("/telemetry")) == 1, 5, "the reading up")
            assert b"hist" not in w.on("/telemetry")[0].payload  # live: unchanged
            assert w.on("/telemetry")[0].payload == encode_telemetry(
                Envelope(1, 2, 1_760_000_000_001, 2), {"battery_pct": 80})
    finally:
        gw.stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    assert task.done() and task.exception() is None
