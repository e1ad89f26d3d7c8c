"""Two of everything on one machine (docs/scale.md): a central PostgreSQL primary with a
streaming standby, and N cells, each a Mosquitto and an InfluxDB (``Stack``), its broker
kept in step with the registry by ``dolbom registry sync-broker --cell C --watch``, two
ingest workers sharing its stream on ``$share/`` and an active and a standby alert
service. ``dolbom stack-cells`` runs it until Ctrl-C; the tests use ``Cells`` directly.

    <dir>/pg-primary, <dir>/pg-standby   the central registry and alert journal
    <dir>/cell-<name>/                   a cell's servers (``Stack``) and its services' spools
    <dir>/secrets.json                   the PostgreSQL superuser's password (0600)

Each cell's endpoints (its broker's TLS listener, its InfluxDB) are registered in the
registry's ``cells`` table at every start, so devices, gateways and the API follow a
site's cell. Every cell's InfluxDB has the same read-only ``dashboard`` password (the
API reads them all with one set of credentials).

Every process is started here and stopped here, by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dolbom.files import runtime_root
from dolbom.stack import proc
from dolbom.stack.errors import StackError
from dolbom.stack.postgres import Postgres, failover_url
from dolbom.stack.stack import BROKER_HOSTS, SERVICE_ACCOUNTS, Secrets, Stack
from dolbom.stack.stack import DATABASE as INFLUX_DATABASE

DATABASE = "dolbom"
APP_ROLE = "dolbom_app"  # the services' PostgreSQL role (owner of DATABASE only)


@dataclass
class Cell:
    name: str
    stack: Stack
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # metrics port per service
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)


def _private_json(path: Path, data: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)


class Cells:
    def __init__(self, directory: Path, names: list[str], webhook_secret: str = "") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o711)
        self.names = names
        path = self.dir / "secrets.json"
        if path.exists():
            saved = json.loads(path.read_text())
        else:
            saved = {"pg": secrets.token_urlsafe(18), "replicator": secrets.token_urlsafe(18),
                     "mqtt": {n: secrets.token_urlsafe(24) for n in SERVICE_ACCOUNTS},
                     "webhook": webhook_secret or secrets.token_hex(32)}
            _private_json(path, saved)
        if "dashboard" not in saved:  # made before the cells shared one reader password
            saved["dashboard"] = secrets.token_urlsafe(24)
            _private_json(path, saved)
        if "app" not in saved:  # made before the services had a role of their own
            saved["app"] = secrets.token_urlsafe(18)
            _private_json(path, saved)
        self.app_password: str = saved["app"]
        self.dashboard_password: str = saved["dashboard"]
        self.pg_password, self.replicator = saved["pg"], saved["replicator"]
        self.webhook_secret = webhook_secret or saved["webhook"]
        self.primary = Postgres(self.dir / "pg-primary")
        self.standby = Postgres(self.dir / "pg-standby")
        # the services' role: it owns the registry database, nothing more (no superuser,
        # no other database, no roles); the superuser only sets the servers up
        self.database_url = failover_url([self.primary, self.standby], APP_ROLE,
                                         self.app_password, DATABASE)
        self.cells: list[Cell] = []
        for name in names:
            cdir = self.dir / f"cell-{name}"
            cdir.mkdir(exist_ok=True)
            if not (cdir / "secrets.json").exists():
                # the service accounts are central (the registry): one password each
                Secrets(secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                        self.dashboard_password, dict(saved["mqtt"]),
                        {"mqtt": proc.free_port(), "mqtts": proc.free_port(),
                         "influx": proc.free_port()},
                        self.webhook_secret).save(cdir / "secrets.json")
            self.cells.append(Cell(name, Stack(cdir, database_url=self.database_url,
                                               cell=name)))

    # -- servers ---------------------------------------------------------------------
    def up(self) -> None:
        """PostgreSQL primary and standby, then each cell's servers and services."""
        from dolbom.registry.db import migrate

        self.primary.prepare(self.pg_password)
        self.primary.start()
        self.primary.add_replicator(self.pg_password, self.replicator)
        self._create_database()
        self.standby.prepare_standby(self.primary, self.replicator)
        self.standby.start()
        # a journalled (so acked) alarm must outlive the primary: commits wait for the
        # standby (docs/scale.md, "PostgreSQL primary and streaming standby")
        self.primary.require_synchronous(self.pg_password, [self.standby])
        migrate(self.database_url)
        for cell in self.cells:
            cell.stack.up()
        self.register_endpoints()
        for cell in self.cells:
            self._start_services(cell)

    def register_endpoints(self) -> None:
        """Each cell's broker (its TLS listener) and InfluxDB into the ``cells`` table."""
        from dolbom.registry.cells import put_cell
        from dolbom.registry.db import session_factory

        with session_factory(self.database_url).begin() as session:
            for cell in self.cells:
                tls_port = cell.stack.mosquitto.tls_port
                assert tls_port is not None  # a Stack's broker always has its TLS listener
                put_cell(session, cell.name, broker_host=BROKER_HOSTS[0], broker_port=tls_port,
                         influx_url=cell.stack.influx.url, influx_db=INFLUX_DATABASE)

    def _create_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(host="127.0.0.1", port=self.primary.port, user="dolbom_admin",
                             password=self.pg_password, dbname="postgres",
                             autocommit=True) as conn:
            verb = "ALTER" if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                           (APP_ROLE,)).fetchone() else "CREATE"
            conn.execute(sql.SQL("{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                 "NOREPLICATION PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(APP_ROLE), sql.Literal(self.app_password)))
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(APP_ROLE)))

    def _env(self, cell: Cell, account: str) -> dict[str, str]:
        st = cell.stack
        mqtt, influx = st.mqtt_settings(account), st.influx_settings()
        assert mqtt.password is not None and influx.password is not None
        return {**os.environ,
                "DOLBOM_DATABASE_URL": self.database_url,
                "DOLBOM_MQTT__PORT": str(mqtt.port), "DOLBOM_MQTT__USERNAME": account,
                "DOLBOM_MQTT__PASSWORD": mqtt.password.get_secret_value(),
                "DOLBOM_INFLUX__URL": influx.url, "DOLBOM_INFLUX__USERNAME": "ingest",
                "DOLBOM_INFLUX__PASSWORD": influx.password.get_secret_value()}

    def restart(self, cell: Cell, name: str) -> None:
        """Start service ``name`` of ``cell`` again, as it was started (after a kill: what
        a deployment's supervisor, systemd ``Restart=always``, does)."""
        p = cell.services[name]
        if p.poll() is None:
            raise StackError(f"{cell.name}/{name} is still running (pid {p.pid})")
        self._spawn(cell, name, *cell.commands[name])

    def _spawn(self, cell: Cell, name: str, args: list[str], env: dict[str, str]) -> None:
        cell.commands[name] = (args, env)
        log = open(cell.stack.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            cell.services[name] = subprocess.Popen(
                [sys.executable, "-m", "dolbom.cli", *args], env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def _start_services(self, cell: Cell) -> None:
        files = cell.stack.mosquitto.files
        env = {**self._env(cell, "svc-ingest"),
               "DOLBOM_BROKER_PASSWD": str(files.passwd), "DOLBOM_BROKER_ACL": str(files.acl),
               "DOLBOM_BROKER_PID_FILE": str(files.pid_file)}
        if files.owner:
            env["DOLBOM_BROKER_OWNER"] = files.owner
        self._spawn(cell, "broker-sync", ["registry", "sync-broker", "--cell", cell.name,
                                          "--watch"], env)
        for i in (1, 2):
            port = cell.ports[f"ingest-{i}"] = proc.free_port()
            self._spawn(cell, f"ingest-{i}", ["ingest", "run"], {
                **self._env(cell, "svc-ingest"),
                "DOLBOM_CLIENT_ID": f"dolbom-ingest-{cell.name}-{i}",
                "DOLBOM_SHARE_GROUP": "ingest",
                "DOLBOM_SPOOL_DIR": str(cell.stack.dir / f"spool-{i}"),
                "DOLBOM_METRICS_PORT": str(port)})
        for role in ("a", "b"):  # two machines' worth: one active, one standing by
            port = cell.ports[f"alerts-{role}"] = proc.free_port()
            self._spawn(cell, f"alerts-{role}", ["alerts", "run"], {
                **self._env(cell, "svc-alerts"),
                "DOLBOM_NOTIFY__WEBHOOK_SECRET": self.webhook_secret,
                "DOLBOM_ALERTS__CELL": cell.name,
                "DOLBOM_ALERTS__ALARM_LOCK_FILE": str(cell.stack.dir / f"alarm-{role}.lock"),
                "DOLBOM_ALERTS__METRICS_PORT": str(port),
                "DOLBOM_ALERTS__ALARM_METRICS_PORT": str(proc.free_port())})
        # a dead worker's share piling up in this cell's broker: one technical alert
        port = cell.ports["broker-backlog"] = proc.free_port()
        self._spawn(cell, "broker-backlog", ["broker", "watch-backlog"], {
            **self._env(cell, "svc-operator"), "DOLBOM_BACKLOG__CELL": cell.name,
            "DOLBOM_BACKLOG__METRICS_PORT": str(port)})

    def down(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL), then the servers."""
        for cell in self.cells:
            for p in cell.services.values():
                if p.poll() is None:
                    p.terminate()
        deadline = time.monotonic() + 30
        for cell in self.cells:
            for p in cell.services.values():
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            cell.stack.down()
        self.standby.stop()
        self.primary.stop()


def _cmd(args: argparse.Namespace) -> int:
    names = [f"c{i}" for i in range(1, args.cells + 1)]
    cells = Cells(args.dir or runtime_root() / "cells", names)
    print(f"starting PostgreSQL primary + standby and {len(names)} cells in {cells.dir}",
          flush=True)
    try:
        cells.up()
        for c in cells.cells:
            print(f"cell {c.name}: broker 127.0.0.1:{c.stack.mosquitto.port} "
                  f"(TLS {c.stack.mosquitto.tls_port}), InfluxDB {c.stack.influx.url}; "
                  "services: " + ", ".join(f"{n} (pid {p.pid})"
                                           for n, p in c.services.items()), flush=True)
        print("add a site to a cell: dolbom site add ID --name NAME --cell c1 (with "
              f"DOLBOM_DATABASE_URL from {cells.dir}/secrets.json); the API reads every "
              "cell's InfluxDB as user dashboard (password \"dashboard\" in that file); "
              "Ctrl-C stops", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cells.down()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stack-cells", help="several cells and a PostgreSQL standby on this "
                       "machine (docs/scale.md)")
    p.add_argument("--cells", type=int, default=2, choices=range(1, 9), metavar="N")
    p.add_argument("--dir", type=Path, help="where their data lives (default: the runtime "
                   "directory's cells/)")
    p.set_defaults(func=_cmd)
