"""Ingest killed with SIGKILL loses nothing: messages are acknowledged only once durable."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from dolbom.protocol import encode_event, encode_telemetry
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.conftest import TOPICS, device_client, env, eventually, provision

pytestmark = pytest.mark.integration


def _env(stack: Stack, spool: Path, metrics_port: int, flush_s: float) -> dict[str, str]:
    mqtt, influx = stack.mqtt_settings(), stack.influx_settings()
    assert mqtt.password is not None and influx.password is not None
    return {
        **os.environ,
        "DOLBOM_DATABASE_URL": stack.database_url,
        "DOLBOM_MQTT__PORT": str(mqtt.port),
        "DOLBOM_MQTT__USERNAME": mqtt.username or "",
        "DOLBOM_MQTT__PASSWORD": mqtt.password.get_secret_value(),
        "DOLBOM_INFLUX__URL": influx.url,
        "DOLBOM_INFLUX__USERNAME": influx.username or "",
        "DOLBOM_INFLUX__PASSWORD": influx.password.get_secret_value(),
        "DOLBOM_SPOOL_DIR": str(spool),
        "DOLBOM_METRICS_PORT": str(metrics_port),
        "DOLBOM_FLUSH_INTERVAL_S": str(flush_s),
    }


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


async def test_sigkill_before_flush_then_restart_stores_everything(
        stack: Stack, tmp_path: Path) -> None:
    """Messages received but not yet durable when ingest is SIGKILLed are stored after restart."""
    pw = provision(stack, "k1", "hk1", {"btn-hk1": "button"})
    port = free_port()
    cmd = [sys.executable, "-m", "dolbom.cli", "ingest", "run"]
    # A 60 s flush interval: ingest holds every message, un-acked, until it is killed.
    slow = subprocess.Popen(cmd, env=_env(stack, tmp_path / "spool", port, 60.0),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await eventually(lambda: _metric(port, "dolbom_ingest_mqtt_up") == 1, 20,
                         "ingest to connect")
        async with device_client(stack, "btn-hk1", pw["btn-hk1"]) as c:
            for seq in range(1, 51):
                await c.publish(TOPICS.telemetry("k1", "btn-hk1"),
                                encode_telemetry(env(seq), {"battery_pct": 90}), qos=1)
            await c.publish(TOPICS.event("k1", "btn-hk1", "button"), encode_event(env(51)),
                            qos=1)
        await eventually(lambda: _metric(port, "dolbom_ingest_messages_total") == 51, 20,
                         "ingest to hold 51 messages")
        assert _metric(port, "dolbom_ingest_points_written_total") == 0
    finally:
        slow.kill()
        slow.wait(10)
    assert stack.influx_admin().count("SELECT count(seq) FROM event WHERE site='k1'", "care") == 0
    port2 = free_port()
    again = subprocess.Popen(cmd, env=_env(stack, tmp_path / "spool", port2, 0.2),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await eventually(lambda: _metric(port2, "dolbom_ingest_points_written_total") == 51, 30,
                         "redelivered messages stored")
    finally:
        again.terminate()
        again.wait(20)
    admin = stack.influx_admin()
    assert admin.count("SELECT count(seq) FROM event WHERE site='k1'", "care") == 1
    assert admin.count("SELECT count(battery_pct) FROM reading WHERE site='k1'", "care") == 50
