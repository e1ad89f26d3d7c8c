"""``dolbom demo``: the whole stack with a simulated care home, for a first look.

Starts real Mosquitto and InfluxDB (``dolbom.stack``), provisions a care home of
simulated residents and devices, each with its own MQTT credential, runs ingest,
the alerts service and the simulator, serves the API and care-worker console
(``dolbom api serve``, a child process on a free loopback port), and shows live
counts until Ctrl-C, which stops everything in order: simulator, ingest (drained),
alerts, the console, then the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import SecretStr

from dolbom.alerts.notify.settings import NotifySettings
from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.demo_gateway import Node, gateway_ready, start_gateway_home
from dolbom.demo_people import ADMIN, WORKER, NoticePrinter, assigned_count, console_logins
from dolbom.demo_people import demo_people as _demo_people
from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.registry.db import session_factory
from dolbom.settings import MqttSettings
from dolbom.sim import control
from dolbom.sim.plan import SimPlan
from dolbom.sim.provision import ensure_plan
from dolbom.sim.runner import run_simulator
from dolbom.sim.settings import SimOptions, SimSettings
from dolbom.sim.stats import SimStats
from dolbom.stack import proc
from dolbom.stack.errors import StackError
from dolbom.stack.proc import free_port, runtime_root
from dolbom.stack.stack import Stack

SITE = "demo"
# One home of the demo's site reaches the centre through a Raspberry Pi gateway
# (docs/gateway.md), its node pressing its button this long after the gateway is up.
GATEWAY_HOME, GATEWAY, GATEWAY_NODE = "demo-gwhome", "demo-gw", "demo-gw-node"
GATEWAY_PRESS_S = 8.0
RECENT_EVENTS = "SELECT * FROM event WHERE time > now() - 5m"
API_START_S = 30.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the whole stack with a simulated care home")
    p.add_argument("--homes", type=int, default=20, help="simulated homes (default 20)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="routine clock speed: 60 plays an hour of daily life per minute")
    p.add_argument("--incidents", type=float, default=0.5,
                   help="random incidents per home per real hour (default 0.5)")
    p.add_argument("--dir", type=Path, default=None,
                   help="state directory (default: <runtime root>/demo)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--duration", type=float, default=0,
                   help="stop by itself after this many seconds (default: run until Ctrl-C)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    if not 1 <= args.homes <= 5000:
        print("error: --homes must be between 1 and 5000", file=sys.stderr)
        return 2
    directory = args.dir or runtime_root() / "demo"
    stack = Stack(directory)
    print(f"starting Mosquitto and InfluxDB under {directory} ...", flush=True)
    try:
        stack.up()
    except StackError as e:
        print(f"error: {e}", file=sys.stderr)
        stack.down()
        return 1
    try:
        asyncio.run(_run(args, stack))
    except StackError as e:  # the console did not start: say why, stop the rest
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        print("stopping InfluxDB and Mosquitto ...", flush=True)
        stack.down()
    print("stopped cleanly.")
    return 0


async def _run(args: argparse.Namespace, stack: Stack) -> None:
    plan, created = await asyncio.to_thread(
        ensure_plan, session_factory(stack.database_url), SITE, args.homes, args.seed,
        stack.dir / "sim-plan.json")
    await asyncio.to_thread(stack.sync_broker)
    metrics_port = free_port()
    ingest = Ingest(IngestSettings(
        database_url=stack.database_url, mqtt=stack.mqtt_settings("svc-ingest"),
        influx=stack.influx_settings(), spool_dir=stack.dir / "spool",
        metrics_port=metrics_port))
    sim_dir = stack.dir / "sim"
    sim_settings = SimSettings(
        database_url=stack.database_url,
        mqtt=MqttSettings(port=stack.mosquitto.port, topic_prefix=stack.topics.prefix),
        sim=SimOptions(state_dir=sim_dir))
    sock = sim_settings.state_dir() / "control.sock"
    stats = SimStats()
    stop_sim = asyncio.Event()
    hook = NoticePrinter(stack.secrets.webhook_secret.encode())
    hook_url = await hook.start()
    try:
        await asyncio.to_thread(_demo_people, stack, plan.homes[-1].id, hook_url)
        logins = await asyncio.to_thread(console_logins, stack.database_url)
        api, console = await asyncio.to_thread(_start_console, stack)
    except BaseException:
        await hook.stop()
        raise
    try:
        await _run_services(args, stack, plan, created, ingest, metrics_port, sim_settings,
                            sock, stats, stop_sim, hook, console, logins)
    finally:
        await asyncio.to_thread(proc.stop, api)
        await hook.stop()


async def _run_services(args: argparse.Namespace, stack: Stack, plan: SimPlan, created: bool,
                        ingest: Ingest, metrics_port: int, sim_settings: SimSettings,
                        sock: Path, stats: SimStats, stop_sim: asyncio.Event,
                        hook: NoticePrinter, console: str, logins: dict[str, str]) -> None:
    alerts = AlertService(AlertsSettings(
        database_url=stack.database_url, mqtt=stack.mqtt_settings("svc-alerts"),
        influx=stack.influx_settings(),
        notify=NotifySettings(webhook_secret=SecretStr(stack.secrets.webhook_secret)),
        # Notices link to the alert in the console; metrics on a free port (no clash with
        # another demo or a test run on this machine).
        alerts=AlertOptions(console_url=f"{console}/console/alerts", metrics_port=free_port(),
                            alarm_metrics_port=free_port())))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_sim.set)

    _where_next(stack, plan.homes[0].id, plan.homes[-1].id, metrics_port, sock, created,
                len(plan.homes), _console_lines(stack, console, logins))
    async with asyncio.TaskGroup() as tg:
        ingest_task = tg.create_task(ingest.run(), name="ingest")
        alerts_task = tg.create_task(alerts.run(), name="alerts")
        tg.create_task(run_simulator(
            plan, sim_settings, speed=args.speed, stats=stats, control_socket=sock,
            random_incident_rate=args.incidents, stop=stop_sim), name="simulator")
        tg.create_task(_first_fall(sock, plan.homes[-1].id, stop_sim, console),
                       name="first-incident")
        tg.create_task(_through_gateway(stack, stop_sim), name="gateway-home")
        if args.duration:
            tg.create_task(_stop_after(args.duration, stop_sim), name="timer")
        await _display(ingest, alerts, hook, stats, stop_sim)
        # Ctrl-C: the simulator says goodbye first, then ingest drains what it holds.
        await _wait_quiet(ingest, stats)
        ingest.stopping.set()
        alerts.stopping.set()
        await ingest_task
        await alerts_task


def _start_console(stack: Stack) -> tuple[subprocess.Popen[bytes], str]:
    """``dolbom api serve`` on a free loopback port, configured like a deployment would be
    (DOLBOM_API__* variables), with InfluxDB's read-only dashboard user."""
    port = free_port()
    secret_file = stack.dir / "api-jwt-secret"
    if not secret_file.exists():  # kept across runs: a restart does not sign people out
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    influx = stack.influx_settings("dashboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOLBOM_API__")}
    env.update({
        "DOLBOM_API__DATABASE_URL": stack.database_url,
        "DOLBOM_API__JWT_SECRET": secret_file.read_text().strip(),
        "DOLBOM_API__HOST": "127.0.0.1", "DOLBOM_API__PORT": str(port),
        # Plain HTTP on loopback: a Secure cookie would never be sent back.
        "DOLBOM_API__COOKIE_SECURE": "false",
        "DOLBOM_API__INFLUX__URL": influx.url, "DOLBOM_API__INFLUX__DATABASE": influx.database,
        "DOLBOM_API__INFLUX__USERNAME": influx.username or "",
        "DOLBOM_API__INFLUX__PASSWORD": influx.password.get_secret_value()
        if influx.password else "",
    })
    log = stack.dir / "api.log"
    with open(log, "ab") as out:
        api = subprocess.Popen([sys.executable, "-m", "dolbom.cli", "api", "serve"], env=env,
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        proc.wait_port(port, api, API_START_S, "the API and console", log)
    except StackError:
        proc.stop(api)
        raise
    return api, f"http://127.0.0.1:{port}"


def _console_lines(stack: Stack, console: str, logins: dict[str, str]) -> str:
    """Where the console is and how to sign in; passwords only on the run that made them."""
    mine, everyone = assigned_count(stack.database_url)
    venv = Path(sys.executable).parent
    if logins:
        shown = "             sign in (the passwords are shown only now, and stored hashed):\n"
        shown += "".join(f"               {who:<12} password {pw}\n"
                         for who, pw in logins.items())
    else:
        shown = (f"             the passwords of {ADMIN} and {WORKER} were shown on the first "
                 f"run; new ones:\n               DOLBOM_API__DATABASE_URL={stack.database_url} "
                 f"{venv}/dolbom api set-password {WORKER}\n")
    return (f"  Console    {console}/console/   (log: {stack.dir / 'api.log'})\n{shown}"
            f"             {ADMIN} sees all {everyone} residents; {WORKER} sees the {mine} "
            "assigned to them.\n")


async def _first_fall(sock: Path, home: str, stop: asyncio.Event, console: str) -> None:
    """A scripted fall after 20 s, so a newcomer sees a life-safety event flow at once."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), 20)
        return
    with contextlib.suppress(Exception):
        await control.send(sock, {"incident": "fall", "home": home})
        print(f"\n  >> injected a fall in home {home}: see it in {console}/console/alerts",
              flush=True)


def _note(msg: str) -> None:
    print(("\r\033[K" if sys.stdout.isatty() else "") + f"  >> {msg}", flush=True)


async def _through_gateway(stack: Stack, stop: asyncio.Event) -> None:
    """One more home, whose sensor node speaks to the home's own Mosquitto and reaches the
    centre through a gateway (``dolbom gateway run``, its uplink over TLS): a reading
    every 5 s, and a button press whose ``ack`` comes back through the gateway. A gateway
    that cannot start is reported, and the rest of the demo goes on."""
    directory = stack.dir / "gateway"
    directory.mkdir(mode=0o711, exist_ok=True)
    directory.chmod(0o711)  # the home's Mosquitto runs as its own user
    try:
        gh = await asyncio.to_thread(start_gateway_home, stack, directory, SITE,
                                     GATEWAY_HOME, GATEWAY, GATEWAY_NODE)
    except Exception as e:  # the demo goes on without this home
        _note(f"the gateway home could not start: {e}")
        return
    try:
        ready = asyncio.ensure_future(gateway_ready(stack, gh))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not ready.done():  # the demo ends first
            ready.cancel()
            return
        ready.result()  # its error, if it has one
        _note(f"home {gh.home} reaches the centre through gateway {gh.gw}: its node on the "
              f"home's own Mosquitto (:{gh.local.port}), the gateway's uplink over TLS "
              f"(:{stack.mosquitto.tls_port}); log {gh.log}")
        async with Node(stack, gh) as node:
            started, key, pressed_at = time.monotonic(), None, 0.0
            while not stop.is_set():
                await node.reading()
                if key is None and time.monotonic() - started >= GATEWAY_PRESS_S:
                    key, pressed_at = await node.press(), time.monotonic()
                    _note(f"pressed the button of {gh.node} in home {gh.home}, behind "
                          f"gateway {gh.gw}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0 if key and key not in
                                           node.acks else 5.0)
                if key is not None and key in node.acks and pressed_at:
                    _note(f"ack back at {gh.node} through gateway {gh.gw}, "
                          f"{(node.acks[key] - pressed_at) * 1000:.0f} ms after the press")
                    pressed_at = 0.0
    except Exception as e:  # as above
        _note(f"the gateway home stopped: {e} (log {gh.log})")
    finally:
        await asyncio.to_thread(gh.stop)


async def _stop_after(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    stop.set()


async def _wait_quiet(ingest: Ingest, stats: SimStats) -> None:
    for _ in range(50):  # at most 10 s: the simulator disconnects, ingest makes all durable
        if not (stats.snapshot().connected or ingest.snapshot().pending):
            return
        await asyncio.sleep(0.2)


async def _display(ingest: Ingest, alerts: AlertService, hook: NoticePrinter,
                   stats: SimStats, stop: asyncio.Event) -> None:
    tty = sys.stdout.isatty()
    every = 1.0 if tty else 10.0
    last_t, last_n = time.monotonic(), 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        now = time.monotonic()
        i, s = ingest.snapshot(), stats.snapshot()
        for line in hook.take():
            print(("\r\033[K" if tty else "") + f"  >> {line}", flush=True)
        rate = (i.messages - last_n) / (now - last_t)
        last_t, last_n = now, i.messages
        line = (f"{s.sim_time:>12}  devices online {s.connected}/{s.devices}  "
                f"msg/s {rate:6.1f}  points {i.points_written}  dead letters {i.dead_letters}  "
                f"life-safety {i.life_safety_events} (awaiting ack {s.life_safety_pending})  "
                f"notices {hook.count}  "
                f"influx {'up' if i.influx_up else 'DOWN (spooling)'}")
        if tty:
            print("\r\033[K" + line, end="", flush=True)
        else:
            print(line, flush=True)
    print()


def _where_next(stack: Stack, home: str, quick: str, metrics_port: int, sock: Path,
                created: bool, homes: int, console: str) -> None:
    venv = Path(sys.executable).parent
    db = stack.database_url
    inf = stack.influx
    dash = Path(__file__).resolve().parents[1] / "dashboards"  # dolbom dashboards build
    print(f"""
Dolbom is running: {homes} simulated homes {'provisioned' if created else 'reused'}, \
each device with its own MQTT login.

  Mosquitto  127.0.0.1:{stack.mosquitto.port}   (passwords: {stack.dir / 'secrets.json'}, 0600)
  MQTT TLS   127.0.0.1:{stack.mosquitto.tls_port}   (TLS >= 1.2, CA: {stack.ca_file})
  InfluxDB   {inf.url}   database 'care', read-only user 'dashboard'
  Grafana    dashboards and provisioning in {dash} (docs/dashboards.md): DOLBOM_DASHBOARDS_DIR=\
{dash} GF_PATHS_PROVISIONING={dash}/provisioning DOLBOM_GRAFANA_INFLUX_URL={inf.url} \
DOLBOM_GRAFANA_INFLUX_DB=care DOLBOM_GRAFANA_INFLUX_USER=dashboard \
DOLBOM_GRAFANA_INFLUX_PASSWORD=<influx_dashboard in secrets.json> grafana-server
  Metrics    http://127.0.0.1:{metrics_port}/metrics   health: /health
{console}
Where to look next (in another terminal):
  {venv}/dolbom sim inject fall --home {home} --socket {sock}
  {venv}/dolbom sim inject silence --home {quick} --socket {sock}   (a welfare alert in ~6 min)
  DOLBOM_DATABASE_URL={db} {venv}/dolbom alerts list
  DOLBOM_DATABASE_URL={db} {venv}/dolbom alerts ack ID --as demo-worker
  DOLBOM_DATABASE_URL={db} {venv}/dolbom deadletters list
  DOLBOM_DATABASE_URL={db} {venv}/dolbom device list
  influx -host 127.0.0.1 -port {inf.port} -username dashboard -password "$(python3 -c \
'import json;print(json.load(open("{stack.dir / "secrets.json"}"))["influx_dashboard"])')" \
-database care -execute '{RECENT_EVENTS}'

Ctrl-C stops everything cleanly.
""", flush=True)
