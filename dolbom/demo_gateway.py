"""``dolbom demo-gateway``: one home through a gateway, on this machine (docs/gateway.md).

Starts the central stack (Mosquitto with TLS, InfluxDB, the registry) with ingest and the
alerts service, registers a home with a gateway and a sensor node, provisions the
gateway, starts the home's own Mosquitto and ``python -m dolbom.gateway run``, and plays
a node (CPython, on the home's broker) that sends a reading every 2 s. Then it cuts the
uplink (the central broker is stopped), presses the node's button during the cut, brings
the uplink back, and prints what reached the centre: the alarm journalled, its ``ack``
back at the node, the readings in InfluxDB. Needs the full installation (``dev`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import SecretStr

from dolbom.protocol import Envelope
from dolbom.stack.mosquitto import Mosquitto
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack

DEMO_SITE = "gwdemo"
CUT_S = 15.0


def _say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {msg}", flush=True)


@dataclass
class GatewayHome:
    """A home whose sensor node reaches the centre through a gateway, on this machine:
    registered, the gateway provisioned, the home's own Mosquitto and ``python -m
    dolbom.gateway run`` started (by PID; ``stop`` stops both)."""

    site: str
    home: str
    gw: str
    node: str
    node_pw: str
    local: Mosquitto
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.local.stop()


def start_gateway_home(stack: Stack, directory: Path, site: str, home: str, gw: str,
                       node: str, site_name: str = "gateway demo") -> GatewayHome:
    """Register ``home`` (with a resident) and its node in ``site`` (each made if missing;
    an existing node gets a new password, shown to nobody), provision gateway ``gw`` for
    it, and start the home's Mosquitto and the gateway. Safe to run again with the same
    ids."""
    from dolbom.gateway.provision import provision
    from dolbom.registry import service as registry
    from dolbom.registry.broker import mosquitto_hash
    from dolbom.registry.db import session_factory
    from dolbom.registry.models import Device, Home, Site

    factory = session_factory(stack.database_url)
    with factory.begin() as s:
        if s.get(Site, site) is None:
            registry.add_site(s, site, site_name)
        if s.get(Home, home) is None:
            registry.add_home(s, home, site)
            registry.add_resident(s, home, "demo resident")
        dev = s.get(Device, node)
        if dev is None or dev.revoked_at is not None:
            _, node_pw = registry.add_device(s, node, site, home, "multisensor")
        else:
            node_pw = secrets.token_urlsafe(24)
            dev.mqtt_hash = mosquitto_hash(node_pw)
    local = Mosquitto(directory / f"local-{gw}", free_port())
    files = directory / f"files-{gw}"
    p = provision(stack.database_url, files, site=site, gateway_id=gw, home=home,
                  children=[node], central_host="127.0.0.1",
                  central_port=stack.mosquitto.tls_port or 0, ca_file=stack.ca_file,
                  topics=stack.topics, local_port=local.port,
                  data_dir=directory / f"data-{gw}", etc_dir=files)
    stack.sync_broker()
    local.dir.mkdir(parents=True, exist_ok=True)
    for name in ("passwd", "acl"):
        (local.dir / name).write_bytes((p.out / "mosquitto" / name).read_bytes())
        (local.dir / name).chmod(0o600)
    local.prepare()
    local.start()
    log = directory / f"gateway-{gw}.log"
    try:
        with open(log, "ab") as out:
            gwp = subprocess.Popen([sys.executable, "-m", "dolbom.gateway", "run",
                                    "--env-file", str(p.env_file)], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except BaseException:
        local.stop()
        raise
    return GatewayHome(site, home, gw, node, node_pw, local, gwp, log)


async def gateway_ready(stack: Stack, gh: GatewayHome, timeout_s: float = 30) -> None:
    """Until the gateway's retained ``ready`` is at the centre (its session on the
    home's broker exists from then on, so the node may speak)."""
    from dolbom.mqtt import Client, Received

    ready = asyncio.Event()

    def on_status(m: Received) -> None:
        if b'"ready"' in m.payload:
            ready.set()

    watch = Client("127.0.0.1", stack.mosquitto.port, "demo-" + secrets.token_hex(3),
                   username="svc-operator", password=stack.secrets.mqtt["svc-operator"],
                   on_message=on_status)
    async with watch:
        await watch.subscribe([(stack.topics.gateway_status(gh.site, gh.gw), 0)])
        await asyncio.wait_for(ready.wait(), timeout_s)


class Node:
    """The home's sensor node, played in CPython on the home's broker: readings, its
    button, and the ``ack`` that comes back through the gateway (``acks``, with when)."""

    def __init__(self, stack: Stack, gh: GatewayHome) -> None:
        from dolbom.mqtt import Client, Received

        self.stack, self.gh = stack, gh
        self.seq = 0
        self.sent = 0
        self.acks: dict[tuple[int, int], float] = {}
        self.acked = asyncio.Event()

        def on_ack(m: Received) -> None:
            a = orjson.loads(m.payload)
            self.acks.setdefault((a["boot"], a["seq"]), time.monotonic())
            self.acked.set()

        self.client = Client("127.0.0.1", gh.local.port, gh.node, username=gh.node,
                             password=gh.node_pw, clean_session=False, on_message=on_ack)

    async def __aenter__(self) -> Node:
        from dolbom.protocol import encode_status

        t = self.stack.topics
        await self.client.connect()
        await self.client.subscribe([(t.ack(self.gh.site, self.gh.node), 1)])
        await self.client.publish(t.status(self.gh.site, self.gh.node),
                                  encode_status("ready", 1, "demo", "multisensor", 60), 1, True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()

    def _env(self) -> Envelope:
        self.seq += 1
        return Envelope(1, self.seq, int(time.time() * 1000), 2)

    async def reading(self, celsius: float = 22.0) -> None:
        from dolbom.protocol import encode_telemetry

        await self.client.publish(self.stack.topics.telemetry(self.gh.site, self.gh.node),
                                  encode_telemetry(self._env(), {"temperature_c": celsius}), 1)
        self.sent += 1

    async def press(self) -> tuple[int, int]:
        """Press the button; its (boot, seq), the key of its ``ack``."""
        from dolbom.protocol import encode_event

        e = self._env()
        await self.client.publish(self.stack.topics.event(self.gh.site, self.gh.node,
                                                          "button"), encode_event(e, "press"), 1)
        return e.boot, e.seq


def demo(directory: Path, cut_s: float = CUT_S) -> int:
    from sqlalchemy import func, select

    from dolbom.alerts.notify.settings import NotifySettings
    from dolbom.alerts.service import AlertService
    from dolbom.alerts.settings import AlertOptions, AlertsSettings
    from dolbom.ingest.service import Ingest
    from dolbom.ingest.settings import IngestSettings
    from dolbom.registry import service as registry
    from dolbom.registry.db import session_factory
    from dolbom.registry.models import AlarmJournal, Device

    stack = Stack(directory / "central")
    _say(f"starting the central Mosquitto (TLS) and InfluxDB under {directory}")
    stack.up()
    tag = secrets.token_hex(2)
    gh = start_gateway_home(stack, directory, DEMO_SITE, f"home-{tag}", f"gw-{tag}",
                            f"esp32-{tag}")
    node = gh.node
    factory = session_factory(stack.database_url)
    _say(f"home {gh.home}: node {node} -> local Mosquitto :{gh.local.port} -> gateway {gh.gw} "
         f"-> central :{stack.mosquitto.tls_port} (TLS)")
    try:
        ingest = Ingest(IngestSettings(
            database_url=stack.database_url, mqtt=stack.mqtt_settings("svc-ingest"),
            influx=stack.influx_settings(), spool_dir=stack.dir / "spool", metrics_port=0,
            flush_interval_s=0.5))
        alerts = AlertService(AlertsSettings(
            database_url=stack.database_url, mqtt=stack.mqtt_settings("svc-alerts"),
            influx=stack.influx_settings(),
            notify=NotifySettings(webhook_secret=SecretStr(stack.secrets.webhook_secret)),
            alerts=AlertOptions(metrics_port=0, alarm_metrics_port=0, alarm_process=False)))

        def journal() -> int:
            with factory() as s:
                return int(s.scalar(select(func.count()).select_from(AlarmJournal)
                                    .where(AlarmJournal.device_id == node)) or 0)

        def readings() -> int:
            return stack.influx_admin().count(
                f"SELECT count(*) FROM \"reading\" WHERE device = '{node}'", "care")  # noqa: S608

        async def play() -> None:
            async with asyncio.TaskGroup() as tg:
                ti = tg.create_task(ingest.run(), name="ingest")
                ta = tg.create_task(alerts.run(), name="alerts")
                await gateway_ready(stack, gh)
                async with Node(stack, gh) as n:

                    async def tick(k: int) -> None:
                        for _ in range(k):
                            await n.reading()
                            await asyncio.sleep(2)

                    await tick(3)
                    _say(f"uplink up: {n.sent} readings sent, {readings()} in InfluxDB")
                    _say(f"cutting the uplink (central broker stopped) for {cut_s:.0f} s")
                    await asyncio.to_thread(stack.mosquitto.stop)
                    await tick(2)
                    key = await n.press()
                    _say(f"node: button pressed during the cut (boot 1, seq {key[1]}); the "
                         "gateway has it on disk")
                    await tick(max(0, int(cut_s / 2) - 2))
                    await asyncio.to_thread(stack.mosquitto.start)
                    _say("uplink back")
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and not (  # noqa: ASYNC110 - bounded poll
                            key in n.acks and readings() >= n.sent):
                        await asyncio.sleep(0.5)
                    if key in n.acks:
                        _say(f"node: ack {list(key)} received from the centre, through the "
                             "gateway")
                    _say(f"centre: {journal()} alarm journalled (once), {readings()} of "
                         f"{n.sent} readings in InfluxDB, ack at the node: {key in n.acks}")
                ingest.stopping.set()
                alerts.stopping.set()
                await ti
                await ta

        asyncio.run(play())
    finally:
        gh.stop()
        stack.down()
        with factory.begin() as s:  # the demo's devices stop existing for the broker
            for d in (node, gh.gw):
                dev = s.get(Device, d)
                if dev is not None:
                    registry.revoke_device(s, d)
    _say(f"gateway log: {gh.log}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo-gateway", help="one home through a gateway on this machine: an uplink cut, a "
        "button pressed during it, the alarm and its ack after it")
    p.add_argument("--dir", type=Path, default=None,
                   help="state directory (default: a new one under the runtime root)")
    p.add_argument("--cut", type=float, default=CUT_S, help="uplink cut, seconds")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import tempfile

    from dolbom.files import runtime_root

    directory = args.dir or Path(tempfile.mkdtemp(prefix="gateway-demo-", dir=runtime_root()))
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o711)  # the servers run as their own users
    return demo(directory, args.cut)
