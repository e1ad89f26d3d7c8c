"""Broker credentials and rights, rendered from the registry (DESIGN.md §6).

Mosquitto reads users from a password file and rights from an ACL file; both
are generated here from the registry, written atomically and applied with
SIGHUP. Each device may write only its own topics (``<prefix>/<site>/<dev>/...``) and
read only its own ``ack`` and ``cmd``.

Devices' rights are five ``pattern`` rules for all of them, with ``%u`` (the username,
which is the device id) in the device segment, not a ``user`` block each: Mosquitto
2.0 files a ``user`` block's rules by walking its list of users, so loading (and every
SIGHUP reloading) an ACL with a block per device grows with the square of the fleet
(measured: 10,000 blocks 1.7 s, 20,000 7.8 s, 40,000 62 s, the broker stalled all the
while; docs/scale.md). With the patterns, the ACL no longer changes when a device is
added or revoked: only the password file does (300,000 devices: loaded in 0.7 s). The
site segment of a pattern is a wildcard: a device can name another site in its own
topics, which ingest dead-letters and the alarm path ignores (it routes by the registry),
but never another device. Device ids cannot contain ``+``, ``#`` or ``/``
(``protocol.topics``), nor be a service account's name, and each service account's
block denies the topics a pattern would give its name. Revoked devices are not in the
password file, so after ``sync_broker`` the broker refuses their CONNECT and drops
their connection.

A gateway (DESIGN.md §3) may also write exactly its registered children's uplink
topics and read their ``ack`` and ``cmd`` (``registry.gateways``), nothing else: a
child moved to another gateway, revoked or detached leaves this gateway's block at the
next ``sync_broker``, and mosquitto applies the new ACL at the SIGHUP, to connected
clients too (a publish is checked when it arrives, a delivery when it is sent).
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import signal
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dolbom.files import write_atomic
from dolbom.protocol import Topics
from dolbom.registry.broker_files import BrokerFiles
from dolbom.registry.errors import BrokerNotRunning, InvalidInput, RegistryError
from dolbom.registry.gateways import GATEWAY_KIND, routes
from dolbom.registry.models import Device, ServiceAccount, ServiceRole, site_ids_in_cell

# Mosquitto 2.0's own default (mosquitto_passwd). Passwords here are 24 random
# bytes (service.add_device), so the cost factor does not protect them; a low
# count keeps the broker's per-CONNECT cost small when a whole fleet reconnects.
MOSQUITTO_ITERATIONS = 101
SALT_BYTES = 12

S = TypeVar("S", bound="Select[*tuple[Any, ...]]")

HEADER = "# Written by dolbom.registry.broker from the registry: do not edit by hand.\n"

# The $SYS figures Mosquitto 2.0 publishes (every sys_interval, 10 s by default) that show
# messages held for clients that do not take them: the store's count and bytes, the
# retained messages among them, the persistent sessions whose client is away, and the
# messages dropped when a client's queue is full.
SYS_READS = (
    "topic read $SYS/broker/store/messages/#",
    "topic read $SYS/broker/retained messages/count",
    "topic read $SYS/broker/clients/disconnected",
    "topic read $SYS/broker/publish/messages/dropped",
)


def mosquitto_hash(password: str, salt: bytes | None = None,
                   iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """Mosquitto 2.0's ``$7$`` password-file hash: PBKDF2-HMAC-SHA512, standard base64."""
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    if not salt or iterations < 1:
        raise InvalidInput("mosquitto_hash needs a non-empty salt and at least 1 iteration")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def _in_cell(stmt: S, cell: str | None) -> S:
    """Only devices of the cell's sites (``cell`` None: every device)."""
    if cell is None:
        return stmt
    return stmt.where(Device.site_id.in_(site_ids_in_cell(cell)))


def render_passwd(session: Session, cell: str | None = None) -> str:
    """The password file: every service account and every active device (of ``cell``)."""
    lines = [f"{a.name}:{a.mqtt_hash}\n"
             for a in session.scalars(select(ServiceAccount).order_by(ServiceAccount.name))]
    # columns, not ORM objects: at 300,000 devices this runs on every add or revoke
    lines += [f"{dev}:{h}\n" for dev, h in session.execute(_in_cell(
        select(Device.id, Device.mqtt_hash).where(Device.revoked_at.is_(None))
        .order_by(Device.id), cell))]
    return "".join(lines)


def _service_rules(role: ServiceRole, p: str) -> list[str]:
    if role in (ServiceRole.INGEST, ServiceRole.ALERTS):
        # Reads all uplink; writes only downlink (acks and commands), never as a device.
        return [f"topic read {p}/#", f"topic write {p}/+/+/ack", f"topic write {p}/+/+/cmd/+"]
    if role is ServiceRole.LOADGEN:
        return [f"topic write {p}/#"]  # the benchmark publishes as many devices
    # operator: watch, never speak; and read the broker's own figures the backlog watcher
    # needs (``dolbom broker watch-backlog``), no other $SYS topic
    return [f"topic read {p}/#", *SYS_READS]


def device_patterns(topics: Topics) -> list[str]:
    """Every device's rights on its own topics: ``%u`` is the device id."""
    return [
        f"pattern write {topics.status('+', '%u')}",
        f"pattern write {topics.event('+', '%u', '+')}",
        f"pattern write {topics.telemetry('+', '%u')}",
        f"pattern read {topics.ack('+', '%u')}",
        f"pattern read {topics.cmd('+', '%u', '+')}",
    ]


def own_rules(site: str, dev: str, topics: Topics) -> list[str]:
    return [
        f"topic write {topics.status(site, dev)}",
        f"topic write {topics.event(site, dev, '+')}",
        f"topic write {topics.telemetry(site, dev)}",
        f"topic read {topics.ack(site, dev)}",
        f"topic read {topics.cmd(site, dev, '+')}",
    ]


def _gateway_rules(gw: Device, topics: Topics, children: list[Device]) -> list[str]:
    """A gateway's block: its own status topic and its registered children's topics
    (its own device topics are the patterns')."""
    rules = [f"topic write {topics.gateway_status(gw.site_id, gw.id)}"]
    for c in children:
        rules += own_rules(c.site_id, c.id, topics)
    return rules


def render_acl(session: Session, topics: Topics, cell: str | None = None) -> str:
    """The ACL file: the devices' patterns, then a ``user`` block per service account
    and per active gateway (of ``cell``; none per device: see the module).

    No ``topic`` line precedes the first ``user`` line, so anonymous clients (refused
    by the broker config anyway) would have no rights at all.
    """
    p = topics.prefix
    blocks = [HEADER.rstrip("\n"), "\n".join(device_patterns(topics))]
    for a in session.scalars(select(ServiceAccount).order_by(ServiceAccount.name)):
        # a pattern would give this name a device's topics: no account speaks as a device
        deny = [f"topic deny {topics.prefix}/+/{a.name}/#"]
        blocks.append("\n".join([f"user {a.name}", *deny, *_service_rules(a.role, p)]))
    children = routes(session)
    for d in session.scalars(_in_cell(select(Device).where(Device.revoked_at.is_(None),
                                                           Device.kind == GATEWAY_KIND)
                                      .order_by(Device.id), cell)):
        blocks.append("\n".join([f"user {d.id}", *_gateway_rules(d, topics,
                                                                 children.get(d.id, []))]))
    return "\n\n".join(blocks) + "\n"


def sync_broker(session: Session, files: BrokerFiles, topics: Topics, *,
                reload: bool = True, cell: str | None = None) -> None:
    """Write the broker's password and ACL files from the registry, then SIGHUP it.

    On SIGHUP mosquitto re-reads both files and re-checks connected clients.
    The files are written even when the broker is not running (it reads them
    when it starts); that case raises BrokerNotRunning unless ``reload=False``.
    """
    passwd, acl = render_passwd(session, cell), render_acl(session, topics, cell)
    try:
        if files.owner is not None:
            pwd.getpwnam(files.owner)
        write_atomic(files.passwd, passwd.encode(), owner=files.owner)
        write_atomic(files.acl, acl.encode(), owner=files.owner)
    except KeyError:
        raise RegistryError(f"broker owner {files.owner!r} is not a user on this machine") from None
    except OSError as e:
        raise RegistryError(f"cannot write broker files: {e}") from None
    if not reload:
        return
    try:
        pid = int(files.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise BrokerNotRunning(
            f"broker files written, but the broker is not running (no pid in {files.pid_file}); "
            "it reads them when it starts"
        ) from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise BrokerNotRunning(
            f"broker files written, but the broker is not running (pid {pid} from "
            f"{files.pid_file} is gone); it reads them when it starts"
        ) from None
    except PermissionError:
        raise RegistryError(f"not allowed to signal the broker (pid {pid})") from None
