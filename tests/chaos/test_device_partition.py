"""A device cut off from the broker by a silent partition (TESTPLAN F-11): the real
firmware (mpy-cross bundle) under the real MicroPython unix port, its only link to the
real Mosquitto through the fault proxy, with ingest, the alerts service and a webhook
receiver running. The rules' clock is moved, not waited for; every wait is bounded."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from dolbom.protocol import Event, Telemetry
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal, Alert
from dolbom.stack.stack import Stack
from tests.chaos.conftest import ProxyFactory
from tests.chaos.helpers import sntp_server, told, told_once
from tests.firmware.conftest import observing, until
from tests.firmware.simnode import SimNode, device_config, make_flash
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import eventually, ingest_settings, running_ingest

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
KEEPALIVE_S, HB_S = 2, 2


@pytest.fixture()
def nodes() -> Iterator[list[SimNode]]:
    """Simulated nodes a test starts; each is killed (by its PID) afterwards."""
    started: list[SimNode] = []
    yield started
    for n in started:
        n.close()


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def alerts_of(stack: Stack, dev: str, rule: str) -> list[Alert]:
    with session_factory(stack.database_url)() as s:
        return list(s.scalars(select(Alert).where(Alert.device_id == dev, Alert.rule == rule)))


async def test_partitioned_device_is_lost_then_back_and_its_press_told_once(
        stack: Stack, fault_proxy: ProxyFactory, nodes: list[SimNode], tmp_path: Path) -> None:
    """F-11: the link goes silent (no RST). The broker announces the node `lost` (its
    Will) within 1.5 x keepalive and, once the node has been silent 3 heartbeats, the
    care worker is told it is offline. A button pressed during the partition stays on
    flash and, on heal, is journalled, acked and told once, with its original device
    time; heartbeats taken meanwhile are back-filled under their own times; the lost
    alert resolves by itself."""
    site, dev = "pt" + secrets.token_hex(2), "esp32-" + secrets.token_hex(3)
    async with webhook_receiver() as rec, fault_proxy(stack.mosquitto.port) as p, \
            sntp_server() as ntp_port:
        pw = care_home(stack, site, "h" + site, {dev: "multisensor"}, rec.url)
        cfg = device_config(tmp_path / "dev.json", site, dev, pw[dev], p.port)
        node = SimNode(make_flash(tmp_path, cfg, keepalive_s=KEEPALIVE_S, hb=HB_S,
                                   ntp_port=ntp_port))
        nodes.append(node)
        clock = Clock()
        async with running_ingest(ingest_settings(stack, tmp_path / "spool")) as ing, \
                running_alerts(alerts_settings(stack), clock), \
                observing(stack, site, dev) as obs:
            node.start()
            await node.wait_for(r"mqtt up 1", 15)
            await until(lambda: any(isinstance(m, Telemetry) and m.env.tq == 2
                                    for _, _, _, m in obs.of("telemetry")), 10,
                        "a heartbeat with NTP time")

            p.blackhole()
            cut_ms = int(time.time() * 1000)
            await until(lambda: any(getattr(m, "state", None) == "lost"
                                    for _, _, _, m in obs.of("status")),
                        10, "the broker to announce the node lost")
            print(f"\nF-11: the broker announced `lost` after "
                  f"{int(time.time() * 1000) - cut_ms} ms (keepalive {KEEPALIVE_S} s)")
            await node.wait_for(r"mqtt down", 2 * KEEPALIVE_S + 3)
            clock.advance(3 * 60 + 5)  # 3 heartbeats of the registry's 60 s: offline
            await eventually(lambda: ("worker", dev) in told(rec, "device_lost"), 15,
                             "the care worker told the device is offline")
            mark = node.count()
            await node.press()
            (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5, after=mark)
            seq = int(kept.group(1))
            await asyncio.sleep(3 * HB_S)  # heartbeats taken while cut off
            assert not node.find(rf"sent 1 {seq}", mark)
            heal_ms = int(time.time() * 1000)
            p.heal()

            await node.wait_for(r"mqtt up 2", 20)
            up_at = time.monotonic()
            await node.wait_for(rf"acked 1 {seq} pending 0", 15)
            await eventually(lambda: len(told(rec, "button")) == 2, 10, "button told")
            print(f"\nF-11: reconnection -> both told in {time.monotonic() - up_at:.2f} s")
            await eventually(lambda: alerts_of(stack, dev, "device_lost")[0].status
                             == "resolved", 15, "device back online")
            # NTP-synced heartbeats (tq 2) are stored under the node's own time; one sent
            # before the first sync, under its receive time (DESIGN.md §3).
            tel = {(m.env.boot, m.env.seq): m.env.ts for _, _, _, m in obs.of("telemetry")
                   if isinstance(m, Telemetry) and m.env.tq == 2}
            backfilled = {k: ts for k, ts in tel.items() if cut_ms < ts < heal_ms}
            await eventually(lambda: ing.snapshot().pending == 0
                             and ing.snapshot().points_written >= len(tel), 15, "stored")
            assert {e.env.tq for _, _, _, e in obs.of("event/button")
                    if isinstance(e, Event)} == {2}

        with session_factory(stack.database_url)() as s:
            rows = s.scalars(select(AlarmJournal).where(AlarmJournal.device_id == dev)).all()
            assert [(r.boot, r.seq) for r in rows] == [(1, seq)]
        presses = {m.env.ts for _, _, _, m in obs.of("event/button") if isinstance(m, Event)}
        assert len(presses) == 1  # every re-send carried the same device time
        (press_ts,) = presses
        assert cut_ms < press_ts < heal_ms  # stamped at the press, not at delivery
        assert told(rec, "button") == [("responder", dev), ("worker", dev)]
        assert {_ms(b["event_ts"]) for b in rec.received if b["rule"] == "button"} == {press_ts}
        told_once(rec)
        (button,) = alerts_of(stack, dev, "button")
        assert button.count == 1
        assert len(backfilled) >= 2, tel  # heartbeats of the partition, sent on heal
        stored = {r["time"] for r in stack.influx_admin().rows(
            f"SELECT rssi_dbm FROM reading WHERE device='{dev}'", "care")}  # noqa: S608
        assert set(tel.values()) <= stored and set(backfilled.values()) <= stored
