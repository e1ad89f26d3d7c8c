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
import contextlib
import secrets
import subprocess
import sys
import time
from pathlib import Path

import orjson
from pydantic import SecretStr

DEMO_SITE = "gwdemo"
CUT_S = 15.0


def _say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {msg}", flush=True)


def demo(directory: Path, cut_s: float = CUT_S) -> int:
    from sqlalchemy import func, select

    from dolbom.alerts.notify.settings import NotifySettings
    from dolbom.alerts.service import AlertService
    from dolbom.alerts.settings import AlertOptions, AlertsSettings
    from dolbom.gateway.provision import provision
    from dolbom.ingest.service import Ingest
    from dolbom.ingest.settings import IngestSettings
    from dolbom.mqtt import Client, Received
    from dolbom.protocol import Envelope, encode_event, encode_status, encode_telemetry
    from dolbom.registry import service as registry
    from dolbom.registry.db import session_factory
    from dolbom.registry.models import AlarmJournal, Device, Site
    from dolbom.stack.mosquitto import Mosquitto
    from dolbom.stack.proc import free_port
    from dolbom.stack.stack import Stack

    stack = Stack(directory / "central")
    _say(f"starting the central Mosquitto (TLS) and InfluxDB under {directory}")
    stack.up()
    tag = secrets.token_hex(2)
    site, home, gw, node = DEMO_SITE, f"home-{tag}", f"gw-{tag}", f"esp32-{tag}"
    factory = session_factory(stack.database_url)
    with factory.begin() as s:
        if s.get(Site, site) is None:
            registry.add_site(s, site, "gateway demo")
        registry.add_home(s, home, site)
        registry.add_resident(s, home, "demo resident")
        _, node_pw = registry.add_device(s, node, site, home, "multisensor")
    local = Mosquitto(directory / f"local-{tag}", free_port())
    p = provision(stack.database_url, directory / f"gw-{tag}", site=site, gateway_id=gw,
                  home=home, children=[node], central_host="127.0.0.1",
                  central_port=stack.mosquitto.tls_port or 0, ca_file=stack.ca_file,
                  topics=stack.topics, local_port=local.port,
                  data_dir=directory / f"gwdata-{tag}", etc_dir=directory / f"gw-{tag}")
    stack.sync_broker()
    local.dir.mkdir(parents=True, exist_ok=True)
    for name in ("passwd", "acl"):
        (local.dir / name).write_bytes((p.out / "mosquitto" / name).read_bytes())
        (local.dir / name).chmod(0o600)
    local.prepare()
    local.start()
    _say(f"home {home}: node {node} -> local Mosquitto :{local.port} -> gateway {gw} "
         f"-> central :{stack.mosquitto.tls_port} (TLS)")
    log = directory / f"gateway-{tag}.log"
    with open(log, "ab") as out:
        gwp = subprocess.Popen([sys.executable, "-m", "dolbom.gateway", "run", "--env-file",
                                str(p.env_file)], stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
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
        acks: list[tuple[int, int]] = []

        def on_ack(m: Received) -> None:
            a = orjson.loads(m.payload)
            acks.append((a["boot"], a["seq"]))
            _say(f"node: ack {a} received from the centre, through the gateway")

        seq = 0

        def env() -> Envelope:
            nonlocal seq
            seq += 1
            return Envelope(1, seq, int(time.time() * 1000), 2)

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
                # The gateway's session on the home's broker exists from its first start
                # on: wait for it (its retained "ready" at the centre) before the node speaks.
                ready = asyncio.Event()

                def on_status(m: Received) -> None:
                    if b'"ready"' in m.payload:
                        ready.set()

                watch = Client("127.0.0.1", stack.mosquitto.port, "demo-" + tag,
                               username="svc-operator",
                               password=stack.secrets.mqtt["svc-operator"],
                               on_message=on_status)
                async with watch:
                    await watch.subscribe([(stack.topics.gateway_status(site, gw), 0)])
                    await asyncio.wait_for(ready.wait(), 30)
                c = Client("127.0.0.1", local.port, node, username=node, password=node_pw,
                           clean_session=False, on_message=on_ack)
                sent = 0
                async with c:
                    await c.subscribe([(stack.topics.ack(site, node), 1)])
                    await c.publish(stack.topics.status(site, node),
                                    encode_status("ready", 1, "demo", "multisensor", 60), 1, True)

                    async def tick(n: int) -> None:
                        nonlocal sent
                        for _ in range(n):
                            await c.publish(stack.topics.telemetry(site, node),
                                            encode_telemetry(env(), {"temperature_c": 22.0}), 1)
                            sent += 1
                            await asyncio.sleep(2)

                    await tick(3)
                    _say(f"uplink up: {sent} readings sent, {readings()} in InfluxDB")
                    _say(f"cutting the uplink (central broker stopped) for {cut_s:.0f} s")
                    await asyncio.to_thread(stack.mosquitto.stop)
                    await tick(2)
                    e = env()
                    await c.publish(stack.topics.event(site, node, "button"),
                                    encode_event(e, "press"), 1)
                    _say(f"node: button pressed during the cut (boot 1, seq {e.seq}); the "
                         "gateway has it on disk")
                    await tick(max(0, int(cut_s / 2) - 2))
                    await asyncio.to_thread(stack.mosquitto.start)
                    _say("uplink back")
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and not (  # noqa: ASYNC110 - bounded poll
                            (1, e.seq) in acks and readings() >= sent):
                        await asyncio.sleep(0.5)
                    _say(f"centre: {journal()} alarm journalled (once), {readings()} of {sent} "
                         f"readings in InfluxDB, ack at the node: {(1, e.seq) in acks}")
                ingest.stopping.set()
                alerts.stopping.set()
                await ti
                await ta

        asyncio.run(play())
    finally:
        if gwp.poll() is None:
            gwp.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                gwp.wait(15)
        local.stop()
        stack.down()
        with factory.begin() as s:  # the demo's devices stop existing for the broker
            for d in (node, gw):
                dev = s.get(Device, d)
                if dev is not None:
                    registry.revoke_device(s, d)
    _say(f"gateway log: {log}")
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
