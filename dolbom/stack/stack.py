"""The whole development stack in one place: what ``./dev run`` and the tests start.

    <dir>/secrets.json   generated passwords (0600); reused on the next run
    <dir>/ca/            the local CA (``dolbom certs``): ca.crt, ca.key (0600), the
                         broker's certificate under services/
    <dir>/mosquitto/     broker config, passwd + ACL (from the registry), data, tls/
    <dir>/influxdb/      InfluxDB config, meta, data, wal
    <dir>/dolbom.db      the registry (SQLite)
    <dir>/spool/         ingest's disk spool

Running ``up`` twice is safe: passwords, users, data and the CA are kept.

The broker listens on two loopback ports: plaintext for the services on this host,
TLS (``mqtts``) for devices and anything that would cross a network (DESIGN.md §2).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from dolbom.certs import CA_CERT, init_ca, issue_service
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.protocol import Topics
from dolbom.settings import InfluxSettings, MqttSettings, MqttTlsSettings
from dolbom.stack.influx import InfluxDB
from dolbom.stack.mosquitto import Mosquitto, TlsFiles
from dolbom.stack.proc import free_port

DATABASE = "care"
# The names in the broker's certificate: what a client on this host connects to.
BROKER_HOSTS = ("127.0.0.1", "localhost", "::1")
# MQTT service accounts the stack creates, by role (DESIGN.md §6: least privilege).
SERVICE_ACCOUNTS = {"svc-ingest": "ingest", "svc-alerts": "alerts", "svc-operator": "operator"}


def _password() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Secrets:
    influx_admin: str
    influx_ingest: str
    influx_dashboard: str
    mqtt: dict[str, str]
    ports: dict[str, int]
    webhook_secret: str = ""

    @classmethod
    def load_or_create(cls, path: Path) -> Secrets:
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            s = cls(**data)
            for name in SERVICE_ACCOUNTS:
                s.mqtt.setdefault(name, _password())
            if not s.webhook_secret or "mqtts" not in s.ports:
                s.webhook_secret = s.webhook_secret or secrets.token_hex(32)
                s.ports.setdefault("mqtts", free_port())
                s.save(path)
            return s
        s = cls(_password(), _password(), _password(),
                {name: _password() for name in SERVICE_ACCOUNTS},
                {"mqtt": free_port(), "mqtts": free_port(), "influx": free_port()},
                secrets.token_hex(32))
        s.save(path)
        return s

    def save(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.__dict__, f, indent=2)


class Stack:
    def __init__(self, directory: Path, topics: Topics | None = None,
                 database_url: str | None = None, cell: str | None = None) -> None:
        self.dir = directory
        # One cell of several (docs/scale.md): its broker takes only its sites' devices.
        self.cell = cell
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o711)  # the servers run as their own users and must reach their dirs
        self.topics = topics or Topics()
        self.secrets = Secrets.load_or_create(self.dir / "secrets.json")
        self.ca_dir = self.dir / "ca"
        broker_cert = self.ca_dir / "services" / "mosquitto"
        self.mosquitto = Mosquitto(
            self.dir / "mosquitto", self.secrets.ports["mqtt"],
            tls=TlsFiles(self.ca_dir / CA_CERT, broker_cert.with_suffix(".crt"),
                         broker_cert.with_suffix(".key")),
            tls_port=self.secrets.ports["mqtts"])
        self.influx = InfluxDB(self.dir / "influxdb", self.secrets.ports["influx"])
        # SQLite by default; a PostgreSQL URL for a multi-instance (fleet-size) store
        self.database_url = database_url or f"sqlite:///{self.dir / 'dolbom.db'}"

    @property
    def influx_users(self) -> InfluxUsers:
        s = self.secrets
        return InfluxUsers(("admin", s.influx_admin), ("ingest", s.influx_ingest),
                           ("dashboard", s.influx_dashboard))

    def up(self) -> None:
        """Start Mosquitto and InfluxDB, bootstrap InfluxDB, migrate the registry."""
        from dolbom.registry import service as registry
        from dolbom.registry.broker import sync_broker
        from dolbom.registry.db import migrate, session_factory

        self.make_certs()
        self.mosquitto.prepare()
        self.mosquitto.start()
        self.influx.prepare()
        self.influx.start()
        self.influx.bootstrap(self.influx_users, DATABASE)
        migrate(self.database_url)
        with session_factory(self.database_url).begin() as session:
            for name, role in SERVICE_ACCOUNTS.items():
                registry.ensure_service_account(session, name, role, self.secrets.mqtt[name])
            sync_broker(session, self.mosquitto.files, self.topics, cell=self.cell)

    def make_certs(self) -> None:
        """The local CA and the broker's certificate (kept when they exist and fit)."""
        init_ca(self.ca_dir)
        self.ca_dir.chmod(0o711)  # ca.key stays 0600; the certificates are public
        issue_service(self.ca_dir, "mosquitto", BROKER_HOSTS)

    @property
    def ca_file(self) -> Path:
        """The CA that clients of the TLS listener trust (the file a device config carries)."""
        return self.ca_dir / CA_CERT

    def sync_broker(self) -> None:
        """Re-render the broker's users and ACL from the registry and reload it."""
        from dolbom.registry.broker import sync_broker
        from dolbom.registry.db import session_factory

        with session_factory(self.database_url)() as session:
            sync_broker(session, self.mosquitto.files, self.topics, cell=self.cell)

    def down(self) -> None:
        self.influx.stop()
        self.mosquitto.stop()

    # -- settings for the services --------------------------------------------
    def mqtt_settings(self, account: str = "svc-ingest") -> MqttSettings:
        return MqttSettings(port=self.mosquitto.port, username=account,
                            password=SecretStr(self.secrets.mqtt[account]),
                            topic_prefix=self.topics.prefix)

    def mqtt_tls_settings(self, account: str = "svc-ingest") -> MqttSettings:
        """The same account over the TLS listener, trusting the stack's CA."""
        return MqttSettings(port=self.mosquitto.tls_port, username=account,
                            password=SecretStr(self.secrets.mqtt[account]),
                            topic_prefix=self.topics.prefix,
                            tls=MqttTlsSettings(enabled=True, ca_file=self.ca_file))

    def influx_settings(self, user: str = "ingest") -> InfluxSettings:
        pw = {"ingest": self.secrets.influx_ingest, "dashboard": self.secrets.influx_dashboard,
              "admin": self.secrets.influx_admin}[user]
        return InfluxSettings(url=self.influx.url, database=DATABASE, username=user,
                              password=SecretStr(pw))

    def influx_admin(self) -> InfluxHTTP:
        return InfluxHTTP(self.influx.url, "admin", self.secrets.influx_admin)
