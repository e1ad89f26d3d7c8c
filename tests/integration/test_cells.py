"""Two cells on one machine (``dolbom stack-cells``, docs/scale.md): a PostgreSQL primary
and standby, and per cell a broker, an InfluxDB, its broker-sync watcher, two ingest
workers on ``$share/`` and an active and a standby alert service, all real processes.
Each cell's broker admits only its own sites' devices; a button pressed in each cell is
journalled, acked and told by that cell's alert service, once; both ingest workers of a
cell take a share of its readings, and every reading is stored once."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text

from dolbom.mqtt import Client, ConnectRefused
from dolbom.protocol import encode_telemetry
from dolbom.registry.db import session_factory
from dolbom.stack.cells import Cells
from tests.integration.alarm_procs import health, press_acked, told_once_each
from tests.integration.alerting import SECRET, care_home, webhook_receiver
from tests.integration.conftest import TOPICS, env, eventually
from tests.integration.test_ingest_crash import _metric

pytestmark = pytest.mark.integration
READINGS = 40


async def _connect(port: int, dev: str, pw: str, deadline_s: float) -> Client:
    """Connect, retrying refusals while the cell's watcher brings the device in."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    while True:
        c = Client("127.0.0.1", port, dev, username=dev, password=pw)
        try:
            await c.connect(timeout=2.0)
            return c
        except ConnectRefused:
            if loop.time() >= until:
                raise
            await asyncio.sleep(0.2)


async def test_two_cells_each_admit_and_tell_only_their_own(runtime_dir: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="cells-", dir=runtime_dir))
    cells = Cells(base, ["c1", "c2"], webhook_secret=SECRET)
    async with webhook_receiver() as rec:
        try:
            cells.up()
            homes = {}
            for cell in cells.cells:
                site, home, dev = f"s{cell.name}", f"h{cell.name}", f"btn-{cell.name}"
                pw = care_home(cell.stack, site, home, {dev: "button"}, rec.url,
                               cell=cell.name)[dev]
                homes[cell.name] = (site, home, dev, pw)
            for cell in cells.cells:
                await eventually(lambda c=cell: (health(c.ports["alerts-a"]) or {}).get("role")
                                 == "active" or (health(c.ports["alerts-b"]) or {}).get("role")
                                 == "active", 60, f"an active alert service in {cell.name}")

            c2 = cells.cells[1]
            with pytest.raises(ConnectRefused):  # a c1 device at c2's broker
                await _connect(c2.stack.mosquitto.port, homes["c1"][2], homes["c1"][3], 2.0)

            for cell in cells.cells:
                site, _home, dev, pw = homes[cell.name]
                client = await _connect(cell.stack.mosquitto.port, dev, pw, 15.0)
                try:
                    await client.subscribe([(TOPICS.ack(site, dev), 1)])
                    await press_acked(client, site, dev, 1)
                    for seq in range(2, READINGS + 2):
                        await client.publish(TOPICS.telemetry(site, dev),
                                             encode_telemetry(env(seq), {"battery_pct": 80}),
                                             qos=1)
                finally:
                    await client.disconnect()

            await eventually(lambda: {b["home"] for b in rec.received} == {"hc1", "hc2"}, 30,
                             "each cell told its alarm", lambda: rec.received)
            await asyncio.sleep(1.0)  # nothing more arrives: no cell told the other's
            told_once_each(rec)
            assert {b["rule"] for b in rec.received} == {"button"}

            for cell in cells.cells:
                admin = cell.stack.influx_admin()
                query = f"SELECT count(battery_pct) FROM reading WHERE site='s{cell.name}'"  # noqa: S608 - constants
                await eventually(lambda a=admin, q=query: a.count(q, "care") == READINGS, 30,
                                 f"{cell.name}'s readings stored once")
                shares = [_metric(cell.ports[f"ingest-{i}"], "dolbom_ingest_messages_total")
                          for i in (1, 2)]
                assert all(n > 0 for n in shares), f"{cell.name}: a worker took nothing {shares}"
                # each cell's backlog watcher follows its own broker
                await eventually(lambda c=cell: (health(c.ports["broker-backlog"]) or {}).get(
                    "connected") is True, 30, f"{cell.name}'s backlog watcher")
                assert (health(cell.ports["broker-backlog"]) or {}).get("cell") == cell.name

            # faults inside the two-cell run, in c1: the active alert service and an ingest
            # worker killed with SIGKILL, readings and a press while they are down
            c1 = cells.cells[0]
            site, home, dev, pw = homes["c1"]
            active = next(r for r in ("alerts-a", "alerts-b")
                          if (health(c1.ports[r]) or {}).get("role") == "active")
            other = "alerts-b" if active == "alerts-a" else "alerts-a"
            os.kill(c1.services[active].pid, signal.SIGKILL)
            os.kill(c1.services["ingest-1"].pid, signal.SIGKILL)
            client = await _connect(c1.stack.mosquitto.port, dev, pw, 15.0)
            try:
                await client.subscribe([(TOPICS.ack(site, dev), 1)])
                for seq in range(READINGS + 2, 2 * READINGS + 2):
                    await client.publish(TOPICS.telemetry(site, dev),
                                         encode_telemetry(env(seq), {"battery_pct": 80}), qos=1)
                await press_acked(client, site, dev, 2 * READINGS + 2)
            finally:
                await client.disconnect()
            await eventually(lambda: (health(c1.ports[other]) or {}).get("role") == "active",
                             30, f"c1's {other} taking over")
            cells.restart(c1, "ingest-1")  # as its supervisor would
            admin = c1.stack.influx_admin()
            query = "SELECT count(battery_pct) FROM reading WHERE site='sc1'"
            await eventually(lambda: admin.count(query, "care") == 2 * READINGS, 60,
                             "c1's readings of the fault stored once, the killed worker's "
                             "share after its restart", lambda: admin.count(query, "care"))
            # the alert still open, the press is told as its repeat, to both people
            await eventually(lambda: sum("(again)" in b["text"] for b in rec.received
                                         if b["home"] == home) == 1, 30,
                             "c1's second press told", lambda: rec.received)
            await asyncio.sleep(1.0)
            told_once_each(rec)
            # the services' database role is not a superuser and may make no database
            with session_factory(cells.database_url)() as s:
                assert s.execute(text("SELECT rolsuper OR rolcreatedb OR rolcreaterole "
                                      "FROM pg_roles WHERE rolname = current_user")
                                 ).scalar() is False
        finally:
            cells.down()
