"""The real firmware (mpy-cross bundle, MicroPython unix port) behind the gateway: the
node talks only to the home's local Mosquitto; the gateway carries its button press
across an uplink cut to the central alerts service, and the ``ack`` back, which clears
the node's flash outbox."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert
from dolbom.stack.stack import Stack
from tests.firmware.simnode import BUTTON, SimNode, device_config, make_flash
from tests.gateway.conftest import Home, watching, write_home
from tests.gateway.proxy import Proxy
from tests.gateway.test_forward import CUT_S, _up
from tests.integration.alerting import Clock, alerts_settings, running_alerts, webhook_receiver
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


@pytest.fixture()
def nodes() -> Iterator[list[SimNode]]:
    started: list[SimNode] = []
    yield started
    for n in started:
        n.close()


async def test_button_pressed_during_uplink_cut_reaches_a_person_and_clears_the_node(
        central: Stack, homes: list[Home], nodes: list[SimNode], tmp_path: Path,
        runtime_dir: Path) -> None:
    """A press while the uplink is blackholed: the node keeps it on flash and re-sends it
    to the local broker, the gateway queues it once; when the uplink returns it is
    journalled once, the alert carries the press's own time, the ack reaches the node
    and its outbox empties."""
    dev = "esp32-" + secrets.token_hex(3)
    async with webhook_receiver() as rec, \
            Proxy("127.0.0.1", central.mosquitto.tls_port or 0) as proxy:
        home = write_home(central, tmp_path, runtime_dir, {dev: "multisensor"}, rec.url,
                          central_port=proxy.port)
        homes.append(home)
        cfg = device_config(tmp_path / "dev.json", home.site, dev, home.children[dev],
                            home.local.port)
        node = SimNode(make_flash(tmp_path, cfg))
        nodes.append(node)
        async with running_alerts(alerts_settings(central), Clock()), \
                watching(central, f"care/v1/{home.site}/{dev}/event/#") as w:
            await _up(home)
            node.start()
            await node.wait_for(r"mqtt up 1", 15)
            proxy.blackhole()
            mark = node.count()
            pressed = datetime.now(UTC)
            await node.press(BUTTON, 200)
            (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5, after=mark)
            seq = int(kept.group(1))
            await asyncio.sleep(CUT_S)
            assert node.outbox() == [(1, seq)]  # no ack while the uplink is cut
            assert home.journal(dev) == []
            proxy.passthrough()
            await node.wait_for(rf"acked 1 {seq} pending 0", 40, after=mark)
            assert node.outbox() == []
            assert [(b, s) for b, s, _ in home.journal(dev)] == [(1, seq)]
            await eventually(lambda: bool(rec.received), 20, "the care worker told")
            with session_factory(central.database_url)() as s:
                alerts = list(s.scalars(select(Alert).where(Alert.device_id == dev)))
            # (a long cut with the clock moved would also show the gateway_lost; the rules'
            # handling of a gateway's children is tested in tests/alerts)
            print("alerts of the node:", sorted(a.rule for a in alerts))
            (alert,) = [a for a in alerts if a.rule == "button"]
            assert alert.event_ts is not None
            assert abs((alert.event_ts - pressed).total_seconds()) < 2  # the press's time
            assert {(p["boot"], p["seq"]) for p in w.payloads("/event/button")} == {(1, seq)}
        assert home.gateway.stop() == 0
