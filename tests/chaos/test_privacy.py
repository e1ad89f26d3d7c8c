"""Personal data stays in the registry (TESTPLAN S-11, DESIGN.md §4 and §6): a canary
test. Names, phone numbers and addresses are seeded, the whole pipeline runs (ingest,
the alerts service, a button press, readings, an alert exported to InfluxDB), and then
everything outside the registry is searched for them: every series, tag and field in
InfluxDB, every MQTT topic and payload the broker carried, the broker's log and every
log line of the services (debug level included)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import orjson
import pytest

from dolbom.mqtt import Client, Received
from dolbom.protocol import encode_telemetry
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.stack import Stack
from tests.chaos import helpers as chaos

pytestmark = [pytest.mark.chaos, pytest.mark.security, pytest.mark.integration]
CANARIES = ["카나리아김순자", "Canary Soonja", "010-5550-0199", "+82-10-5550-0199",
            "카나리아로 77", "Canary-ro 77", "CanaryWorker"]


def influx_export(stack: Stack) -> str:
    """Every measurement, tag value and point of both retention policies, as text."""
    admin = stack.influx_admin()
    parts = [admin.query("SHOW MEASUREMENTS", "care"),
             admin.query("SHOW TAG VALUES WITH KEY =~ /.*/", "care"),
             admin.query("SHOW FIELD KEYS", "care"),
             admin.query('SELECT * FROM "care"."raw"./.*/', "care"),
             admin.query('SELECT * FROM "care"."rollup"./.*/', "care")]
    return orjson.dumps(parts).decode()


async def test_no_personal_data_leaves_the_registry(
        stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """S-11: after a working day in miniature, none of the seeded names, phone numbers or
    addresses is in InfluxDB, on the broker's topics or payloads, or in any log."""
    caplog.set_level(logging.DEBUG)
    carried: list[bytes] = []

    def on(msg: Received) -> None:
        carried.append(msg.topic.encode() + b" " + msg.payload)

    async with chaos.webhook_receiver() as rec:
        pw = chaos.care_home(stack, "s11", "hs11", {"ms-s11": "multisensor", "btn-s11": "button"},
                             rec.url)
        with session_factory(stack.database_url).begin() as s:
            registry.add_resident(s, "hs11", CANARIES[0], phone=CANARIES[2],
                                  address=CANARIES[4])
            registry.add_resident(s, "hs11", CANARIES[1], phone=CANARIES[3],
                                  address=CANARIES[5])
            registry.add_user(s, "w2-s11", "care_worker", display_name=CANARIES[6],
                              site_id="s11")
        async with Client("127.0.0.1", stack.mosquitto.port, "spy-" + secrets.token_hex(3),
                          username="svc-operator", password=stack.secrets.mqtt["svc-operator"],
                          on_message=on) as spy:
            await spy.subscribe([("care/#", 1)])
            async with chaos.running_ingest(chaos.ingest_settings(stack, tmp_path)) as ing, \
                    chaos.running_alerts(chaos.alerts_settings(stack), chaos.Clock()), \
                    chaos.device_client(stack, "ms-s11", pw["ms-s11"]) as ms, \
                    chaos.device_client(stack, "btn-s11", pw["btn-s11"]) as btn:
                await btn.subscribe([(chaos.TOPICS.ack("s11", "btn-s11"), 1)])
                for seq in range(1, 6):
                    await ms.publish(chaos.TOPICS.telemetry("s11", "ms-s11"), encode_telemetry(
                        chaos.env(seq), {"temperature_c": 22.0, "humidity_pct": 40}), qos=1)
                await ms.publish(chaos.TOPICS.telemetry("s11", "ms-s11"), b"not json", qos=1)
                await chaos.press_until_acked(btn, "s11", "btn-s11", 1)
                await chaos.eventually(lambda: len(chaos.told(rec, "button")) == 2, 10, "told")
                await chaos.eventually(lambda: ing.snapshot().points_written >= 6, 10, "stored")
                await chaos.eventually(lambda: '"alert"' in influx_export(stack), 10,
                                       "the alert exported to InfluxDB")
    exported = influx_export(stack)
    assert '"reading"' in exported and '"event"' in exported  # there is something to search
    assert carried and any(b"/ack" in m for m in carried)
    stack.mosquitto.stop()  # its stdout log is block-buffered: complete once it exits
    broker_log = stack.mosquitto.log.read_text(errors="replace")
    assert "ms-s11" in broker_log  # the broker did log this run (connections)
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "dead letter" in logs
    wire = b"\n".join(carried).decode(errors="replace")
    for canary in CANARIES:
        for where, text in (("InfluxDB", exported), ("MQTT", wire),
                            ("broker log", broker_log), ("service logs", logs)):
            assert canary not in text, f"{canary!r} found in the {where}"
