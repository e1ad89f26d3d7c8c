"""``dolbom bench-alerts``: life-safety latency under fleet load, and rule memory per home.

DESIGN.md §7: device publish → webhook received, p99 ≤ 250 ms while the national-fleet
load runs; ≤ 1 KB of rule state per home. One run:

1. a fresh stack (Mosquitto, InfluxDB, registry) and the fleet registered in bulk;
2. ingest and the alerts service as their own processes, as deployed;
3. the load generator (its own process) offers ``rate`` msg/s of the fleet mix;
4. meanwhile ``presses`` probe homes each press their emergency button once, spread over
   the run (one home per press: a repeat on an open alert is counted, not notified);
5. a webhook receiver on loopback records when each signed notice arrives.

Latency = receive time − publish time, both on this machine's clock. Each press is also
traced on its way (``Trace``): published; taken up by the alarm process (the alert's
``raised_at``, stamped when its worker starts on the message: broker, alarm session and
queue behind it); acked (the device receives its ``ack``, sent only after the journal
commit); told (the signed webhook received, after the outbox). The CPU time of every
process (user + system, from /proc, with its children) over the offered load is
reported per message offered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from dolbom.alerts.notify.base import verify
from dolbom.bench.fleet import Fleet
from dolbom.bench.frames import StepPlan
from dolbom.bench.loadgen import LoadGen, LoadGenConfig
from dolbom.bench.procstat import children_map, cpu_seconds, tree
from dolbom.bench.rule_memory import measure as measure_rule_memory
from dolbom.bench.targets import seed_registry
from dolbom.mqtt import Client, MqttError
from dolbom.protocol import Envelope, encode_event
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.postgres import Postgres
from dolbom.stack.proc import free_port, runtime_root, stop
from dolbom.stack.stack import Stack

SITE = "lat"


@dataclass(frozen=True)
class LatencyResult:
    rate: int
    homes: int
    offered_rate: float
    presses: int
    received: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    rule_bytes_per_home: float
    # where the time goes, from the alerts service's histograms: name -> (count, p50, p99)
    stages: dict[str, tuple[int, float | None, float | None]]
    ready_s: dict[str, float | None]  # service start -> consuming (its /health answers 200)
    # per press, ms after its publish: taken up by the alarm process, acked, told
    traces: dict[str, Trace] = field(default_factory=dict)
    cpu_us_per_msg: dict[str, float] = field(default_factory=dict)  # process -> µs/message
    # messages each consumer took during the offered load (its own counter), and the
    # messages offered: a consumer that falls behind loses QoS 0 messages at the broker
    taken: dict[str, float] = field(default_factory=dict)
    offered_msgs: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds used
    # the Node-RED peer on the same broker and InfluxDB, at the same rate, after ours
    peer: PeerResult | None = None
    ingest_memory: tuple[int, float] | None = None  # (devices measured, bytes per device)


@dataclass(frozen=True)
class PeerResult:
    """The Node-RED peer (no rules) in the same run: CPU per message offered, or why it
    could not be measured."""

    seconds: int
    offered_rate: float
    cpu_us_per_msg: dict[str, float]  # process -> µs per message offered
    errors: int  # error lines Node-RED logged (a failed write loses its batch)
    failed: str | None = None


@dataclass(frozen=True)
class Trace:
    """One press, in ms after its publish (None: not seen)."""

    taken_ms: float | None  # the alarm process starts on it (raised_at)
    acked_ms: float | None  # the device has its ack (journal committed, ack published)
    told_ms: float | None  # the signed webhook received


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


STAGES = {
    ("dolbom_alerts_life_safety_stage_seconds", "stage", "queued"): "alarm queued",
    ("dolbom_alerts_life_safety_stage_seconds", "stage", "journal"): "journal",
    ("dolbom_alerts_life_safety_stage_seconds", "stage", "ack"): "ack to device",
    ("dolbom_alerts_notice_delay_seconds", "priority", "high"): "outbox -> webhook",
    ("dolbom_alerts_loop_lag_seconds", "", ""): "event-loop lag",
}
LOOP_LAG = "event-loop lag"


def stage_quantiles(text: str) -> dict[str, tuple[int, float | None, float | None]]:
    """p50 / p99 (bucket upper bounds, seconds) of the alerts service's stage histograms."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            base = sample.name.removesuffix("_bucket")
            for (name, label, value), title in STAGES.items():
                if base == name and (not label or sample.labels.get(label) == value):
                    buckets.setdefault(title, []).append(
                        (float(sample.labels["le"]), float(sample.value)))
    out: dict[str, tuple[int, float | None, float | None]] = {}
    for title, rows in buckets.items():
        rows.sort()
        total = rows[-1][1] if rows else 0.0

        def q(p: float, rows: list[tuple[float, float]] = rows, total: float = total
              ) -> float | None:
            if not total:
                return None
            return next((le for le, n in rows if n >= p * total), None)

        out[title] = (int(total), q(0.5), q(0.99))
    return out


def _wait_healthy(ports: dict[str, int], since: float, timeout: float
                  ) -> dict[str, float | None]:
    """Seconds from ``since`` until each service's /health first said 200 (None: never),
    all polled together so one slow service does not hide another's time."""
    ready: dict[str, float | None] = dict.fromkeys(ports)
    while time.monotonic() - since < timeout and None in ready.values():
        for name, port in ports.items():
            if ready[name] is not None:
                continue
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        ready[name] = time.monotonic() - since
            except OSError:
                pass
        time.sleep(0.1)
    return ready


PEER_ACCOUNT = "svc-peer"  # the Node-RED peer: reads the uplink, writes nothing


def _provision(stack: Stack, presses: int, hook_url: str, peer_pw: str
               ) -> tuple[str, dict[str, str]]:
    loadgen_pw = secrets.token_urlsafe(18)
    devices: dict[str, str] = {}
    with session_factory(stack.database_url).begin() as s:
        registry.ensure_service_account(s, "svc-loadgen", "loadgen", loadgen_pw)
        registry.ensure_service_account(s, PEER_ACCOUNT, "operator", peer_pw)
        registry.add_site(s, SITE, "latency probes")
        for i in range(presses):
            home = f"lat-h{i:03d}"
            registry.add_home(s, home, SITE)
            _, devices[f"btn-lat{i:03d}"] = registry.add_device(
                s, f"btn-lat{i:03d}", SITE, home, "button", power="battery")
        registry.add_user(s, "lat-responder", "responder", site_id=SITE, locale="en")
        registry.add_contact(s, "lat-responder", "webhook", hook_url)
    stack.sync_broker()
    return loadgen_pw, devices


def _service_env(stack: Stack, account: str, extra: dict[str, str]) -> dict[str, str]:
    mqtt, influx = stack.mqtt_settings(account), stack.influx_settings()
    assert mqtt.password is not None and influx.password is not None
    return {**os.environ, "DOLBOM_DATABASE_URL": stack.database_url,
            "DOLBOM_MQTT__PORT": str(mqtt.port), "DOLBOM_MQTT__USERNAME": account,
            "DOLBOM_MQTT__PASSWORD": mqtt.password.get_secret_value(),
            "DOLBOM_INFLUX__URL": influx.url, "DOLBOM_INFLUX__USERNAME": "ingest",
            "DOLBOM_INFLUX__PASSWORD": influx.password.get_secret_value(), **extra}


async def _measure(stack: Stack, devices: dict[str, str], received: dict[str, float],
                   duration: float, acked: dict[str, float]) -> dict[str, float]:
    published: dict[str, float] = {}
    gap = duration / (len(devices) + 1)
    for i, (dev, pw) in enumerate(devices.items()):
        await asyncio.sleep(gap)
        async with Client("127.0.0.1", stack.mosquitto.port, dev, username=dev,
                          password=pw) as c:
            home = f"lat-h{i:03d}"
            await c.subscribe([(stack.topics.ack(SITE, dev), 1)])
            published[home] = time.time()
            await c.publish(stack.topics.event(SITE, dev, "button"),
                            encode_event(Envelope(1, 1, int(time.time() * 1000), 2)), qos=1)
            with contextlib.suppress(TimeoutError, MqttError):
                async with asyncio.timeout(min(gap, 5.0)):
                    async for _ack in c.messages():
                        acked[home] = time.time()
                        c.ack(_ack)
                        break
    for _ in range(100):  # wait up to 10 s for the last notices
        if len(received) >= len(published):
            break
        await asyncio.sleep(0.1)
    return published


async def _broker_ready(stack: Stack, user: str, password: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with Client("127.0.0.1", stack.mosquitto.port, f"ready-{secrets.token_hex(3)}",
                              username=user, password=password):
                return
        except MqttError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


def _counter(port: int, name: str) -> float:
    """A counter's value from a service's /metrics (summed over its labels); 0 if it
    cannot be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of each process with its descendants, from /proc."""
    children = children_map()
    return {name: sum(cpu_seconds(p) for p in tree(pid, children)) if pid else 0.0
            for name, pid in pids.items()}


def _postgres(base: Path) -> tuple[Postgres, str]:
    """A PostgreSQL of its own for the registry and alert journal; returns (server, URL)."""
    import psycopg

    pw = secrets.token_urlsafe(18)
    pg = Postgres(base / "postgres")
    pg.prepare(pw)
    pg.start()
    try:
        deadline = time.monotonic() + 60
        while True:  # it listens before it accepts ("the database system is starting up")
            try:
                conn = psycopg.connect(host="127.0.0.1", port=pg.port, user="dolbom_admin",
                                       password=pw, dbname="postgres", autocommit=True)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        with conn:
            conn.execute('CREATE DATABASE "dolbom"')
    except BaseException:
        pg.stop()  # ours: never left running
        raise
    return pg, pg.url("dolbom_admin", pw, "dolbom")


PEER_DB = "peer"
PEER_READY_S = 90.0


def _peer_phase(stack: Stack, gen: LoadGen, base: Path, rate: int, seconds: int,
                first_index: int, loadgen_pw: str, peer_pw: str) -> PeerResult:
    """The Node-RED peer on this run's broker and InfluxDB, Dolbom's services stopped,
    at the same rate for ``seconds``: its CPU per message offered (DESIGN.md §7's peer)."""
    from dolbom.bench.accounts import Account, Accounts, add_influx_writer
    from dolbom.bench.errors import BenchError
    from dolbom.bench.runner import wait_ready
    from dolbom.bench.targets import NodeRedPeer, Servers

    peer = NodeRedPeer()
    try:
        peer.prepare(base, Fleet(1))  # installs Node-RED with npm on the first run
        admin = stack.influx_admin()
        admin.query(f'CREATE DATABASE "{PEER_DB}"', method="POST")
        writer = Account("peer", secrets.token_urlsafe(18))
        add_influx_writer(admin, PEER_DB, writer)
        peer.start_on("127.0.0.1", stack.mosquitto.port, Account(PEER_ACCOUNT, peer_pw),
                      stack.influx.port, writer, PEER_DB)
        # ready when a probe message is a point in its database
        accounts = Accounts(Account("svc-loadgen", loadgen_pw), Account("-", "-"),
                            Account(PEER_ACCOUNT, peer_pw), stack.influx_users, writer)
        wait_ready(Servers("127.0.0.1", stack.mosquitto.port, stack.influx.url,
                           stack.influx.port, PEER_DB, accounts, stack.topics.prefix),
                   Fleet(1), admin, PEER_READY_S)
        plan = StepPlan(rate, seconds, first_index, 4)
        gen.prepare(plan)
        start_at = math.ceil(time.time()) + 2
        pids = {"node-red": peer.proc.pid if peer.proc else 0,
                "broker": stack.mosquitto.proc.pid if stack.mosquitto.proc else 0,
                "influxdb": stack.influx.proc.pid if stack.influx.proc else 0,
                "loadgen": gen.pid}
        time.sleep(max(0.0, start_at - 1 - time.time()))
        before = _cpu(pids)
        offered = gen.run(start_at).offered_rate
        time.sleep(2.0)  # the last second's join node flushes to InfluxDB
        used = {k: v - before[k] for k, v in _cpu(pids).items()}
        msgs = offered * seconds
        return PeerResult(seconds, offered,
                          {k: v / msgs * 1e6 for k, v in used.items()} if msgs else {},
                          peer.error_count())
    except (BenchError, OSError, RuntimeError, subprocess.SubprocessError) as e:
        return PeerResult(seconds, 0.0, {}, 0, failed=str(e))
    finally:
        peer.stop()


INGEST_MEMORY_DEVICES = 60_000  # enough for a steady figure per device (docs/ingest.md)


def ingest_memory(homes: int) -> tuple[int, float]:
    """(devices measured, bytes per device) that ingest holds, for the fleet's homes × 6
    devices or ``INGEST_MEMORY_DEVICES``, whichever is fewer (tracemalloc is slow)."""
    from dolbom.bench.fleet import DEVICES_PER_HOME
    from dolbom.bench.ingest_memory import measure_ingest_memory

    n = min(homes * DEVICES_PER_HOME, INGEST_MEMORY_DEVICES)
    return n, measure_ingest_memory(n, DEVICES_PER_HOME).bytes_per_device


def run(homes: int, rate: int, duration: int, presses: int,
        database: str = "sqlite", peer_seconds: int = 30) -> LatencyResult:
    base = Path(tempfile.mkdtemp(prefix="bench-alerts-", dir=runtime_root()))
    base.chmod(0o711)
    pg: Postgres | None = None
    url = None
    if database == "postgresql":
        try:
            pg, url = _postgres(base)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
    stack = Stack(base, database_url=url)
    procs: list[subprocess.Popen[bytes]] = []
    gen: LoadGen | None = None
    received: dict[str, float] = {}
    raised: dict[str, float] = {}
    acked: dict[str, float] = {}
    try:
        print(f"starting servers under {base} ...", flush=True)
        stack.up()

        loop = asyncio.new_event_loop()
        secret = stack.secrets.webhook_secret.encode()

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            if verify(body, secret, request.headers.get("X-Dolbom-Signature", "")):
                now = time.time()
                notice = orjson.loads(body)
                home = notice.get("home")
                if isinstance(home, str):
                    received.setdefault(home, now)
                    with contextlib.suppress(TypeError, ValueError):
                        raised.setdefault(
                            home, datetime.fromisoformat(notice["raised_at"]).timestamp())
            return web.Response(status=204)

        port = free_port()

        async def serve() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            return runner

        runner = loop.run_until_complete(serve())
        peer_pw = secrets.token_urlsafe(18)
        loadgen_pw, devices = _provision(stack, presses, f"http://127.0.0.1:{port}/hook",
                                         peer_pw)
        # The fleet is registered after the broker files are written: its devices never
        # log in themselves (the load generator publishes for them), and a password file
        # and ACL of 300,000 devices take Mosquitto minutes to load (see docs/benchmarks.md).
        print(f"registering {homes} homes x 6 devices ...", flush=True)
        seed_registry(stack.database_url, Fleet(homes))
        alerts_metrics, alarm_metrics, ingest_metrics = free_port(), free_port(), free_port()
        started = time.monotonic()
        for argv, account, extra in (
            (["ingest", "run"], "svc-ingest",
             {"DOLBOM_SPOOL_DIR": str(base / "spool"),
              "DOLBOM_METRICS_PORT": str(ingest_metrics)}),
            (["alerts", "run"], "svc-alerts",
             {"DOLBOM_NOTIFY__WEBHOOK_SECRET": stack.secrets.webhook_secret,
              "DOLBOM_ALERTS__METRICS_PORT": str(alerts_metrics),
              "DOLBOM_ALERTS__ALARM_METRICS_PORT": str(alarm_metrics)}),
        ):
            log = open(base / f"{argv[0]}.log", "ab")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen([sys.executable, "-m", "dolbom.cli", *argv],
                                          env=_service_env(stack, account, extra),
                                          stdout=log, stderr=subprocess.STDOUT))
        # Mosquitto re-reads a password file and ACL with the whole fleet after the
        # provisioning above: wait (bounded) until it takes logins again.
        loop.run_until_complete(_broker_ready(stack, "svc-loadgen", loadgen_pw, 300))
        # start -> consuming (DESIGN.md §7: <= 10 s): registry loaded, sessions up
        ready_s = _wait_healthy({"ingest": ingest_metrics, "alerts": alerts_metrics,
                                 "alarms": alarm_metrics}, started, 300)
        fleet = Fleet(homes)
        gen = LoadGen.start(LoadGenConfig("127.0.0.1", stack.mosquitto.port, "svc-loadgen",
                                          loadgen_pw, fleet))
        plan = StepPlan(rate, duration, 0, 4)
        gen.prepare(plan)
        start_at = math.ceil(time.time()) + 2
        offered: list[float] = []

        def load() -> None:
            assert gen is not None
            offered.append(gen.run(start_at).offered_rate)

        t = threading.Thread(target=load, name="loadgen")
        t.start()
        time.sleep(max(0.0, start_at - time.time()))
        pids = {"ingest": procs[0].pid, "alerts (rules + alarm process)": procs[1].pid,
                "broker": stack.mosquitto.proc.pid if stack.mosquitto.proc else 0,
                "influxdb": stack.influx.proc.pid if stack.influx.proc else 0,
                "loadgen": gen.pid}
        cpu_before = _cpu(pids)
        counters = {"ingest": (ingest_metrics, "dolbom_ingest_messages_total"),
                    "rules stream": (alerts_metrics, "dolbom_alerts_stream_messages_total")}
        taken_before = {k: _counter(port, name) for k, (port, name) in counters.items()}
        print(f"offering {rate} msg/s for {duration} s with {presses} button presses ...",
              flush=True)
        published = loop.run_until_complete(
            _measure(stack, devices, received, duration, acked))
        t.join(duration + 120)
        cpu_used = {k: v - cpu_before[k] for k, v in _cpu(pids).items()}
        taken = {k: _counter(port, name) - taken_before[k]
                 for k, (port, name) in counters.items()}
        loop.run_until_complete(runner.cleanup())
        loop.close()
        lat = [(received[h] - published[h]) * 1000 for h in published if h in received]
        stages: dict[str, tuple[int, float | None, float | None]] = {}
        # the alarm path's stages from the alarm process; each process's loop lag
        for name, port in (("alarm process", alarm_metrics), ("rules process", alerts_metrics)):
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                    found = stage_quantiles(resp.read().decode())
            except OSError as e:
                print(f"{name} metrics unavailable: {e}", flush=True)
                continue
            for title, value in found.items():
                if title == LOOP_LAG:
                    stages[f"{title} ({name})"] = value
                elif name == "alarm process":
                    stages[title] = value
        def after(t: dict[str, float], home: str) -> float | None:
            return (t[home] - published[home]) * 1000 if home in t else None

        traces = {h: Trace(after(raised, h), after(acked, h), after(received, h))
                  for h in published}
        offered_msgs = (offered[0] if offered else rate) * duration
        peer = None
        if peer_seconds > 0:
            for p in procs:  # the peer runs alone on the servers, as ours did
                stop(p)
            print(f"the Node-RED peer: {rate} msg/s for {peer_seconds} s on the same "
                  "servers ...", flush=True)
            peer = _peer_phase(stack, gen, base, rate, peer_seconds, plan.messages,
                               loadgen_pw, peer_pw)
        return LatencyResult(rate, homes, offered[0] if offered else 0.0, len(published),
                             len(lat), _pct(lat, 50), _pct(lat, 99), max(lat, default=None),
                             measure_rule_memory(min(homes, 20_000)).total_bytes_per_home,
                             stages, ready_s, traces,
                             {k: v / offered_msgs * 1e6 for k, v in cpu_used.items()},
                             taken, offered_msgs, cpu_used, peer,
                             ingest_memory(homes))
    finally:
        if gen is not None:
            gen.stop()
        for p in procs:
            stop(p)
        stack.down()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def _cmd(args: argparse.Namespace) -> int:
    r = run(args.homes, args.rate, args.duration, args.presses, args.database,
            args.peer_seconds)

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f} ms"

    print(f"\nlife-safety latency (device publish -> signed webhook received), "
          f"{r.homes} homes x 6 devices, offered {r.offered_rate:,.0f} msg/s "
          f"(asked {r.rate:,}), registry on {args.database}:")
    print(f"  presses {r.presses}, notified {r.received}: p50 {ms(r.p50_ms)}  "
          f"p99 {ms(r.p99_ms)}  max {ms(r.max_ms)}   (goal: p99 <= 100 ms)")
    for title, (n, p50, p99) in r.stages.items():
        print(f"  {title:<18} n={n:<7} p50 <= {ms(p50 * 1000 if p50 is not None else None)}"
              f"  p99 <= {ms(p99 * 1000 if p99 is not None else None)}")
    segments = {"publish -> taken up by the alarm process": [t.taken_ms for t in r.traces.values()],
                "publish -> ack at the device": [t.acked_ms for t in r.traces.values()],
                "publish -> webhook received": [t.told_ms for t in r.traces.values()]}
    print("  each press traced (ms after its publish, this machine's clock):")
    for title, values in segments.items():
        seen = [v for v in values if v is not None]
        print(f"    {title:<42} n={len(seen):<3} p50 {ms(_pct(seen, 50))}  "
              f"p99 {ms(_pct(seen, 99))}")
    slowest = sorted(r.traces.items(), key=lambda kv: kv[1].told_ms or math.inf)[-3:]
    for home, t in slowest:
        print(f"    slowest: {home}: taken up {ms(t.taken_ms)}, acked {ms(t.acked_ms)}, "
              f"told {ms(t.told_ms)}")
    print("  CPU per message offered (user + system, /proc):")
    for name, us in r.cpu_us_per_msg.items():
        print(f"    {name:<32} {us:6.1f} µs")
    for name, count in r.taken.items():
        share = count / r.offered_msgs * 100 if r.offered_msgs else 0.0
        print(f"  taken by {name}: {count:,.0f} of {r.offered_msgs:,.0f} offered ({share:.0f} %)")
    rules_cpu = r.cpu_s.get("alerts (rules + alarm process)")
    ingest_cpu = r.cpu_s.get("ingest")
    if r.taken.get("rules stream") and rules_cpu is not None:
        print(f"  CPU per message taken: rules + alarm process "
              f"{rules_cpu / r.taken['rules stream'] * 1e6:.1f} µs"
              + (f", ingest {ingest_cpu / r.taken['ingest'] * 1e6:.1f} µs"
                 if r.taken.get("ingest") and ingest_cpu is not None else ""))
    servers = sum(r.cpu_us_per_msg.get(k, 0.0) for k in ("broker", "influxdb", "loadgen"))
    everything = sum(r.cpu_us_per_msg.values())
    if servers > 0 and everything > 0:
        cores = os.cpu_count() or 1
        ceiling, whole = cores * 1e6 / servers, cores * 1e6 / everything
        print(f"  ceiling: broker + InfluxDB + load generator alone would fill {cores} cores "
              f"at {ceiling:,.0f} msg/s; with Dolbom's services {whole:,.0f} msg/s: "
              f"{whole / ceiling * 100:.0f} % of the ceiling (goal >= 80 %)")
    _print_peer(r)
    for name, secs in r.ready_s.items():
        took = "never" if secs is None else f"{secs:.1f} s"
        print(f"  {name} start -> consuming: {took} (goal <= 10 s)")
    print(f"  rule state + configuration per home: {r.rule_bytes_per_home:.0f} B "
          "(goal <= 1024 B)")
    if r.ingest_memory is not None:
        n, per_device = r.ingest_memory
        print(f"  ingest holds {per_device:.0f} B per device ({n:,} devices measured with "
              "tracemalloc; goal <= 256 B)")
    return 0 if r.received == r.presses else 1


def _print_peer(r: LatencyResult) -> None:
    p = r.peer
    if p is None:
        print("  the Node-RED peer: not run (--peer-seconds 0)")
        return
    if p.failed is not None:
        print(f"  the Node-RED peer: not measured: {p.failed}")
        return
    ours = sum(r.cpu_us_per_msg.get(k, 0.0) for k in ("ingest", "alerts (rules + alarm process)"))
    print(f"  the Node-RED peer (no rules, no registry), same servers, {p.seconds} s at "
          f"{p.offered_rate:,.0f} msg/s offered: node-red "
          f"{p.cpu_us_per_msg.get('node-red', 0.0):.1f} µs per message, against Dolbom's "
          f"ingest {r.cpu_us_per_msg.get('ingest', 0.0):.1f} µs and ingest + rules + alarm "
          f"{ours:.1f} µs (broker {p.cpu_us_per_msg.get('broker', 0.0):.1f} µs, InfluxDB "
          f"{p.cpu_us_per_msg.get('influxdb', 0.0):.1f} µs with new series)"
          + (f"; {p.errors} Node-RED error lines (lost batches)" if p.errors else ""))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-alerts",
                       help="life-safety latency under fleet load; rule memory per home")
    p.add_argument("--homes", type=int, default=50_000)
    p.add_argument("--rate", type=int, default=10_000, help="fleet load, msg/s")
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--presses", type=int, default=30)
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite",
                   help="the registry and alert journal: SQLite (default) or a PostgreSQL "
                        "of the benchmark's own, as a fleet this size would run")
    p.add_argument("--peer-seconds", type=int, default=30,
                   help="then run the Node-RED peer alone on the same servers at the same "
                        "rate for this long, for its CPU per message (0: not at all; the "
                        "first run installs it with npm)")
    p.set_defaults(func=_cmd)
