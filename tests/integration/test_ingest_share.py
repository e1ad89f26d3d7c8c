"""Ingest workers sharing a cell's stream on ``$share/`` (docs/scale.md): each message
reaches one worker; a worker killed with SIGKILL under load loses nothing, because its
persistent session keeps its share in the broker until it returns; the counts in
InfluxDB are exact, no message stored twice.

Real Mosquitto, InfluxDB and two ``dolbom ingest run`` processes; only the processes
started here are signalled, by PID; every wait is bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dolbom.protocol import encode_telemetry
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.conftest import TOPICS, device_client, env, eventually, provision
from tests.integration.test_ingest_crash import _env, _metric

pytestmark = pytest.mark.integration
PER_DEVICE = 300
KILL_AT = 100  # the second worker is killed after this many messages of each device


def _worker(stack: Stack, tmp_path: Path, i: int, port: int) -> subprocess.Popen[bytes]:
    e = _env(stack, tmp_path / f"spool-{i}", port, 0.2)
    e.update({"DOLBOM_CLIENT_ID": f"dolbom-ingest-{i}", "DOLBOM_SHARE_GROUP": "ingest"})
    return subprocess.Popen([sys.executable, "-m", "dolbom.cli", "ingest", "run"], env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_two_workers_share_the_stream_and_a_killed_one_loses_nothing(
        stack: Stack, tmp_path: Path) -> None:
    pw = {**provision(stack, "sh1", "hsh1", {"m-sh1": "multisensor"}),
          **provision(stack, "sh2", "hsh2", {"m-sh2": "multisensor"})}
    ports = [free_port(), free_port()]
    workers = [_worker(stack, tmp_path, i, ports[i]) for i in (0, 1)]
    try:
        await eventually(lambda: all(_metric(p, "dolbom_ingest_mqtt_up") == 1 for p in ports),
                         20, "both workers connected")
        async with device_client(stack, "m-sh1", pw["m-sh1"]) as c1, \
                device_client(stack, "m-sh2", pw["m-sh2"]) as c2:
            for seq in range(1, PER_DEVICE + 1):
                for site, dev, c in (("sh1", "m-sh1", c1), ("sh2", "m-sh2", c2)):
                    await c.publish(TOPICS.telemetry(site, dev),
                                    encode_telemetry(env(seq), {"battery_pct": seq % 100}),
                                    qos=1)
                if seq == KILL_AT:
                    # both shared the stream so far
                    assert all(_metric(p, "dolbom_ingest_messages_total") > 0 for p in ports)
                    workers[1].kill()
                    workers[1].wait(10)
        survivor = _metric(ports[0], "dolbom_ingest_messages_total")
        assert survivor < 2 * PER_DEVICE, "the killed worker's share went to the other one"
        ports[1] = free_port()
        workers[1] = _worker(stack, tmp_path, 1, ports[1])  # same client id: its session
        admin = stack.influx_admin()

        queries = {site: f"SELECT count(battery_pct) FROM reading WHERE site='{site}'"  # noqa: S608 - constants
                   for site in ("sh1", "sh2")}

        def stored(site: str) -> int:
            return admin.count(queries[site], "care")

        await eventually(lambda: stored("sh1") == stored("sh2") == PER_DEVICE, 60,
                         "every message stored once", lambda: (stored("sh1"), stored("sh2")))
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(20)
    assert (stored("sh1"), stored("sh2")) == (PER_DEVICE, PER_DEVICE)
