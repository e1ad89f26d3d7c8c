"""The broker frozen (SIGSTOP, then SIGCONT; TESTPLAN F-03): the rules process notices,
raises one "broker unreachable" incident for the operators, and does not turn the silence
of every device (which cannot reach the broker either) into a storm of "device offline"
alerts. The rules' clock is moved, not waited for."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dolbom.protocol import encode_telemetry
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.stack import Stack
from tests.chaos.helpers import told
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import TOPICS, device_client, env, eventually

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
KEEPALIVE = 5
HOMES = 3


async def test_frozen_broker_is_one_incident_not_a_device_offline_storm(stack: Stack) -> None:
    """F-03: within 1.5 x keepalive + 10 s of the freeze the broker is known unreachable;
    with the clock past every device's 3 heartbeats, the operator is told once that the
    broker is unreachable (once per site) and no care worker is told a device is offline;
    after SIGCONT the incident clears."""
    async with webhook_receiver() as rec:
        devs = []
        for i in range(HOMES):
            site = f"fz{i}"
            pw = care_home(stack, site, "h" + site, {f"ms-{site}": "multisensor"}, rec.url)
            devs.append((site, f"ms-{site}", pw[f"ms-{site}"]))
        with session_factory(stack.database_url).begin() as s:
            registry.add_user(s, "op-fz", "admin")
            registry.add_contact(s, "op-fz", "webhook", rec.url + "?who=operator")
        settings = alerts_settings(stack, dependency_down_after_s=60.0)
        settings = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
            update={"keepalive": KEEPALIVE})})
        clock = Clock()
        async with running_alerts(settings, clock) as svc:
            for seq, (site, dev, password) in enumerate(devs, 1):
                async with device_client(stack, dev, password) as c:
                    await c.publish(TOPICS.telemetry(site, dev), encode_telemetry(
                        env(seq), {"temperature_c": 21}), qos=1)
            broker = stack.mosquitto.proc
            assert broker is not None
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                frozen = time.monotonic()
                await eventually(lambda: "broker" in svc.deps.down(), 1.5 * KEEPALIVE + 10,
                                 "the broker known unreachable")
                print(f"\nF-03: broker unreachable noticed after "
                      f"{time.monotonic() - frozen:.1f} s (keepalive {KEEPALIVE} s)")
                clock.advance(4 * 60)  # past every device's 3 heartbeats (60 s each)
                await eventually(lambda: ("operator", None) in told(rec, "service_unreachable"),
                                 20, "the operator told the broker is unreachable")
                clock.advance(60)
                await eventually(lambda: svc.run_timers() == 0, 5, "timers run")
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            await eventually(lambda: "broker" not in svc.deps.down(), 30, "broker back")
        assert told(rec, "device_lost") == []  # no storm: the devices were not the problem
        # One "broker unreachable" alert per site (each site's operators are told of their
        # own); the admin who sees every site gets each once, none twice.
        texts = [b["text"] for w, b in zip(rec.who, rec.received, strict=True)
                 if b["rule"] == "service_unreachable" and w == "operator"]
        assert len(texts) == HOMES and len(set(texts)) == HOMES
