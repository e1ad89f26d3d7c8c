"""A real Mosquitto 2.0 broker on loopback, with its own config and data directory.

Secure by default: no anonymous access; users come from ``passwd`` and their
rights from ``acl``, both written by the registry (``dolbom.registry.broker``)
and reloaded with SIGHUP, so a revoked device loses access within seconds.

Transport security (DESIGN.md §2): the plaintext listener is bound to 127.0.0.1
only; devices and remote services use the TLS listener (TLS >= 1.2, the
certificate from ``dolbom certs service``), whose key only the broker's user
can read.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dolbom.protocol.messages import MAX_PAYLOAD
from dolbom.registry.broker_files import BrokerFiles
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
{logging}
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
# Acks and alarms are small packets: send them at once, without Nagle's wait for more
# (measured: a device's ack median 46 -> 13 ms).
set_tcp_nodelay true
# Sensor nodes keep persistent sessions so an ack reaches a node that slept or was
# offline; a node gone for two weeks starts afresh (it re-sends what was never acked).
persistent_client_expiration 14d
{packet_limit}"""

# The largest packet a client may send (docs/broker.md). The contract's largest message
# is a 64 KiB payload (MAX_PAYLOAD, e.g. a telemetry batch) on a topic of at most ~150
# bytes; no firmware image or other bulk data travels through the broker (flashing is by
# USB, cmd/* are small JSON). Twice that leaves room for any topic prefix and the MQTT
# header, while a message over the contract but under the limit still reaches ingest
# and becomes a `too_large` dead letter (with a reason) instead of a disconnect. A
# bigger packet disconnects its sender only; Mosquitto's default is no limit (256 MB).
MAX_PACKET_SIZE = 2 * MAX_PAYLOAD
PACKET_LIMIT = """\
# A client sending a bigger packet is disconnected (the contract's largest is ~64 KiB).
max_packet_size {max_packet_size}
"""

# The log, without or with the ACL's denials (docs/broker.md). Mosquitto 2.0.11 logs
# `Denied PUBLISH from <client id> (d0, q1, r0, m1, '<topic>', ... (<n> bytes))` only
# with log_type debug, which also logs every PUBLISH and PUBACK (topics and sizes, never
# a payload): measured here on a QoS 0 stream, about 170 bytes of log and 60 % more
# broker CPU per message. So it goes to a file of its own (mode 0600, the broker's
# user), which the denial watcher follows and which must be rotated (logrotate, then
# SIGHUP: mosquitto reopens it). log_type is global in mosquitto, so stdout then
# carries only what is printed before the file is open.
LOG_STDOUT = "log_dest stdout"
LOG_DENIALS = """\
log_dest file {log}
log_type debug"""

# Appended when TLS is on. With per_listener_settings false, users and ACL are the
# same on both listeners. Mosquitto 2.0's tls_version is the lowest version the
# listener accepts (tlsv1.3, tlsv1.2 or tlsv1.1): tlsv1.2 refuses 1.0 and 1.1.
TLS_CONF = """\
# TLS for devices and remote services (DESIGN.md §2): TLS >= 1.2, no plaintext here.
listener {tls_port} {tls_bind}
cafile {dir}/tls/ca.crt
certfile {dir}/tls/server.crt
keyfile {dir}/tls/server.key
tls_version tlsv1.2
require_certificate {require_certificate}
"""
# Appended when client certificates are required: the CA's revocation list
# (``dolbom certs revoke``/``crl``). OpenSSL then checks every client certificate
# against it, and refuses all of them if the list is missing or expired.
CRL_CONF = """\
crlfile {dir}/tls/ca.crl
"""


@dataclass(frozen=True)
class TlsFiles:
    """The broker's TLS material (``dolbom certs``): the CA, its certificate and key, and
    the CA's revocation list (``ca.crl``), required when client certificates are."""

    ca: Path
    cert: Path
    key: Path
    crl: Path | None = None


class Mosquitto:
    def __init__(self, directory: Path, port: int | None = None, *,
                 tls: TlsFiles | None = None, tls_port: int | None = None,
                 tls_bind: str = "127.0.0.1", require_certificate: bool = False,
                 log_denials: bool = False, max_packet_size: int = MAX_PACKET_SIZE) -> None:
        self.dir = directory
        self.port = port or proc.free_port()
        self.user = proc.service_user("mosquitto")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "mosquitto.log"
        # log_denials: the broker's log, with ACL denials, in ``broker.log`` for
        # ``dolbom broker watch-denials`` (off by default: see LOG_DENIALS for its cost).
        self.log_denials = log_denials
        self.broker_log = self.dir / "broker.log" if log_denials else self.log
        # TLS listener: loopback by default (tests, the quick start); a deployment binds
        # the address devices reach (tls_bind="0.0.0.0").
        self.tls = tls
        self.tls_port = (tls_port or proc.free_port()) if tls is not None else None
        self.tls_bind = tls_bind
        if require_certificate and (tls is None or tls.crl is None):
            raise StackError("require_certificate needs the CA's revocation list (TlsFiles.crl): "
                             "run `dolbom certs crl` first")
        self.require_certificate = require_certificate
        # max_packet_size: 0 leaves Mosquitto's default (no limit); otherwise >= 20.
        if max_packet_size != 0 and max_packet_size < 20:
            raise StackError(f"max_packet_size {max_packet_size}: 0 (no limit) or >= 20 bytes")
        self.max_packet_size = max_packet_size

    @property
    def files(self) -> BrokerFiles:
        return BrokerFiles(self.dir / "passwd", self.dir / "acl", self.dir / "mosquitto.pid",
                           self.user)

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        logging = (LOG_DENIALS.format(log=self.broker_log) if self.log_denials
                   else LOG_STDOUT)
        limit = (PACKET_LIMIT.format(max_packet_size=self.max_packet_size)
                 if self.max_packet_size else "")
        conf = CONF.format(dir=self.dir, port=self.port, logging=logging, packet_limit=limit)
        if self.tls is not None:
            self._copy_tls(self.tls)
            conf += TLS_CONF.format(
                dir=self.dir, tls_port=self.tls_port, tls_bind=self.tls_bind,
                require_certificate=str(self.require_certificate).lower())
            if self.require_certificate:
                conf += CRL_CONF.format(dir=self.dir)
        (self.dir / "mosquitto.conf").write_text(conf)
        for name in ("passwd", "acl"):
            p = self.dir / name
            if not p.exists():
                p.write_text("")
                p.chmod(0o600)
        proc.give_to(self.dir, self.user)

    def _copy_tls(self, tls: TlsFiles) -> None:
        """Copy the TLS files into the broker's directory: the key 0600, and (by
        ``give_to`` below) owned by the broker's user, so only the broker reads it."""
        d = self.dir / "tls"
        d.mkdir(exist_ok=True)
        d.chmod(0o755)  # the CA and certificate are public; the key is 0600
        files = [(tls.ca, "ca.crt", 0o644), (tls.cert, "server.crt", 0o644),
                 (tls.key, "server.key", 0o600)]
        if self.require_certificate and tls.crl is not None:
            files.append((tls.crl, "ca.crl", 0o644))
        for src, name, mode in files:
            if not src.is_file():
                raise StackError(f"TLS file {src} is missing: run `dolbom certs` first")
            dst = d / name
            tmp = d / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                os.fchmod(out.fileno(), mode)
                shutil.copyfileobj(inp, out)
            os.replace(tmp, dst)

    def update_crl(self) -> None:
        """Give the running broker the CA's current revocation list (after ``dolbom certs
        revoke``): copied in, then a reload (SIGHUP), which re-reads it for new
        connections. A client connected with a certificate revoked since keeps its
        connection until it reconnects (remove its broker user too to end it at once)."""
        if self.tls is None or not self.require_certificate:
            raise StackError("no revocation list: client certificates are not required")
        self._copy_tls(self.tls)
        proc.give_to(self.dir / "tls", self.user)
        self.reload()

    @property
    def ca_file(self) -> Path | None:
        """The CA clients of the TLS listener trust (a copy, readable by everyone)."""
        return self.dir / "tls" / "ca.crt" if self.tls is not None else None

    def start(self, timeout: float = 15.0) -> None:
        if not (self.dir / "mosquitto.conf").exists():
            self.prepare()
        exe = proc.which("mosquitto")
        self.proc = proc.start([exe, "-c", str(self.dir / "mosquitto.conf")], self.log, self.user)
        (self.dir / "mosquitto.pid").write_text(f"{self.proc.pid}\n")
        proc.wait_port(self.port, self.proc, timeout, "mosquitto", self.log)
        if self.tls_port is not None:
            proc.wait_port(self.tls_port, self.proc, timeout, "mosquitto (TLS)", self.log)

    def reload(self) -> None:
        """Re-read passwd and ACL (mosquitto re-checks connected clients too)."""
        if self.proc is None or self.proc.poll() is not None:
            raise StackError("mosquitto is not running")
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self) -> None:
        proc.stop(self.proc)

    def kill(self) -> None:
        proc.kill9(self.proc)
