"""Fixtures for gateway tests: a central stack (TLS Mosquitto, InfluxDB, registry) per
module, a home's local Mosquitto per test, and the gateway as a real process
(``python -m dolbom.cli gateway run``), stopped or killed by the PID we started."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from dolbom.gateway.provision import LOCAL_Z2M_USER, provision
from dolbom.mqtt import Client, MqttError, Received
from dolbom.protocol import Topics
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal
from dolbom.stack import proc
from dolbom.stack.mosquitto import Mosquitto
from dolbom.stack.stack import Stack
from tests.integration.alerting import care_home

TOPICS = Topics()


@pytest.fixture(scope="module")
def central(runtime_dir: Path) -> Iterator[Stack]:
    s = Stack(Path(tempfile.mkdtemp(prefix="gwcentral-", dir=runtime_dir)))
    s.up()
    yield s
    s.down()


class GatewayProc:
    """``dolbom gateway run`` in a process of its own, like systemd runs it."""

    def __init__(self, env_file: Path, log: Path) -> None:
        self.env_file, self.log = env_file, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProc:
        assert self.proc is None or self.proc.poll() is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOLBOM_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dolbom.gateway", "run", "--env-file",
                 str(self.env_file)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait (bounded); the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(20)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@dataclass
class Home:
    """One home behind a gateway: registered centrally, its local broker running."""

    central: Stack
    local: Mosquitto
    site: str
    home: str
    gw: str
    children: dict[str, str]  # child id -> password (the same on both brokers)
    env_file: Path
    local_passwords: dict[str, str]
    gateway: GatewayProc
    data_dir: Path
    z2m: dict[str, str] = field(default_factory=dict)

    def local_client(self, dev: str, **kw: object) -> Client:
        return Client("127.0.0.1", self.local.port, f"{dev}-{secrets.token_hex(2)}",
                      username=dev, password=self.children[dev], **kw)  # type: ignore[arg-type]

    def z2m_client(self) -> Client:
        return Client("127.0.0.1", self.local.port, "z2m-" + secrets.token_hex(2),
                      username=LOCAL_Z2M_USER, password=self.local_passwords[LOCAL_Z2M_USER])

    def journal(self, dev: str) -> list[tuple[int, int, bool]]:
        with session_factory(self.central.database_url)() as s:
            rows = s.scalars(select(AlarmJournal).where(AlarmJournal.device_id == dev)
                             .order_by(AlarmJournal.received_at))
            return [(r.boot, r.seq, r.hist) for r in rows]

    def queued(self) -> int:
        """Rows in the gateway's queue file (read beside the running gateway: WAL)."""
        db = sqlite3.connect(f"file:{self.data_dir / 'queue.sqlite'}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM q").fetchone()[0])
        except sqlite3.OperationalError:
            return -1
        finally:
            db.close()

    def readings(self, dev: str) -> int:
        """Reading points of ``dev`` in InfluxDB (``dev`` is a checked id: no quoting)."""
        q = f"SELECT count(*) FROM \"reading\" WHERE device = '{dev}'"  # noqa: S608
        return self.central.influx_admin().count(q, "care")


def write_home(central: Stack, tmp: Path, runtime_dir: Path, children: dict[str, str],
               hook: str, *, z2m: dict[str, str] | None = None, central_port: int | None = None,
               extra_env: dict[str, str] | None = None) -> Home:
    """Register a home with a gateway and ``children`` {id: kind} (plus Zigbee2MQTT
    children {friendly name: id}), provision the gateway, start its local broker."""
    site = "gw" + secrets.token_hex(3)
    home, gw = "h" + site, "gw-" + site
    z2m = dict(z2m or {})
    kinds = {**children, **dict.fromkeys(z2m.values(), "multisensor"), gw: "gateway"}
    pw = care_home(central, site, home, kinds, hook)
    out = Path(tempfile.mkdtemp(prefix="gwfiles-", dir=runtime_dir))
    local_dir = Path(tempfile.mkdtemp(prefix="gwlocal-", dir=runtime_dir))
    local = Mosquitto(local_dir)
    p = provision(central.database_url, out, site=site, gateway_id=gw, home=home,
                  children=list(children), central_host="127.0.0.1",
                  central_port=central_port or central.mosquitto.tls_port or 0,
                  ca_file=central.ca_file, topics=TOPICS, local_port=local.port,
                  z2m=z2m, data_dir=tmp / "gwdata", etc_dir=out)
    central.sync_broker()
    # The local broker: the provisioned users and ACL (Mosquitto of dolbom.stack, its
    # own config on a free loopback port).
    for name in ("passwd", "acl"):
        (local_dir / name).write_bytes((out / "mosquitto" / name).read_bytes())
        (local_dir / name).chmod(0o600)
    local.prepare()
    local.start()
    fast = {"DOLBOM_GW_CENTRAL__KEEPALIVE": "5", "DOLBOM_GW_LOCAL__KEEPALIVE": "5",
            "DOLBOM_GW_ACK_TIMEOUT_S": "3", "DOLBOM_GW_STATUS_S": "2",
            "DOLBOM_GW_REPLAY_RATE": "200", "DOLBOM_GW_HIST_AFTER_S": "5"}
    fast.update(extra_env or {})
    with open(p.env_file, "a") as f:
        f.writelines(f"{k}={v}\n" for k, v in fast.items())
    return Home(central, local, site, home, gw, {c: pw[c] for c in children}, p.env_file,
                p.local_passwords, GatewayProc(p.env_file, tmp / "gateway.log"),
                tmp / "gwdata", z2m)


@pytest.fixture()
def homes() -> Iterator[list[Home]]:
    """Homes a test made: their gateway and local broker stopped by PID afterwards."""
    made: list[Home] = []
    yield made
    for h in made:
        h.gateway.kill9()
        h.local.stop()


@dataclass
class Watch:
    """Messages on the central broker under a site (the operator's read-only account)."""

    received: list[Received] = field(default_factory=list)

    def on(self, suffix: str) -> list[Received]:
        return [m for m in self.received if m.topic.endswith(suffix)]

    def payloads(self, suffix: str) -> list[dict[str, object]]:
        return [orjson.loads(m.payload) for m in self.on(suffix)]


@asynccontextmanager
async def watching(stack: Stack, pattern: str) -> AsyncIterator[Watch]:
    w = Watch()

    async def run() -> None:
        while True:
            c = Client("127.0.0.1", stack.mosquitto.port, "watch-" + secrets.token_hex(3),
                       username="svc-operator", password=stack.secrets.mqtt["svc-operator"],
                       on_message=w.received.append, keepalive=5)
            try:
                await c.connect(timeout=2)
                await c.subscribe([(pattern, 0)])
                await c.wait_closed()
            except (MqttError, OSError):
                pass
            finally:
                c.abort()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(run(), name="watch")
    await asyncio.sleep(0.3)
    try:
        yield w
    finally:
        task.cancel()


def restart_broker(b: Mosquitto, kill: bool = True) -> None:
    """Kill -9 (or stop) the broker and start it again on the same port and data."""
    b.kill() if kill else b.stop()
    b.start()


__all__ = ["TOPICS", "GatewayProc", "Home", "Watch", "proc", "restart_broker", "watching",
           "write_home"]
