"""A device in no home (a care facility's corridor smoke detector) that goes quiet, with
the real broker, registry and alerts service (injected clock): one low ``device_lost`` for
its site with no home, told to the site's people; heard again, it is resolved. Before
this watch a corridor detector could die without anyone knowing."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from dolbom.protocol import encode_status
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert
from dolbom.stack.stack import Stack
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import TOPICS, device_client, eventually

pytestmark = pytest.mark.integration


def _lost(stack: Stack, dev: str) -> list[Alert]:
    with session_factory(stack.database_url)() as s:
        return list(s.scalars(select(Alert).where(Alert.device_id == dev,
                                                  Alert.rule == "device_lost")))


async def test_a_corridor_detector_gone_quiet_is_told_and_cleared_when_heard(
        stack: Stack) -> None:
    async with webhook_receiver() as rec:
        care_home(stack, "hl1", "hhl1", {"pir-hhl1": "multisensor"}, rec.url)
        with session_factory(stack.database_url).begin() as s:
            _, pw = registry.add_device(s, "smk-hl1", "hl1", None, "smoke", power="battery")
        stack.sync_broker()
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock), \
                device_client(stack, "smk-hl1", pw) as dev:
            await dev.publish(TOPICS.status("hl1", "smk-hl1"),
                              encode_status("ready", 1, "1.0.0", "smoke", 60), qos=1)
            await asyncio.sleep(1.0)  # heard (the watch's clock is the service's)
            clock.advance(170)  # under 3 × 60 s since: not lost yet
            await asyncio.sleep(1.0)
            assert _lost(stack, "smk-hl1") == []
            clock.advance(20)
            await eventually(lambda: len(_lost(stack, "smk-hl1")) == 1, 15,
                             "the silent detector's alert")
            (a,) = _lost(stack, "smk-hl1")
            assert (a.home_id, a.site_id, a.priority, a.status) == (None, "hl1", "low", "open")
            assert a.detail["no_home"] is True
            await dev.publish(TOPICS.status("hl1", "smk-hl1"),
                              encode_status("ready", 1, "1.0.0", "smoke", 60), qos=1)
            await eventually(lambda: _lost(stack, "smk-hl1")[0].status == "resolved", 15,
                             "resolved once heard again")
            assert len(_lost(stack, "smk-hl1")) == 1
