"""The systems under test: Dolbom's ingest, and the Node-RED peer.

Each is started as its own process, by PID, against the run's fresh Mosquitto
and InfluxDB, with its own broker account (read ``care/v1/#``) and its own
InfluxDB write user, and stopped by that PID.

    dolbom  ``dolbom ingest run`` configured by DOLBOM_* variables, with the
            fleet registered in its registry database (SQLite) first
    peer    Node-RED 4 (``bench/peer``: package.json + package-lock.json,
            flows.json, settings.js), installed with ``npm ci`` on first use
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from dolbom.bench.accounts import Account, Accounts
from dolbom.bench.errors import BenchError
from dolbom.bench.fleet import DEVICES_PER_HOME, HOME, Fleet
from dolbom.stack import proc

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PEER_DIR = REPO / "bench" / "peer"
SEED_CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class Servers:
    """Where the run's fresh servers listen, and who may use them."""

    mqtt_host: str
    mqtt_port: int
    influx_url: str
    influx_port: int
    database: str
    accounts: Accounts
    prefix: str


class Target(Protocol):
    name: str

    def prepare(self, run_dir: Path, fleet: Fleet) -> None: ...

    def start(self, servers: Servers) -> None: ...

    def processes(self) -> dict[str, int]: ...

    def stop(self) -> None: ...


def _popen(argv: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None
           ) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                start_new_session=True)


# --------------------------------------------------------------------------
# Dolbom


def seed_registry(url: str, fleet: Fleet) -> float:
    """Register the whole fleet (sites, homes, devices) in bulk; returns the seconds it took.

    SQLAlchemy Core executemany in chunks: 1.8 M devices in well under a minute.
    Every device gets the same (unused) broker hash: the devices never connect
    themselves in the benchmark, and 1.8 M PBKDF2 hashes would take minutes.
    """
    from sqlalchemy import insert

    from dolbom.registry.broker import mosquitto_hash
    from dolbom.registry.db import make_engine, migrate
    from dolbom.registry.models import Base, HomeMode, Power

    t = time.monotonic()
    migrate(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    dummy_hash = mosquitto_hash(os.urandom(18).hex())
    sites, homes, devices = (Base.metadata.tables[n] for n in ("sites", "homes", "devices"))
    try:
        with engine.begin() as conn:
            conn.execute(insert(sites), [{"id": fleet.site_id(s), "name": f"Bench centre {s}"}
                                        for s in range(fleet.sites)])
            for lo in range(0, fleet.homes, SEED_CHUNK):
                conn.execute(insert(homes), [
                    {"id": fleet.home_id(h), "site_id": fleet.site_id(h // fleet.homes_per_site),
                     "label": "", "mode": HomeMode.NORMAL}
                    for h in range(lo, min(fleet.homes, lo + SEED_CHUNK))])
            for lo in range(0, fleet.devices, SEED_CHUNK):
                conn.execute(insert(devices), [
                    {"id": fleet.device_id(d), "site_id": fleet.site_id(fleet.site_of(d)),
                     "home_id": fleet.home_id(d // DEVICES_PER_HOME),
                     "kind": HOME[d % DEVICES_PER_HOME].kind, "power": Power.MAINS, "hb_s": 60,
                     "mqtt_hash": dummy_hash, "created_at": now}
                    for d in range(lo, min(fleet.devices, lo + SEED_CHUNK))])
    finally:
        engine.dispose()
    return time.monotonic() - t


class DolbomIngest:
    """``dolbom ingest run``; with ``workers`` > 1, that many workers sharing the stream
    on ``$share/bench/`` (docs/scale.md), each with its own client id, spool and metrics
    endpoint, measured as ``ingest-1``, ``ingest-2``, ..."""

    name = "dolbom"
    SHARE_GROUP = "bench"

    def __init__(self, batch_size: int | None = None, flush_interval_s: float | None = None,
                 workers: int = 1) -> None:
        if workers < 1:
            raise BenchError(f"ingest workers must be 1 or more, not {workers}")
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.workers = workers
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.metrics_ports: dict[str, int] = {}
        self.dir: Path | None = None
        self.seed_s = 0.0

    @property
    def db_url(self) -> str:
        assert self.dir is not None
        return f"sqlite:///{self.dir / 'registry.db'}"

    def worker_names(self) -> list[str]:
        return (["ingest"] if self.workers == 1
                else [f"ingest-{i}" for i in range(1, self.workers + 1)])

    def prepare(self, run_dir: Path, fleet: Fleet) -> None:
        self.dir = run_dir / "ingest"
        self.dir.mkdir(parents=True, exist_ok=True)
        log.info("registering %d devices of %d homes in the registry", fleet.devices,
                 fleet.homes)
        self.seed_s = seed_registry(self.db_url, fleet)
        log.info("registry ready in %.0f s", self.seed_s)

    def start(self, servers: Servers) -> None:
        assert self.dir is not None, "prepare first"
        a = servers.accounts
        base = dict(os.environ)
        base.update({
            "DOLBOM_DATABASE_URL": self.db_url,
            "DOLBOM_MQTT__HOST": servers.mqtt_host,
            "DOLBOM_MQTT__PORT": str(servers.mqtt_port),
            "DOLBOM_MQTT__USERNAME": a.ingest.name,
            "DOLBOM_MQTT__PASSWORD": a.ingest.password,
            "DOLBOM_MQTT__TOPIC_PREFIX": servers.prefix,
            "DOLBOM_INFLUX__URL": servers.influx_url,
            "DOLBOM_INFLUX__DATABASE": servers.database,
            "DOLBOM_INFLUX__USERNAME": a.influx.ingest[0],
            "DOLBOM_INFLUX__PASSWORD": a.influx.ingest[1],
            "DOLBOM_METRICS_HOST": "127.0.0.1",
        })
        if self.batch_size is not None:
            base["DOLBOM_BATCH_SIZE"] = str(self.batch_size)
        if self.flush_interval_s is not None:
            base["DOLBOM_FLUSH_INTERVAL_S"] = str(self.flush_interval_s)
        for name in self.worker_names():
            port = self.metrics_ports[name] = proc.free_port()
            env = {**base, "DOLBOM_SPOOL_DIR": str(self.dir / f"spool-{name}"),
                   "DOLBOM_METRICS_PORT": str(port)}
            if self.workers > 1:
                env.update({"DOLBOM_SHARE_GROUP": self.SHARE_GROUP,
                            "DOLBOM_CLIENT_ID": f"dolbom-{name}"})
            self.procs[name] = _popen([sys.executable, "-m", "dolbom.cli", "ingest", "run"],
                                      self.dir / f"{name}.log", env, cwd=self.dir)
        for name, p in self.procs.items():
            proc.wait_port(self.metrics_ports[name], p, 300, f"dolbom {name}",
                           self.dir / f"{name}.log")

    def metrics(self) -> dict[str, float]:
        """The ingest's Prometheus counters, summed over labels and workers; with several
        workers also each worker's, as ``<worker>/<counter>``."""
        out: dict[str, float] = {}
        for name, port in self.metrics_ports.items():
            for key, value in _scrape(port).items():
                out[key] = out.get(key, 0.0) + value
                if self.workers > 1:
                    out[f"{name}/{key}"] = value
        return out

    def processes(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def stop(self) -> None:
        for p in self.procs.values():
            proc.stop(p, timeout=30)


def _scrape(port: int) -> dict[str, float]:
    """A Prometheus endpoint's counters, summed over labels."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        try:
            out[base] = out.get(base, 0.0) + float(value)
        except ValueError:
            continue
    return out


# --------------------------------------------------------------------------
# Node-RED peer


def ensure_node() -> str:
    """The ``node`` executable; installs Debian's nodejs and npm when it is missing."""
    node = shutil.which("node")
    if node and shutil.which("npm"):
        return node
    if os.geteuid() != 0:
        raise BenchError("node and npm are missing: sudo apt-get install -y nodejs npm")
    log.info("installing Debian packages nodejs npm")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nodejs",
                    "npm"], check=True, env=env)
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is still missing after installing nodejs")
    return node


def ensure_peer_installed(peer_dir: Path = PEER_DIR) -> Path:
    """``npm ci`` into ``peer_dir`` (registry packages only) unless already installed."""
    ensure_node()
    red = peer_dir / "node_modules" / "node-red" / "red.js"
    influx = peer_dir / "node_modules" / "node-red-contrib-influxdb" / "package.json"
    if red.exists() and influx.exists():
        return red
    npm = shutil.which("npm")
    assert npm is not None
    how = "ci" if (peer_dir / "package-lock.json").exists() else "install"
    log.info("installing the Node-RED peer: npm %s in %s", how, peer_dir)
    r = subprocess.run([npm, how, "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=peer_dir, capture_output=True, text=True, check=False)
    if r.returncode or not red.exists():
        raise BenchError(f"npm {how} failed in {peer_dir}: {r.stderr.strip()[-2000:]}")
    return red


def peer_versions(peer_dir: Path = PEER_DIR) -> dict[str, str]:
    out = {}
    for pkg in ("node-red", "node-red-contrib-influxdb"):
        p = peer_dir / "node_modules" / pkg / "package.json"
        if p.exists():
            out[pkg] = str(json.loads(p.read_text()).get("version", "?"))
    node = shutil.which("node")
    if node:
        r = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
        out["node"] = r.stdout.strip()
    return out


class NodeRedPeer:
    name = "peer"

    def __init__(self, peer_dir: Path = PEER_DIR) -> None:
        self.peer_dir = peer_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None
        self.red: Path | None = None

    def prepare(self, run_dir: Path, fleet: Fleet) -> None:
        self.red = ensure_peer_installed(self.peer_dir)
        self.dir = run_dir / "peer"
        self.dir.mkdir(parents=True, exist_ok=True)

    def start(self, servers: Servers) -> None:
        a = servers.accounts
        self.start_on(servers.mqtt_host, servers.mqtt_port, a.peer, servers.influx_port,
                      a.influx_peer, servers.database)

    def start_on(self, mqtt_host: str, mqtt_port: int, mqtt: Account, influx_port: int,
                 influx: Account, database: str) -> None:
        """Start Node-RED on a broker and an InfluxDB (loopback) with these accounts."""
        assert self.dir is not None and self.red is not None, "prepare first"
        flows = json.loads((self.peer_dir / "flows.json").read_text())
        ids = {n.get("type"): n["id"] for n in flows}
        (self.dir / "flows.json").write_text(json.dumps(flows, indent=2))
        cred = self.dir / "flows_cred.json"
        cred.write_text(json.dumps({
            ids["mqtt-broker"]: {"user": mqtt.name, "password": mqtt.password},
            ids["influxdb"]: {"username": influx.name, "password": influx.password},
        }))
        cred.chmod(0o600)
        env = dict(os.environ)
        env.update({
            "DOLBOM_PEER_PORT": str(proc.free_port()),
            "DOLBOM_PEER_MQTT_HOST": mqtt_host,
            "DOLBOM_PEER_MQTT_PORT": str(mqtt_port),
            "DOLBOM_PEER_INFLUX_HOST": "127.0.0.1",
            "DOLBOM_PEER_INFLUX_PORT": str(influx_port),
            "DOLBOM_PEER_INFLUX_DB": database,
        })
        node = ensure_node()
        self.proc = _popen([node, str(self.red), "--settings", str(self.peer_dir / "settings.js"),
                            "--userDir", str(self.dir)], self.dir / "node-red.log", env,
                           cwd=self.dir)
        time.sleep(1.0)
        if self.proc.poll() is not None:
            raise BenchError(f"Node-RED exited at start-up; see {self.dir / 'node-red.log'}")

    def error_count(self) -> int:
        """Error lines Node-RED logged (a failed InfluxDB write is one, and its batch is lost)."""
        if self.dir is None or not (self.dir / "node-red.log").exists():
            return 0
        errors = [line for line in (self.dir / "node-red.log").read_text(errors="replace")
                  .splitlines() if "[error]" in line]
        if errors:
            log.warning("Node-RED: %d error lines; last: %s", len(errors), errors[-1][:300])
        return len(errors)

    def processes(self) -> dict[str, int]:
        return {"node-red": self.proc.pid} if self.proc is not None else {}

    def stop(self) -> None:
        proc.stop(self.proc, timeout=15)
