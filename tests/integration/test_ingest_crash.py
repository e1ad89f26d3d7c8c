"""Ingest killed with SIGKILL loses nothing: messages are acknowledged only once durable.

Run as ``python -m tests.integration.test_ingest_crash CHECKPOINT``, this module is
ingest itself with a kill point: it SIGKILLs itself the first time a flush reaches
CHECKPOINT (see ``_run_with_kill_point``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dolbom.protocol import Envelope, Sample, encode_batch, encode_event, encode_telemetry
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.conftest import TOPICS, device_client, env, eventually, provision

pytestmark = pytest.mark.integration


REPO = Path(__file__).resolve().parents[2]


def _env(stack: Stack, spool: Path, metrics_port: int, flush_s: float,
         batch_size: int = 5000) -> dict[str, str]:
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
        "DOLBOM_BATCH_SIZE": str(batch_size),
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


# Where ingest dies, in the order a flush reaches them.
CHECKPOINTS = ["received", "stamped", "written", "acked"]


def _run_with_kill_point(checkpoint: str) -> None:
    """Run ``dolbom ingest run`` and SIGKILL it at ``checkpoint`` of the first flush that
    holds messages: ``received`` (before anything is durable), ``stamped`` (first receive
    times committed, points not yet written), ``written`` (points accepted by InfluxDB,
    not yet acknowledged), ``acked`` (PUBACKs handed to the socket)."""
    from dolbom.cli import main
    from dolbom.influx.writer import InfluxWriter
    from dolbom.ingest.flush import Flusher
    from dolbom.ingest.receive_times import ReceiveTimes
    from dolbom.mqtt import Client

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if checkpoint == "received":
        flush = Flusher.flush

        async def flush_then_die(self: Flusher) -> None:
            if self.pending.batch.acks:
                die()
            await flush(self)

        Flusher.flush = flush_then_die  # type: ignore[method-assign]
    elif checkpoint == "stamped":
        resolve = ReceiveTimes.resolve

        def resolve_then_die(self: ReceiveTimes, *a: Any) -> Any:
            out = resolve(self, *a)
            die()
            return out

        ReceiveTimes.resolve = resolve_then_die  # type: ignore[method-assign, assignment]
    elif checkpoint == "written":
        write = InfluxWriter.write

        async def write_then_die(self: InfluxWriter, lines: Any, rp: str | None = None) -> Any:
            out = await write(self, lines, rp)
            if rp is None:  # a batch of points, not a rollup
                die()
            return out

        InfluxWriter.write = write_then_die  # type: ignore[method-assign]
    elif checkpoint == "acked":
        ack_many = Client.ack_many

        def ack_then_die(self: Client, msgs: Any) -> None:
            ack_many(self, msgs)
            die()

        Client.ack_many = ack_then_die  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown checkpoint {checkpoint!r}")
    raise SystemExit(main(["ingest", "run"]))


def _late_messages(now: int) -> list[tuple[str, bytes]]:
    """41 messages whose points are timed every way DESIGN.md §3 allows; each series' points
    have distinct times whatever the receive times (an offset of 10 s per message)."""
    dev = "m-hk2"
    tel, out = TOPICS.telemetry("k2", dev), []
    seq = 0
    for i in range(20):  # unsynced: first receive time, minus the sample's offset
        seq += 1
        out.append((tel, encode_batch(Envelope(1, seq, 1_000_000, 0),
                                      [Sample(1_000_000 - i * 10_000, {"battery_pct": 90})])))
    for i in range(10):  # NTP, sent ten minutes late (an outbox): device time
        seq += 1
        out.append((tel, encode_telemetry(Envelope(1, seq, now - 600_000 + i, 2),
                                          {"temperature_c": 21.0})))
    for i in range(5):  # RTC only, three samples a minute apart: receive time + offsets
        seq += 1
        base = 2_000_000
        out.append((tel, encode_batch(Envelope(1, seq, base, 1), [
            Sample(base - i * 10_000 - k * 60_000, {"humidity_pct": 40}) for k in range(3)])))
    for i in range(5):  # NTP but an hour ahead: receive time
        seq += 1
        ahead = now + 3_600_000
        out.append((tel, encode_batch(Envelope(1, seq, ahead, 2),
                                      [Sample(ahead - i * 10_000, {"illuminance_lux": 300})])))
    seq += 1
    out.append((TOPICS.event("k2", dev, "motion"), encode_event(Envelope(1, seq, 5_000, 0))))
    return out


EXPECTED = {"battery_pct": 20, "humidity_pct": 15, "illuminance_lux": 5, "power_w": 1,
            "temperature_c": 10}


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
async def test_sigkill_at_checkpoint_then_redelivery_adds_no_point(
        stack: Stack, tmp_path: Path, checkpoint: str) -> None:
    """Ingest SIGKILLed at any point of a flush and restarted: the broker's redelivery
    overwrites the points already written, so every series has exactly one point per sample."""
    pw = provision(stack, "k2", "hk2", {"m-hk2": "multisensor"})
    messages = _late_messages(int(time.time() * 1000))
    spool = tmp_path / "spool"
    port = free_port()
    # One flush of exactly these messages: batch_size reached, the interval far away.
    killed = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_ingest_crash", checkpoint], cwd=REPO,
        env=_env(stack, spool, port, 60.0, batch_size=len(messages)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await eventually(lambda: _metric(port, "dolbom_ingest_mqtt_up") == 1, 20,
                         "ingest to connect")
        async with device_client(stack, "m-hk2", pw["m-hk2"]) as c:
            for topic, payload in messages:
                await c.publish(topic, payload, qos=1)
        await asyncio.wait_for(asyncio.to_thread(killed.wait), 30)
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait(10)
    assert killed.returncode == -signal.SIGKILL
    port2 = free_port()
    again = subprocess.Popen([sys.executable, "-m", "dolbom.cli", "ingest", "run"], cwd=REPO,
                             env=_env(stack, spool, port2, 0.2),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    admin = stack.influx_admin()
    try:
        await eventually(lambda: _metric(port2, "dolbom_ingest_mqtt_up") == 1, 20,
                         "ingest to reconnect")
        # A fence after the redelivered ones: once it is stored, so is everything before it.
        async with device_client(stack, "m-hk2", pw["m-hk2"]) as c:
            await c.publish(TOPICS.telemetry("k2", "m-hk2"), encode_telemetry(
                Envelope(2, 1, int(time.time() * 1000), 2), {"power_w": 1.0}), qos=1)
        await eventually(
            lambda: admin.count("SELECT count(power_w) FROM reading WHERE site='k2'", "care")
            == 1, 30, "the fence to be stored")
    finally:
        again.terminate()
        again.wait(20)
    (row,) = admin.rows("SELECT count(*) FROM reading WHERE device='m-hk2'", "care")
    assert {k.removeprefix("count_"): v for k, v in row.items() if k != "time"} == EXPECTED
    assert admin.count("SELECT count(seq) FROM event WHERE device='m-hk2'", "care") == 1


if __name__ == "__main__":
    _run_with_kill_point(sys.argv[1])
