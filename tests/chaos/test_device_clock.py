"""Devices with a wrong clock (TESTPLAN F-16), end to end: the alarm is still raised and
told, timed by the server's receive time, and the point lands under a time InfluxDB
keeps (DESIGN.md §3: a device time is used only when synced and plausible)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert
from dolbom.stack.stack import Stack
from tests.chaos import helpers as chaos

pytestmark = chaos.MARKS
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


@pytest.mark.parametrize("skew", ["1970", "+1h", "-40d"])
async def test_button_with_a_wrong_clock_is_told_and_timed_by_the_server(
        stack: Stack, tmp_path: Path, skew: str) -> None:
    """F-16: a press whose device time is 1970, an hour ahead or 40 days behind (all with
    tq 2, as a node with a bad NTP answer would send) is journalled, acked and told to
    both people; the alert is raised at the server's time; the event is one point in
    InfluxDB, under its receive time when the device time is implausible (1970, ahead),
    under the device time when it is within the raw retention (40 days back)."""
    site = "ck" + {"1970": "a", "+1h": "b", "-40d": "c"}[skew]
    dev = f"btn-{site}"
    async with chaos.webhook_receiver() as rec:
        pw = chaos.care_home(stack, site, "h" + site, {dev: "button"}, rec.url)
        now_ms = int(time.time() * 1000)
        ts = {"1970": 1_000, "+1h": now_ms + HOUR_MS, "-40d": now_ms - 40 * DAY_MS}[skew]
        async with chaos.running_ingest(chaos.ingest_settings(stack, tmp_path)) as ing, \
                chaos.running_alerts(chaos.alerts_settings(stack), chaos.Clock()), \
                chaos.device_client(stack, dev, pw[dev]) as c:
            await c.subscribe([(chaos.TOPICS.ack(site, dev), 1)])
            before = time.time()
            await chaos.press_until_acked(c, site, dev, 1, ts=ts)
            await chaos.eventually(lambda: len(chaos.told(rec, "button")) == 2, 10, "told")
            after = time.time()
            await chaos.eventually(lambda: ing.snapshot().pending == 0
                                   and ing.snapshot().points_written >= 1, 10, "stored")
        assert chaos.told(rec, "button") == [("responder", dev), ("worker", dev)]
        chaos.told_once(rec)
        with session_factory(stack.database_url)() as s:
            (alert,) = s.scalars(select(Alert).where(Alert.device_id == dev)).all()
        assert alert.count == 1
        for b in rec.received:  # raised at the server's time, whatever the device said
            assert before - 1 <= datetime.fromisoformat(b["raised_at"]).timestamp() <= after + 1
        rows = stack.influx_admin().rows(
            f"SELECT seq FROM event WHERE device='{dev}'", "care")  # noqa: S608
        assert len(rows) == 1
        if skew == "-40d":  # synced and within the 90-day retention: the device's own time
            assert rows[0]["time"] == ts
        else:  # 1970 or ahead of us: the receive time
            assert before * 1000 - 1000 <= rows[0]["time"] <= after * 1000 + 1000
