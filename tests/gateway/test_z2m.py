"""Zigbee2MQTT sensors as children, with real Zigbee2MQTT payloads published on the home's
real Mosquitto, through the gateway process to the central broker and the alerts
service; Home Assistant discovery retained on the local broker."""

from __future__ import annotations

import secrets
from pathlib import Path

import orjson
import pytest

from dolbom.gateway.provision import LOCAL_HA_USER
from dolbom.mqtt import Client, Received
from dolbom.protocol import Event, Status, Telemetry, decode
from dolbom.stack.stack import Stack
from tests.gateway.conftest import TOPICS, Home, watching, write_home
from tests.gateway.test_forward import _up
from tests.gateway.test_units import (
    AQARA_BUTTON,
    AQARA_DOOR,
    AQARA_LEAK,
    AQARA_MOTION,
    AQARA_TH,
    HEIMAN_SMOKE,
)
from tests.integration.alerting import Clock, alerts_settings, running_alerts
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


async def test_zigbee2mqtt_payloads_become_children_messages_and_alarms(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path) -> None:
    """Zigbee2MQTT state and availability messages of six common sensors arrive on the
    central broker as valid contract-v1 messages of their child ids (motion, door,
    readings, status); the smoke alarm and the button are journalled once and their
    acks empty the gateway's queue; the leak is not forwarded under another name; a
    Zigbee device nobody registered is ignored. Home Assistant finds each child."""
    tag = secrets.token_hex(2)
    z2m = {"hall_motion": f"zb-motion-{tag}", "front_door": f"zb-door-{tag}",
           "living_th": f"zb-th-{tag}", "sos": f"zb-button-{tag}",
           "kitchen_smoke": f"zb-smoke-{tag}", "bath_leak": f"zb-leak-{tag}"}
    home = write_home(central, tmp_path, runtime_dir, {}, "http://127.0.0.1:9/", z2m=z2m,
                      extra_env={"DOLBOM_GW_DISCOVERY__ENABLED": "true"})
    homes.append(home)
    async with running_alerts(alerts_settings(central), Clock()), \
            watching(central, f"care/v1/{home.site}/#") as w:
        await _up(home)
        async with home.z2m_client() as zb:
            for name in z2m:
                await zb.publish(f"zigbee2mqtt/{name}/availability", b'{"state":"online"}',
                                 qos=1, retain=True)
            for name, state in (("hall_motion", AQARA_MOTION), ("front_door", AQARA_DOOR),
                                ("living_th", AQARA_TH), ("sos", AQARA_BUTTON),
                                ("kitchen_smoke", HEIMAN_SMOKE), ("bath_leak", AQARA_LEAK),
                                ("not_registered", AQARA_MOTION)):
                await zb.publish(f"zigbee2mqtt/{name}", orjson.dumps(state), qos=0)
            await zb.publish("zigbee2mqtt/bridge/state", b'{"state":"online"}', qos=0)

        def decoded(dev: str) -> list[object]:
            out = []
            for m in w.received:
                t = TOPICS.parse(m.topic)
                if t is not None and t.device == dev and not t.kind.value.startswith(("ack",
                                                                                       "cmd")):
                    out.append(decode(t, m.payload))
            return out

        await eventually(lambda: len(home.journal(z2m["kitchen_smoke"])) == 1
                         and len(home.journal(z2m["sos"])) == 1, 20, "both alarms journalled",
                         home.gateway.tail)
        await eventually(lambda: home.queued() == 0, 20, "the queue emptied by the acks",
                         home.queued)
        motion = decoded(z2m["hall_motion"])
        assert any(isinstance(m, Event) and m.type == "motion" for m in motion)
        assert any(isinstance(m, Status) and m.state == "ready" for m in motion)
        door = [m for m in decoded(z2m["front_door"]) if isinstance(m, Event)]
        assert [(m.type, m.val) for m in door] == [("door", "open")]
        th = [m for m in decoded(z2m["living_th"]) if isinstance(m, Telemetry)]
        assert th[0].samples[0].readings == {"battery_pct": 100.0, "humidity_pct": 58.49,
                                             "temperature_c": 21.93}
        smoke = [m for m in decoded(z2m["kitchen_smoke"]) if isinstance(m, Event)]
        assert smoke and {(m.type, m.val) for m in smoke} == {("smoke", "alarm")}
        leak = decoded(z2m["bath_leak"])
        assert not any(isinstance(m, Event) for m in leak)  # no contract type for a leak
        assert not any("not_registered" in m.topic for m in w.received)

        ha: list[Received] = []
        c = Client("127.0.0.1", home.local.port, "ha-" + tag, username=LOCAL_HA_USER,
                   password=home.local_passwords[LOCAL_HA_USER], on_message=ha.append)
        async with c:
            await c.subscribe([("homeassistant/#", 0)])
            await eventually(lambda: len(ha) == len(z2m), 5, "discovery of every child")
        assert all(m.retain for m in ha)
        assert {orjson.loads(m.payload)["availability_topic"] for m in ha} == {
            TOPICS.status(home.site, dev) for dev in z2m.values()}
        # the kinds from the registry (provision): a multisensor gets its readings
        assert all("temperature" in m.payload.decode() for m in ha)
    assert home.gateway.stop() == 0
