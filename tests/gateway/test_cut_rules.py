"""A long uplink cut as the care rules see it, with real processes: the home's Mosquitto,
the gateway, the central Mosquitto over TLS through a TCP proxy that is blackholed,
ingest into the real InfluxDB, and the alerts service with an injected clock that the test
moves 13 hours forward while the uplink is cut (longer than every device's lost interval
and the 12 h inactivity tier).

What the care worker must see: one ``gateway_lost`` (medium: nobody can see the resident
while it lasts), no ``device_lost`` per device and no inactivity alert for a home that
is only unheard; after the cut the gateway's alert is cleared, the button pressed during
it is one alarm with the time it was pressed, and a device that died during the cut is
then judged lost on its own."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from dolbom.alerts.model import Rule, Status
from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert
from dolbom.stack.stack import Stack
from tests.gateway.conftest import Home, watching, write_home
from tests.gateway.proxy import Proxy
from tests.gateway.test_forward import Device, _up
from tests.integration.alerting import Clock, alerts_settings, running_alerts, webhook_receiver
from tests.integration.conftest import eventually, ingest_settings, running_ingest

pytestmark = pytest.mark.integration

CUT_H = 13


@asynccontextmanager
async def services(central: Stack, tmp: Path, clock: Clock) -> AsyncIterator[None]:
    async with webhook_receiver(), \
            running_ingest(ingest_settings(central, tmp / "spool")), \
            running_alerts(alerts_settings(central), clock):
        yield


def alerts(home: Home) -> list[Alert]:
    with session_factory(home.central.database_url)() as s:
        return list(s.scalars(select(Alert).where(Alert.home_id == home.home)
                              .order_by(Alert.id)))


def rules(home: Home, *, open_only: bool = False) -> list[str]:
    return [a.rule for a in alerts(home) if not open_only or a.status != Status.RESOLVED]


async def test_a_long_cut_is_one_gateway_lost_and_the_rules_pick_up_after_it(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path) -> None:
    clock = Clock()
    motion, door = "esp32-" + secrets.token_hex(2), "door-" + secrets.token_hex(2)
    async with Proxy("127.0.0.1", central.mosquitto.tls_port or 0) as proxy:
        home = write_home(central, tmp_path, runtime_dir,
                          {motion: "multisensor", door: "door"}, "http://127.0.0.1:9/",
                          central_port=proxy.port)
        homes.append(home)
        async with services(central, tmp_path, clock), \
                watching(central, f"care/v1/{home.site}/#") as w:
            await _up(home)
            m, d = await Device(home, motion).connect(), await Device(home, door).connect()
            for dev in (m, d):
                await dev.reading()
            await eventually(lambda: home.readings(motion) == 1 == home.readings(door), 20,
                             "live readings from both devices")

            proxy.blackhole()
            await eventually(lambda: any(p.get("state") == "lost" for p in
                                         w.payloads(f"gw/{home.gw}/status")), 20,
                             "the gateway's Will")
            # the motion sensor goes on through the cut (into the gateway's queue) and the
            # button is pressed in it; the door sensor dies and is never heard again
            for i in range(10):
                if i == 5:
                    key = await m.event("button", "press")
                    pressed_ms = int(time.time() * 1000)
                await m.reading()
            clock.advance(CUT_H * 3600)
            await eventually(lambda: Rule.GATEWAY_LOST in rules(home, open_only=True), 20,
                             "gateway_lost while the uplink is cut", lambda: rules(home))
            lost = [a for a in alerts(home) if a.rule == Rule.GATEWAY_LOST]
            assert len(lost) == 1 and lost[0].device_id == home.gw
            assert lost[0].priority == "medium"  # the home's only motion sensor is unheard
            assert rules(home) == [Rule.GATEWAY_LOST]  # no device_lost, no inactivity

            proxy.passthrough()
            await eventually(lambda: key in m.acks, 40, "the button's ack at the device",
                             home.gateway.tail)
            await eventually(lambda: Rule.GATEWAY_LOST not in rules(home, open_only=True),
                             30, "gateway_lost cleared once the gateway is heard",
                             lambda: rules(home))
            await eventually(lambda: home.readings(motion) == 11, 30,
                             "every reading of the cut stored once")
            (button,) = [a for a in alerts(home) if a.rule == Rule.BUTTON]
            assert button.event_ts is not None
            assert abs(button.event_ts.timestamp() * 1000 - pressed_ms) < 2000
            assert Rule.DEVICE_LOST not in rules(home)

            # the motion sensor is heard live every minute; the door sensor, silent since
            # before the cut, is given its own interval (3 × 60 s) from the gateway's
            # return and then judged lost on its own
            for _ in range(5):
                await m.reading()
                await asyncio.sleep(0.5)  # taken by the rules before the clock moves on
                clock.advance(60)
            await eventually(lambda: Rule.DEVICE_LOST in rules(home, open_only=True), 20,
                             "the door sensor lost on its own after the cut",
                             lambda: rules(home))
            (dl,) = [a for a in alerts(home) if a.rule == Rule.DEVICE_LOST]
            assert dl.device_id == door
            for dev in (m, d):
                await dev.close()
        assert home.gateway.stop() == 0
