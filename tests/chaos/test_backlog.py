"""Ingest offline while a backlog and a fire alarm queue up at the broker (TESTPLAN F-05):
the alarm has a session of its own, so it reaches people at once; the backlog is all
stored once ingest is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dolbom.protocol import encode_telemetry
from dolbom.stack.stack import Stack
from tests.chaos import helpers as chaos

pytestmark = chaos.MARKS
BACKLOG = 5000


async def test_fire_alarm_is_told_while_ingest_is_offline_and_the_backlog_is_kept(
        stack: Stack, tmp_path: Path) -> None:
    """F-05: with ingest stopped (its persistent session kept by the broker), 5,000
    readings queue up and a smoke detector fires in the middle of them: the smoke alarm is
    journalled, acked and told to both people while ingest is still offline; once ingest
    is back every reading and the smoke event are exactly one point each."""
    async with chaos.webhook_receiver() as rec:
        pw = chaos.care_home(stack, "f05", "hf05",
                             {"ms-f05": "multisensor", "smk-f05": "smoke"}, rec.url)
        settings = chaos.ingest_settings(stack, tmp_path, client_id="ingest-f05")
        async with chaos.running_ingest(settings):
            pass  # its session now exists at the broker; then ingest is offline
        async with chaos.running_alerts(chaos.alerts_settings(stack), chaos.Clock()), \
                chaos.device_client(stack, "ms-f05", pw["ms-f05"]) as ms, \
                chaos.device_client(stack, "smk-f05", pw["smk-f05"]) as smk:
            await smk.subscribe([(chaos.TOPICS.ack("f05", "smk-f05"), 1)])
            for start in range(1, BACKLOG + 1, 500):
                acks = [ms.publish_nowait(
                    chaos.TOPICS.telemetry("f05", "ms-f05"),
                    encode_telemetry(chaos.env(seq), {"temperature_c": 20 + seq % 7}), qos=1)
                    for seq in range(start, start + 500)]
                await asyncio.gather(*[a for a in acks if a is not None])
                if start == 2501:
                    await chaos.press_until_acked(smk, "f05", "smk-f05", 1, kind="smoke")
            await chaos.eventually(lambda: len(chaos.told(rec, "smoke")) == 2, 10,
                                   "smoke told while ingest is offline")
        assert chaos.told(rec, "smoke") == [("responder", "smk-f05"), ("worker", "smk-f05")]
        chaos.told_once(rec)
        async with chaos.running_ingest(settings) as ing:
            await chaos.eventually(lambda: ing.snapshot().messages >= BACKLOG + 1
                                   and ing.snapshot().pending == 0, 60, "backlog stored",
                                   ing.snapshot)
    admin = stack.influx_admin()
    assert admin.count("SELECT count(temperature_c) FROM reading WHERE site='f05'",
                       "care") == BACKLOG
    assert admin.count("SELECT count(seq) FROM event WHERE device='smk-f05'", "care") == 1
