"""Store-and-forward with real processes: the home's Mosquitto, the gateway process, the
central Mosquitto over TLS, ingest into the real InfluxDB and the alerts service that
journals life-safety events and sends the ``ack``. Faults: the central broker killed,
the uplink blackholed, the gateway killed -9 with a backlog, the local broker
restarted, the gateway restarted while the uplink is down."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from dolbom.mqtt import Client, Received
from dolbom.protocol import Envelope, encode_event, encode_status, encode_telemetry
from dolbom.stack.stack import Stack
from tests.gateway.conftest import TOPICS, Home, restart_broker, watching, write_home
from tests.gateway.proxy import Proxy
from tests.integration.alerting import Clock, alerts_settings, running_alerts, webhook_receiver
from tests.integration.conftest import eventually, ingest_settings, running_ingest

pytestmark = pytest.mark.integration

# How long the uplink stays cut in these tests; the 10-minute cut is the same
# test with DOLBOM_GW_TEST_CUT_S=600 (docs/gateway.md "Proving it").
CUT_S = float(os.environ.get("DOLBOM_GW_TEST_CUT_S", "2"))


class Device:
    """A CPython device on the home's local broker: persistent session, its own ``ack``
    subscription; every message it sends is in ``sent``."""

    def __init__(self, home: Home, dev: str, tq: int = 2) -> None:
        self.home, self.dev, self.tq = home, dev, tq
        self.acks: list[tuple[int, int]] = []
        self.seq = 0
        self.client: Client | None = None
        self.telemetry = 0

    def _on(self, msg: Received) -> None:
        if msg.topic == TOPICS.ack(self.home.site, self.dev):
            a = orjson.loads(msg.payload)
            self.acks.append((a["boot"], a["seq"]))
        if self.client is not None and msg.qos:
            self.client.ack(msg)

    async def connect(self) -> Device:
        self.client = Client("127.0.0.1", self.home.local.port, self.dev, username=self.dev,
                             password=self.home.children[self.dev], clean_session=False,
                             on_message=self._on, keepalive=5)
        await self.client.connect()
        await self.client.subscribe([(TOPICS.ack(self.home.site, self.dev), 1)])
        await self.client.publish(TOPICS.status(self.home.site, self.dev),
                                  encode_status("ready", 1, "1.0.0", "multisensor", 60),
                                  qos=1, retain=True)
        return self

    def env(self) -> Envelope:
        self.seq += 1
        return Envelope(1, self.seq, int(time.time() * 1000) + self.seq, self.tq)

    async def reading(self) -> None:
        assert self.client is not None
        await self.client.publish(TOPICS.telemetry(self.home.site, self.dev),
                                  encode_telemetry(self.env(), {"temperature_c": 21.5}), qos=1)
        self.telemetry += 1

    async def event(self, etype: str, val: str | None = None) -> tuple[int, int]:
        assert self.client is not None
        env = self.env()
        await self.client.publish(TOPICS.event(self.home.site, self.dev, etype),
                                  encode_event(env, val), qos=1)
        return env.boot, env.seq

    async def close(self) -> None:
        if self.client is not None:
            await self.client.disconnect()


@asynccontextmanager
async def services(central: Stack, tmp: Path) -> AsyncIterator[None]:
    """Ingest and alerts, in this process, on the central broker."""
    async with webhook_receiver() as rec, \
            running_ingest(ingest_settings(central, tmp / "spool")), \
            running_alerts(alerts_settings(central), Clock()):
        rec.url = rec.url  # deliveries are not what these tests look at
        yield


async def _up(home: Home) -> None:
    async with watching(home.central, TOPICS.gateway_status(home.site, home.gw)) as w:
        home.gateway.start()
        await eventually(lambda: any(p.get("state") == "ready" for p in w.payloads("status")),
                         20, "the gateway's ready status", home.gateway.tail)


async def test_forwards_unchanged_acks_back_and_reports_itself(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path) -> None:
    """Children's messages reach the central broker byte for byte on their own topics;
    the button is journalled once and its ack reaches the device through the gateway;
    the gateway's retained status says ready, with its queue empty."""
    home = write_home(central, tmp_path, runtime_dir, {"esp32-" + secrets.token_hex(2):
                                                        "multisensor"}, "http://127.0.0.1:9/")
    homes.append(home)
    dev = next(iter(home.children))
    async with services(central, tmp_path), \
            watching(central, f"care/v1/{home.site}/#") as w:
        await _up(home)
        d = await Device(home, dev).connect()
        for _ in range(5):
            await d.reading()
        key = await d.event("button", "press")
        await eventually(lambda: key in d.acks, 20, "the ack at the device", home.gateway.tail)
        await eventually(lambda: home.readings(dev) == 5, 20, "5 readings in InfluxDB")
        assert [(b, s) for b, s, _ in home.journal(dev)] == [key]
        sent = [m for m in w.on("/telemetry")]
        assert len(sent) == 5 and all(b"hist" not in m.payload for m in sent)
        await eventually(lambda: any(p.get("q", {}).get("depth") == 0  # type: ignore[union-attr]
                                     for p in w.payloads(f"gw/{home.gw}/status")), 10,
                         "a status with an empty queue")
        st = w.payloads(f"gw/{home.gw}/status")[-1]
        assert st["state"] == "ready" and st["kind"] == "gateway"
        assert st["ob"] == {"depth": 0, "evicted": 0, "merged": 0, "werr": 0}
        await d.close()
    assert home.gateway.stop() == 0


@pytest.mark.parametrize("cut", ["kill", "blackhole"])
async def test_uplink_cut_loses_nothing_and_replays_as_hist(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path,
        cut: str) -> None:
    """Uplink cut (central broker killed -9, or a silent TCP blackhole) while a device
    sends telemetry and a button is pressed: on recovery every reading is in InfluxDB
    exactly once, the button is journalled once with its original time, its ack reaches
    the device, and the backlog carried "hist": true. Blackholed, the central broker
    publishes the gateway's Will (lost)."""
    async with Proxy("127.0.0.1", central.mosquitto.tls_port or 0) as proxy:
        home = write_home(central, tmp_path, runtime_dir,
                          {"esp32-" + secrets.token_hex(2): "multisensor"},
                          "http://127.0.0.1:9/", central_port=proxy.port)
        homes.append(home)
        dev = next(iter(home.children))
        async with services(central, tmp_path), \
                watching(central, f"care/v1/{home.site}/#") as w:
            await _up(home)
            d = await Device(home, dev).connect()
            for _ in range(3):
                await d.reading()
            await eventually(lambda: home.readings(dev) == 3, 20, "3 live readings")
            if cut == "kill":
                # A broker that has run a while has saved its sessions (autosave): ask it
                # to now (SIGUSR1), so ingest's subscription outlives the kill as it would.
                assert central.mosquitto.proc is not None
                os.kill(central.mosquitto.proc.pid, signal.SIGUSR1)
                await asyncio.sleep(0.3)
                central.mosquitto.kill()
            else:
                proxy.blackhole()
            # readings all through the cut, the button pressed in its middle
            for i in range(20):
                if i == 10:
                    key = await d.event("button", "press")
                    pressed_ms = int(time.time() * 1000)
                await d.reading()
                await asyncio.sleep(CUT_S / 20)
            if cut == "kill":
                central.mosquitto.start()
            else:
                await eventually(lambda: any(p.get("state") == "lost" for p in
                                             w.payloads(f"gw/{home.gw}/status")), 20,
                                 "the gateway's Will")
                proxy.passthrough()
            await eventually(lambda: key in d.acks, 40, "the ack at the device",
                             home.gateway.tail)
            await eventually(lambda: home.readings(dev) == 23, 30, "23 readings",
                             lambda: home.readings(dev))
            journal = home.journal(dev)
            assert [(b, s) for b, s, _ in journal] == [key]
            replayed = [orjson.loads(m.payload) for m in w.on("/telemetry")]
            assert sum(1 for p in replayed if p.get("hist") is True) >= 20 \
                or cut == "kill"  # a killed broker took the watcher's copies with it
            button = [orjson.loads(m.payload) for m in w.on("/event/button")]
            assert button and all(p["hist"] is True for p in button)
            assert abs(int(button[0]["ts"]) - pressed_ms) < 2000  # the device's own time
            await asyncio.sleep(1.0)
            assert home.readings(dev) == 23  # and nothing more arrives
            await d.close()
        assert home.gateway.stop() == 0


async def test_gateway_kill9_with_backlog_then_restart_loses_nothing(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path) -> None:
    """Power cut of the gateway (kill -9) with a backlog queued while the uplink was
    down; the local broker restarted too; the gateway restarted while the uplink is
    still down; then the uplink returns: everything arrives once."""
    async with Proxy("127.0.0.1", central.mosquitto.tls_port or 0) as proxy:
        home = write_home(central, tmp_path, runtime_dir,
                          {"esp32-" + secrets.token_hex(2): "multisensor"},
                          "http://127.0.0.1:9/", central_port=proxy.port)
        homes.append(home)
        dev = next(iter(home.children))
        async with services(central, tmp_path):
            await _up(home)
            # An RTC clock (tq 1): ingest times these by their first receive time, and the
            # backlog arrives in bursts: each reading must still be a point of its own.
            d = await Device(home, dev, tq=1).connect()
            proxy.blackhole()
            for _ in range(30):
                await d.reading()
            key = await d.event("button", "press")
            # 32 messages (status, 30 readings, the button) on disk, PUBACKed locally
            await eventually(lambda: home.queued() == 32, 10, "32 queued", home.queued)
            home.gateway.kill9()
            restart_broker(home.local, kill=False)
            await d.close()
            d2 = Device(home, dev, tq=1)
            d2.seq = d.seq
            await d2.connect()
            for _ in range(5):
                await d2.reading()  # while the gateway is down: held by the local broker
            home.gateway.start()  # uplink still down
            await asyncio.sleep(CUT_S)
            proxy.passthrough()
            await eventually(lambda: key in d2.acks, 40, "the ack at the device",
                             home.gateway.tail)
            await eventually(lambda: home.readings(dev) == 35, 30, "35 readings",
                             lambda: home.readings(dev))
            assert [(b, s) for b, s, _ in home.journal(dev)] == [key]
            await d2.close()
        assert home.gateway.stop() == 0


async def test_full_queue_evicts_telemetry_keeps_the_alarm_and_says_so(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path) -> None:
    """A queue bounded at 100 messages, the uplink cut, 150 readings and a press: the
    oldest readings are evicted, the press is not; once back, the gateway's status
    counts the evictions and exactly the kept readings are in InfluxDB."""
    async with Proxy("127.0.0.1", central.mosquitto.tls_port or 0) as proxy:
        home = write_home(central, tmp_path, runtime_dir,
                          {"esp32-" + secrets.token_hex(2): "multisensor"},
                          "http://127.0.0.1:9/", central_port=proxy.port,
                          extra_env={"DOLBOM_GW_MAX_MESSAGES": "100"})
        homes.append(home)
        dev = next(iter(home.children))
        async with services(central, tmp_path), \
                watching(central, f"care/v1/{home.site}/#") as w:
            await _up(home)
            d = await Device(home, dev).connect()
            await eventually(lambda: bool(w.on(f"{dev}/status")), 10, "the child's status")
            proxy.blackhole()
            proxy.reset_all()  # the gateway sees its link end; new ones stall
            key = await d.event("button", "press")
            for _ in range(150):
                await d.reading()
            await eventually(lambda: home.queued() == 100, 10, "a full queue", home.queued)
            proxy.passthrough()
            await eventually(lambda: key in d.acks, 30, "the ack at the device",
                             home.gateway.tail)
            def evicted() -> object:
                return [p.get("q", {}).get("evicted_telemetry")  # type: ignore[union-attr]
                        for p in w.payloads(f"gw/{home.gw}/status")]

            await eventually(lambda: 51 in evicted(), 10, "evictions in the status", evicted)
            await eventually(lambda: home.readings(dev) == 99, 30, "99 readings",
                             lambda: home.readings(dev))
            assert [(b, s) for b, s, _ in home.journal(dev)] == [key]
            await d.close()
        assert home.gateway.stop() == 0
