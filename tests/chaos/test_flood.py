"""One device flooding (TESTPLAN I-05): 1,000 valid messages a second from one device must
not keep another home's alarm from its people, nor lose anyone's readings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from dolbom.protocol import encode_telemetry
from dolbom.stack.stack import Stack
from tests.chaos import helpers as chaos

pytestmark = chaos.MARKS
RATE, SECONDS = 1000, 6


def count(stack: Stack, dev: str) -> int:
    return stack.influx_admin().count(
        f"SELECT count(temperature_c) FROM reading WHERE device='{dev}'", "care")  # noqa: S608


async def test_flooding_device_does_not_delay_another_homes_alarm(
        stack: Stack, tmp_path: Path) -> None:
    """I-05: while one multisensor sends 1,000 readings a second, a button in another home
    is pressed: it is acked and told once to both people during the flood, and afterwards
    every reading of both homes is exactly one point."""
    async with chaos.webhook_receiver() as rec:
        pw = chaos.care_home(stack, "fl1", "hfl1", {"ms-fl1": "multisensor"}, rec.url)
        pw |= chaos.care_home(stack, "fl2", "hfl2", {"btn-fl2": "button", "ms-fl2": "multisensor"},
                              rec.url)
        flood_sent = quiet_sent = 0
        stop = asyncio.Event()
        async with chaos.running_ingest(chaos.ingest_settings(stack, tmp_path)) as ing, \
                chaos.running_alerts(chaos.alerts_settings(stack), chaos.Clock()), \
                chaos.device_client(stack, "ms-fl1", pw["ms-fl1"]) as flood, \
                chaos.device_client(stack, "ms-fl2", pw["ms-fl2"]) as quiet, \
                chaos.device_client(stack, "btn-fl2", pw["btn-fl2"]) as btn:
            await btn.subscribe([(chaos.TOPICS.ack("fl2", "btn-fl2"), 1)])

            async def flooding() -> None:
                nonlocal flood_sent
                start = time.monotonic()
                while not stop.is_set() and time.monotonic() - start < SECONDS:
                    acks = [flood.publish_nowait(chaos.TOPICS.telemetry("fl1", "ms-fl1"),
                                                 encode_telemetry(chaos.env(flood_sent + k + 1),
                                                                  {"temperature_c": 19}), qos=1)
                            for k in range(RATE // 10)]
                    flood_sent += len(acks)
                    await asyncio.gather(*[a for a in acks if a is not None])
                    await asyncio.sleep(max(0.0, start + flood_sent / RATE - time.monotonic()))

            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(flooding())
                for seq in range(1, 11):
                    await quiet.publish(chaos.TOPICS.telemetry("fl2", "ms-fl2"),
                                        encode_telemetry(chaos.env(seq), {"temperature_c": 22}),
                                        qos=1)
                    quiet_sent += 1
                await asyncio.sleep(1.0)
                await chaos.press_until_acked(btn, "fl2", "btn-fl2", 1, wait_s=2)
                await chaos.eventually(lambda: len(chaos.told(rec, "button")) == 2, 10, "told")
                assert not task.done()  # told while the flood was still going
            assert flood_sent >= RATE * (SECONDS - 1)
            await chaos.eventually(lambda: ing.snapshot().pending == 0
                                   and ing.snapshot().points_written >= flood_sent + quiet_sent,
                                   60, "all stored", ing.snapshot)
        assert chaos.told(rec, "button") == [("responder", "btn-fl2"), ("worker", "btn-fl2")]
        chaos.told_once(rec)
        assert (count(stack, "ms-fl1"), count(stack, "ms-fl2")) == (flood_sent, quiet_sent)
