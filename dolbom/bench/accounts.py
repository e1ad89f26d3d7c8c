"""The benchmark's accounts: least privilege, fresh random passwords every run.

Broker (Mosquitto passwd + ACL, the same rules ``dolbom.registry.broker``
gives each service role):

    loadgen   write <prefix>/#                      publishes as every device of the fleet
    ingest    read <prefix>/#, write acks and cmds  Dolbom's ingest
    peer      read <prefix>/#                       the Node-RED peer

InfluxDB: the stack's admin / ingest (WRITE) / dashboard (READ) users, plus a
``peer`` user with WRITE only. The fleet's 1.8 M device accounts are not in
the broker's files: the devices never connect themselves here (the load
generator speaks for them), and per-device rights are tested elsewhere.
"""

from __future__ import annotations

import os
import pwd
import secrets
from dataclasses import dataclass

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.influxql import ident, lit
from dolbom.registry.broker import mosquitto_hash
from dolbom.registry.broker_files import BrokerFiles


def _pw() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    password: str


@dataclass(frozen=True, slots=True)
class Accounts:
    loadgen: Account
    ingest: Account
    peer: Account
    influx: InfluxUsers
    influx_peer: Account

    @classmethod
    def generate(cls) -> Accounts:
        return cls(
            loadgen=Account("loadgen", _pw()),
            ingest=Account("ingest", _pw()),
            peer=Account("peer", _pw()),
            influx=InfluxUsers(admin=("admin", _pw()), ingest=("ingest", _pw()),
                               dashboard=("dashboard", _pw())),
            influx_peer=Account("peer", _pw()),
        )


def broker_acl(accounts: Accounts, prefix: str) -> str:
    p = prefix.strip("/")
    return (
        "# Written by dolbom.bench.\n"
        f"user {accounts.loadgen.name}\ntopic write {p}/#\n\n"
        f"user {accounts.ingest.name}\ntopic read {p}/#\ntopic write {p}/+/+/ack\n"
        f"topic write {p}/+/+/cmd/+\n\n"
        f"user {accounts.peer.name}\ntopic read {p}/#\n"
    )


def broker_passwd(accounts: Accounts) -> str:
    return "".join(f"{a.name}:{mosquitto_hash(a.password)}\n"
                   for a in (accounts.loadgen, accounts.ingest, accounts.peer))


def write_broker_files(files: BrokerFiles, accounts: Accounts, prefix: str) -> None:
    """Write passwd and ACL before the broker starts (readable by the broker only)."""
    for path, text in ((files.passwd, broker_passwd(accounts)),
                       (files.acl, broker_acl(accounts, prefix))):
        path.write_text(text)
        path.chmod(0o600)
        if files.owner is not None and os.geteuid() == 0:
            pw = pwd.getpwnam(files.owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)


def add_influx_writer(admin: InfluxHTTP, database: str, account: Account) -> None:
    """A user that may only write to ``database`` (the peer's)."""
    name = ident(account.name)
    admin.query(f"CREATE USER {name} WITH PASSWORD {lit(account.password)}", method="POST")
    admin.query(f"GRANT WRITE ON {ident(database)} TO {name}", method="POST")
