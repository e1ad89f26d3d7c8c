"""A device in no home (a care facility's corridor smoke detector) that goes quiet, with
the real broker, registry and alerts service (injected clock): one low ``device_lost`` for
its site with no home, told to the site's people; heard again, it is resolved. Before
this watch a corridor detector could die without anyone knowing."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from dolbom.mqtt import Client
from dolbom.protocol import encode_status
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.gateways import attach
from dolbom.registry.models import Alert, Suppression
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


async def test_a_facility_gateway_cut_is_its_alert_not_one_per_flat(stack: Stack) -> None:
    """A gateway of the facility (no home) forwards a flat's door sensor and plug; the
    flat's own motion sensor speaks directly. The gateway, the door and the plug go quiet:
    one ``gateway_lost`` for the site, and no ``device_lost`` (held back, recorded as
    suppressed). The gateway heard again, the plug heard again, and the door still silent
    one lost interval later: it died during the cut, and its ``device_lost`` comes after
    all, the plug's never."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "fc1", "hfc1", {"pir-fc1": "multisensor", "door-fc1": "door",
                                              "plug-fc1": "plug"}, rec.url)
        with session_factory(stack.database_url).begin() as s:
            _, gw_pw = registry.add_device(s, "gw-fc1", "fc1", None, "gateway")
            attach(s, "gw-fc1", "door-fc1")
            attach(s, "gw-fc1", "plug-fc1")
        stack.sync_broker()
        clock = Clock()

        async def hello(c: Client, dev: str, kind: str) -> None:
            await c.publish(TOPICS.status("fc1", dev), encode_status("ready", 1, "1", kind, 60),
                            qos=1)

        async with running_alerts(alerts_settings(stack), clock) as svc, \
                device_client(stack, "pir-fc1", pw["pir-fc1"]) as pir, \
                device_client(stack, "door-fc1", pw["door-fc1"]) as door, \
                device_client(stack, "plug-fc1", pw["plug-fc1"]) as plug, \
                device_client(stack, "gw-fc1", gw_pw) as gw:
            await gw.publish(TOPICS.gateway_status("fc1", "gw-fc1"),
                             encode_status("ready", 1, "1", "gateway", 60), qos=1)
            await hello(door, "door-fc1", "door")
            await hello(plug, "plug-fc1", "plug")
            for _ in range(4):  # the flat's motion sensor goes on; the gateway and door not
                await hello(pir, "pir-fc1", "multisensor")
                await asyncio.sleep(0.5)
                clock.advance(60)
            await eventually(lambda: [a.rule for a in _alerts(stack, "fc1")]
                             == ["gateway_lost"], 15, "the gateway's alert alone",
                             lambda: ([(a.rule, a.device_id) for a in _alerts(stack, "fc1")],
                                      svc.homeless.watch.devices, svc.homeless.watch.children))
            await asyncio.sleep(1.0)
            assert [a.rule for a in _alerts(stack, "fc1")] == ["gateway_lost"]
            with session_factory(stack.database_url)() as s:
                reasons = list(s.scalars(select(Suppression.reason).where(
                    Suppression.home_id == "hfc1", Suppression.rule == "device_lost")))
            assert len(reasons) == 2 and all("gw-fc1" in r for r in reasons), reasons

            for _ in range(4):  # the gateway back, the plug with it; the door never
                await gw.publish(TOPICS.gateway_status("fc1", "gw-fc1"),
                                 encode_status("ready", 1, "1", "gateway", 60), qos=1)
                await hello(plug, "plug-fc1", "plug")
                await hello(pir, "pir-fc1", "multisensor")
                await asyncio.sleep(0.5)
                clock.advance(60)
            await eventually(lambda: "device_lost" in [a.rule for a in _alerts(stack, "fc1")],
                             15, "the door lost after its gateway came back",
                             lambda: [(a.rule, a.device_id) for a in _alerts(stack, "fc1")])
            (dl,) = [a for a in _alerts(stack, "fc1") if a.rule == "device_lost"]
            assert (dl.device_id, dl.home_id) == ("door-fc1", "hfc1")
            await asyncio.sleep(1.0)
            (again,) = [a for a in _alerts(stack, "fc1") if a.rule == "device_lost"]
            assert again.count == 1  # the plug, heard again, did not add its own
            assert dl.detail["after_gateway"] == "gw-fc1"


def _alerts(stack: Stack, site: str) -> list[Alert]:
    with session_factory(stack.database_url)() as s:
        return list(s.scalars(select(Alert).where(Alert.site_id == site).order_by(Alert.id)))
