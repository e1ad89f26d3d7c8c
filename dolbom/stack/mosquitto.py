"""A real Mosquitto 2.0 broker on loopback, with its own config and data directory.

Secure by default: no anonymous access; users come from ``passwd`` and their
rights from ``acl``, both written by the registry (``dolbom.registry.broker``)
and reloaded with SIGHUP, so a revoked device loses access within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dolbom.stack import proc
from dolbom.stack.errors import StackError

CONF = """\
# Written by dolbom.stack: loopback only, no anonymous access.
per_listener_settings false
allow_anonymous false
password_file {dir}/passwd
acl_file {dir}/acl
listener {port} 127.0.0.1
persistence true
persistence_location {dir}/data/
autosave_interval 30
log_dest stdout
log_type error
log_type warning
log_type notice
connection_messages true
# Ingest holds each PUBACK until the message is durable and acks a whole batch
# at once: allow enough in flight per client, and queue (not drop) for a
# persistent session while its client reconnects.
max_inflight_messages 0
max_queued_messages 2000000
max_queued_bytes 0
max_keepalive 300
# Sensor nodes keep persistent sessions so an ack reaches a node that slept or was
# offline; a node gone for two weeks starts afresh (it re-sends what was never acked).
persistent_client_expiration 14d
"""


@dataclass(frozen=True)
class BrokerFiles:
    """Where the registry writes the broker's users and rights, and whom to SIGHUP."""

    passwd: Path
    acl: Path
    pid_file: Path
    owner: str | None  # the user the broker runs as (files must stay readable to it)


class Mosquitto:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.dir = directory
        self.port = port or proc.free_port()
        self.user = proc.service_user("mosquitto")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "mosquitto.log"

    @property
    def files(self) -> BrokerFiles:
        return BrokerFiles(self.dir / "passwd", self.dir / "acl", self.dir / "mosquitto.pid",
                           self.user)

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        (self.dir / "mosquitto.conf").write_text(CONF.format(dir=self.dir, port=self.port))
        for name in ("passwd", "acl"):
            p = self.dir / name
            if not p.exists():
                p.write_text("")
                p.chmod(0o600)
        proc.give_to(self.dir, self.user)

    def start(self, timeout: float = 15.0) -> None:
        if not (self.dir / "mosquitto.conf").exists():
            self.prepare()
        exe = proc.which("mosquitto")
        self.proc = proc.start([exe, "-c", str(self.dir / "mosquitto.conf")], self.log, self.user)
        (self.dir / "mosquitto.pid").write_text(f"{self.proc.pid}\n")
        proc.wait_port(self.port, self.proc, timeout, "mosquitto", self.log)

    def reload(self) -> None:
        """Re-read passwd and ACL (mosquitto re-checks connected clients too)."""
        if self.proc is None or self.proc.poll() is not None:
            raise StackError("mosquitto is not running")
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self) -> None:
        proc.stop(self.proc)

    def kill(self) -> None:
        proc.kill9(self.proc)
