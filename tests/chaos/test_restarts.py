"""Restarts while devices keep sending (TESTPLAN F-01, F-18): the broker stopped with
SIGTERM in the middle of a burst of alarms and readings, and the whole stack (broker,
InfluxDB, ingest, the alerts service) stopped and started again in a random order.

The devices behave as the firmware does: a reading is sent until the broker's PUBACK
(the same ts, so a re-send is the same point), a button press until the ack comes back
(the same boot/seq/ts), reconnecting with a capped, jittered backoff. The oracle: each
press journalled once, each home's alarm told exactly once to each person, and every
reading exactly one point in InfluxDB. (A press on an open alarm is counted into it and
told again: the resident is pressing again.)"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from dolbom.alerts.service import AlertService
from dolbom.ingest.service import Ingest
from dolbom.protocol import Envelope, encode_telemetry
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal, Alert
from dolbom.stack.stack import Stack
from tests.chaos.helpers import Device, Service, told, told_once
from tests.integration.alerting import Clock, alerts_settings, care_home, webhook_receiver
from tests.integration.conftest import TOPICS, eventually, ingest_settings, unique_now_ms

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
HOMES, PRESSES, READINGS_PER_S = 4, 3, 10


async def run_scenario(stack: Stack, tmp_path: Path, stop_order: list[str],
                       start_order: list[str]) -> None:
    async with webhook_receiver() as rec:
        homes = []
        for i in range(HOMES):
            site = f"r{secrets.token_hex(2)}{i}"
            pw = care_home(stack, site, "h" + site,
                           {f"btn-{site}": "button", f"ms-{site}": "multisensor"}, rec.url)
            homes.append((site, Device(stack, site, f"btn-{site}", pw[f"btn-{site}"]),
                          Device(stack, site, f"ms-{site}", pw[f"ms-{site}"])))
        ingest_cfg = ingest_settings(stack, tmp_path / "spool", client_id="ingest-restarts")
        # re-notify later than this test lasts: each home's alarm is told exactly once
        alerts_cfg = alerts_settings(stack, high_renotify_s=600.0, high_escalate_s=1200.0)
        clock = Clock()
        ingest = Service(lambda: Ingest(ingest_cfg))
        alerts = Service(lambda: AlertService(alerts_cfg, clock=clock))
        actions: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]]
        actions = {
            "broker": (lambda: asyncio.to_thread(stack.mosquitto.stop),
                       lambda: asyncio.to_thread(stack.mosquitto.start)),
            "influxdb": (lambda: asyncio.to_thread(stack.influx.stop),
                         lambda: asyncio.to_thread(stack.influx.start)),
            "ingest": (ingest.stop, ingest.start),
            "alerts": (alerts.stop, alerts.start),
        }
        sent = Counter[str]()
        sent_ts: dict[str, list[tuple[int, int]]] = {}
        stop = asyncio.Event()

        async def readings(site: str, d: Device) -> None:
            seq = 100
            while not stop.is_set():
                seq += 1
                payload = encode_telemetry(Envelope(1, seq, unique_now_ms(), 2),
                                           {"temperature_c": 21.5})
                await d.send(TOPICS.telemetry(site, d.dev), payload)
                sent[site] += 1
                sent_ts.setdefault(d.dev, []).append((seq, int(orjson.loads(payload)["ts"])))
                await asyncio.sleep(1 / READINGS_PER_S)

        down, up = asyncio.Event(), asyncio.Event()

        async def buttons(d: Device) -> None:
            """Press 1 before the fault, 2 while it lasts, 3 once all is started again."""
            await d.link()
            for seq, phase in zip(range(1, PRESSES + 1), (None, down, up), strict=True):
                if phase is not None:
                    await phase.wait()
                await asyncio.sleep(random.uniform(0.1, 0.8))
                await d.press(seq)

        await ingest.start()
        await alerts.start()
        # Their persistent sessions exist from their first subscription on: what a device
        # sends before then has no subscriber at the broker (not a loss this test judges).
        await eventually(lambda: isinstance(ingest.svc, Ingest)
                         and ingest.svc.snapshot().mqtt_connected
                         and isinstance(alerts.svc, AlertService)
                         and alerts.svc.alarm_client is not None
                         and alerts.svc.alarm_client.connected
                         and alerts.svc.stream_client is not None
                         and alerts.svc.stream_client.connected, 15, "services up")
        try:
            async with asyncio.timeout(90), asyncio.TaskGroup() as tg:
                for site, btn, ms in homes:
                    tg.create_task(readings(site, ms))
                    tg.create_task(buttons(btn))
                await asyncio.sleep(2.0)
                down.set()
                for name in stop_order:
                    await actions[name][0]()
                    await asyncio.sleep(0.5)
                await asyncio.sleep(2.0)
                for name in start_order:
                    await actions[name][1]()
                    await asyncio.sleep(0.5)
                up.set()
                await asyncio.sleep(3.0)
                stop.set()  # the button tasks end once every press is acked
            svc = ingest.svc
            assert isinstance(svc, Ingest)
            total = sum(sent.values())
            await eventually(lambda: svc.snapshot().pending == 0
                             and svc.snapshot().spool_files == 0
                             and len(told(rec, "button")) == 2 * HOMES * PRESSES, 60,
                             "converged",
                             lambda: (svc.snapshot(), total, told(rec, "button")))
        finally:
            for d in [x for _, b, m in homes for x in (b, m)]:
                await d.close()
            await alerts.stop()
            await ingest.stop()
        admin = stack.influx_admin()
        for site, btn, ms in homes:
            stored = admin.count(f"SELECT count(temperature_c) FROM reading "  # noqa: S608
                                 f"WHERE device='{ms.dev}'", "care")
            if stored != sent[site]:
                have = {r["time"] for r in admin.rows(
                    f"SELECT temperature_c FROM reading WHERE device='{ms.dev}'", "care")}  # noqa: S608
                missing = [x for x in sent_ts[ms.dev] if x[1] not in have]
                pytest.fail(f"{ms.dev}: {stored} of {sent[site]} readings stored; "
                            f"missing (seq, ts): {missing}")
            with session_factory(stack.database_url)() as s:
                journal = s.scalars(select(AlarmJournal.seq)
                                    .where(AlarmJournal.device_id == btn.dev)).all()
                assert sorted(journal) == list(range(1, PRESSES + 1))
                (alert,) = s.scalars(select(Alert).where(Alert.device_id == btn.dev)).all()
                assert alert.count == PRESSES
            assert btn.connects >= 2 and ms.connects >= 2  # they did lose the broker
        assert told(rec, "button") == sorted(  # each press told once to each person
            (who, btn.dev) for _, btn, _ in homes for who in ("responder", "worker")
            for _ in range(PRESSES))
        told_once(rec)


async def test_broker_sigterm_during_a_burst(stack: Stack, tmp_path: Path) -> None:
    """F-01: the broker stopped (SIGTERM) and started again while four homes press their
    buttons and send readings: every press journalled and told once to each person,
    every reading exactly one point."""
    await run_scenario(stack, tmp_path, ["broker"], ["broker"])


@pytest.mark.parametrize("seed", [1, 2])
async def test_whole_stack_restarted_in_random_order(stack: Stack, tmp_path: Path,
                                                     seed: int) -> None:
    """F-18: broker, InfluxDB, ingest and the alerts service stopped one after the other
    and started again, each in a random order (seeded): the stack converges by itself
    within 60 s and nothing is lost or told twice."""
    rnd = random.Random(seed)
    names = ["broker", "influxdb", "ingest", "alerts"]
    stop_order, start_order = rnd.sample(names, 4), rnd.sample(names, 4)
    print(f"\nF-18 seed {seed}: stop {stop_order}, start {start_order}")
    await run_scenario(stack, tmp_path, stop_order, start_order)
