"""``dolbom bench-broker-auth``: what adding and revoking one device costs the broker
at fleet size (docs/scale.md), with the ACL as Dolbom writes it (device ``pattern``
rules, ``dolbom.registry.broker``) beside the same fleet with a ``user`` block per
device (Dolbom's earlier form; peer sizes only: it grows with the square of the fleet),
and Mosquitto's dynamic security plugin (a client and a role per device: the plugin in
Mosquitto 2.0 does not substitute ``%u``), where one message adds or removes a device.

For each: a registry of N devices (SQLite), a real Mosquitto started on its files, and
then ``sync_broker`` after adding one device and after revoking it, timed until the new
device's CONNECT is accepted and until the revoked one's connection is dropped. A probe
device publishes every 5 ms through the broker to a subscriber throughout, and the
longest round trip during each change is the broker's stall (a single-threaded
broker delivers nothing while it reloads).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, select

from dolbom.files import runtime_root, write_atomic
from dolbom.protocol import Topics
from dolbom.registry import service as registry
from dolbom.registry.broker import mosquitto_hash, own_rules, render_acl
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import Device, ServiceAccount
from dolbom.stack import proc
from dolbom.stack.mosquitto import Mosquitto
from dolbom.stack.proc import free_port

TOPICS = Topics("care/v1")
SITE = "bench"
DEADLINE_S = 120.0  # a change not in effect by then is reported as such


@dataclass
class Result:
    form: str
    devices: int
    acl_bytes: int
    passwd_bytes: int
    start_s: float
    add_s: float
    add_stall_ms: float
    revoke_s: float
    revoke_stall_ms: float
    rss_mb: float


class _Probe:
    """A device publishing to itself through the broker every 5 ms; keeps the longest
    round trip seen since ``reset``."""

    def __init__(self, port: int, dev: str, password: str, sub_user: str, sub_pw: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = TOPICS.telemetry(SITE, dev)
        self.got = threading.Event()
        self.worst = 0.0
        self.sent_at: float | None = None
        self.stop = threading.Event()
        v2 = CallbackAPIVersion.VERSION2
        self.pub = mqtt.Client(v2, client_id=f"probe-{dev}")
        self.pub.username_pw_set(dev, password)
        self.sub = mqtt.Client(v2, client_id="probe-sub")
        self.sub.username_pw_set(sub_user, sub_pw)
        self.sub.on_message = lambda *_a: self.got.set()
        for c in (self.pub, self.sub):
            c.connect("127.0.0.1", port)
            c.loop_start()
        self.sub.subscribe(self.topic, 0)
        time.sleep(0.3)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.got.clear()
            t = self.sent_at = time.monotonic()
            self.pub.publish(self.topic, b"{}", qos=0)
            if self.got.wait(DEADLINE_S):
                self.worst = max(self.worst, time.monotonic() - t)
            self.sent_at = None
            time.sleep(0.005)

    def reset(self) -> None:
        self.worst = 0.0

    def stall(self) -> float:
        """The longest round trip since ``reset``, counting one still under way."""
        sent = self.sent_at
        return max(self.worst, time.monotonic() - sent if sent is not None else 0.0)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(DEADLINE_S + 1)
        for c in (self.pub, self.sub):
            c.loop_stop()
            c.disconnect()


def _fill(url: str, n: int, password: str) -> None:
    """``n`` devices in one site, fast: one hash shared (the broker's work per line is
    the same whatever the password)."""
    migrate(url)
    h = mosquitto_hash(password)
    sessions = session_factory(url)
    with sessions.begin() as s:
        registry.add_site(s, SITE, "benchmark")
        registry.ensure_service_account(s, "watch", "ingest", password)
        table = cast(Table, Device.__table__)
        for i in range(0, n, 50_000):
            s.execute(insert(table), [
                {"id": f"d{j:07d}", "site_id": SITE, "home_id": None, "kind": "multisensor",
                 "power": "mains", "hb_s": 60, "mqtt_hash": h}
                for j in range(i, min(n, i + 50_000))])


def _user_blocks_acl(render: Callable[..., str]) -> Callable[..., str]:
    """The earlier form: a ``user`` block with exact topics for every device."""
    def acl(session: Any, topics: Topics, cell: str | None = None) -> str:
        text = render(session, topics, cell)
        blocks = [text.rstrip("\n")]
        for dev in session.scalars(select(Device.id).where(Device.revoked_at.is_(None))):
            blocks.append("\n".join([f"user {dev}", *own_rules(SITE, dev, topics)]))
        return "\n\n".join(blocks) + "\n"
    return acl


@contextmanager
def _patched_acl(form: str) -> Iterator[None]:
    from dolbom.registry import broker

    if form == "patterns":
        yield
        return
    broker.render_acl = _user_blocks_acl(render_acl)
    try:
        yield
    finally:
        broker.render_acl = render_acl


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _connect(port: int, user: str, password: str) -> tuple[bool, float]:
    """One CONNECT: whether it was accepted, and when (monotonic) the broker answered."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"try-{secrets.token_hex(3)}")
    c.username_pw_set(user, password)
    answered = threading.Event()
    result: list[tuple[bool, float]] = []

    def on_connect(_c: object, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        result.append((not rc.is_failure, time.monotonic()))
        answered.set()

    c.on_connect = on_connect
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False, time.monotonic()
    c.loop_start()
    answered.wait(5)
    c.disconnect()
    c.loop_stop()
    return result[0] if result else (False, time.monotonic())


def _until_connect(port: int, user: str, password: str, accepted: bool, t0: float) -> float:
    """Seconds from ``t0`` until a CONNECT as ``user`` is answered as ``accepted``."""
    while time.monotonic() - t0 < DEADLINE_S:
        ok, at = _connect(port, user, password)
        if ok is accepted:
            return at - t0
        time.sleep(0.02)
    return float("inf")


def measure(form: str, n: int, base: Path) -> Result:
    d = Path(tempfile.mkdtemp(prefix=f"{form}-", dir=base))
    d.chmod(0o711)
    url = f"sqlite:///{d / 'registry.db'}"
    pw = secrets.token_urlsafe(12)
    _fill(url, n, pw)
    broker = Mosquitto(d / "mosquitto", free_port())
    broker.prepare()
    sessions = session_factory(url)
    with _patched_acl(form):
        import dolbom.registry.broker as current

        with sessions() as s:
            current.sync_broker(s, broker.files, TOPICS, reload=False)
        t = time.monotonic()
        broker.start(timeout=DEADLINE_S * 10)
        start_s = time.monotonic() - t
        probe = _Probe(broker.port, "d0000000", pw, "watch", pw)
        try:
            assert broker.proc is not None
            # add one device: sync, then until its CONNECT is accepted
            probe.reset()
            t = time.monotonic()
            with sessions.begin() as s:
                _, new_pw = registry.add_device(s, "dnew", SITE, None, "button")
            with sessions() as s:
                current.sync_broker(s, broker.files, TOPICS)
            add_s = _until_connect(broker.port, "dnew", new_pw, True, t)
            time.sleep(0.3)
            add_stall = probe.stall()
            # revoke it: sync, then until a CONNECT is refused
            probe.reset()
            t = time.monotonic()
            with sessions.begin() as s:
                registry.revoke_device(s, "dnew")
            with sessions() as s:
                current.sync_broker(s, broker.files, TOPICS)
            revoke_s = _until_connect(broker.port, "dnew", new_pw, False, t)
            time.sleep(0.3)
            revoke_stall = probe.stall()
            rss = _rss_mb(broker.proc.pid)
        finally:
            probe.close()
            broker.stop()
    result = Result(form, n, broker.files.acl.stat().st_size,
                    broker.files.passwd.stat().st_size, start_s, add_s, add_stall * 1000,
                    revoke_s, revoke_stall * 1000, rss)
    shutil.rmtree(d, ignore_errors=True)
    return result


DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
DYNSEC_CONF = """listener {port} 127.0.0.1
allow_anonymous false
persistence false
plugin {plugin}
plugin_opt_config_file {dir}/dynsec.json
log_dest stdout
"""


def _dynsec_role(dev: str) -> dict[str, Any]:
    """A device's own role: the plugin in Mosquitto 2.0 has no ``%u`` in its ACLs."""
    send = [TOPICS.status(SITE, dev), TOPICS.event(SITE, dev, "+"), TOPICS.telemetry(SITE, dev)]
    read = [TOPICS.ack(SITE, dev), TOPICS.cmd(SITE, dev, "+")]
    return {"rolename": f"r-{dev}", "acls": [
        *({"acltype": "publishClientSend", "topic": t, "priority": 0, "allow": True}
          for t in send),
        *({"acltype": "subscribePattern", "topic": t, "priority": 0, "allow": True}
          for t in read)]}


def _dynsec_client(name: str, mqtt_hash: str, role: str) -> dict[str, Any]:
    _, _, iterations, salt, digest = mqtt_hash.split("$")  # $7$iter$salt$hash
    return {"username": name, "roles": [{"rolename": role}], "password": digest,
            "salt": salt, "iterations": int(iterations)}


def _dynsec_config(url: str, admin_pw: str) -> dict[str, Any]:
    """The plugin's whole configuration for the registry's devices, as a deployment
    migrating to it would write it once."""
    sessions = session_factory(url)
    clients = [_dynsec_client("admin", mosquitto_hash(admin_pw), "admin")]
    roles: list[dict[str, Any]] = [
        {"rolename": "admin", "acls": [
            {"acltype": t, "topic": "$CONTROL/dynamic-security/#", "priority": 0, "allow": True}
            for t in ("publishClientSend", "publishClientReceive", "subscribePattern")]},
        {"rolename": "watch", "acls": [
            {"acltype": "subscribePattern", "topic": f"{TOPICS.prefix}/#", "priority": 0,
             "allow": True}]}]
    with sessions() as s:
        for name, h in s.execute(select(Device.id, Device.mqtt_hash)
                                 .where(Device.revoked_at.is_(None))):
            clients.append(_dynsec_client(name, h, f"r-{name}"))
            roles.append(_dynsec_role(name))
        watch = s.execute(select(ServiceAccount.mqtt_hash)
                          .where(ServiceAccount.name == "watch")).scalar_one()
    clients.append(_dynsec_client("watch", watch, "watch"))
    return {"defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True,
                                 "subscribe": False, "unsubscribe": True},
            "clients": clients, "groups": [], "roles": roles}


def _dynsec_command(port: int, admin_pw: str, commands: list[dict[str, Any]]) -> None:
    """One message to the plugin's API; returns when its answer arrives."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"admin-{secrets.token_hex(3)}")
    c.username_pw_set("admin", admin_pw)
    answered = threading.Event()
    c.on_message = lambda *_a: answered.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe("$CONTROL/dynamic-security/v1/response", 1)
    time.sleep(0.2)
    c.publish("$CONTROL/dynamic-security/v1", json.dumps({"commands": commands}), qos=1)
    answered.wait(DEADLINE_S)
    c.disconnect()
    c.loop_stop()


def measure_dynsec(n: int, base: Path) -> Result:
    d = Path(tempfile.mkdtemp(prefix="dynsec-", dir=base))
    d.chmod(0o711)
    url = f"sqlite:///{d / 'registry.db'}"
    pw = secrets.token_urlsafe(12)
    _fill(url, n, pw)
    bdir = d / "mosquitto"
    bdir.mkdir()
    config = bdir / "dynsec.json"
    write_atomic(config, json.dumps(_dynsec_config(url, pw)).encode(), mode=0o600)
    port = free_port()
    (bdir / "mosquitto.conf").write_text(DYNSEC_CONF.format(port=port, plugin=DYNSEC_PLUGIN,
                                                            dir=bdir))
    user = proc.service_user("mosquitto")
    proc.give_to(bdir, user)
    t = time.monotonic()
    broker = proc.start([proc.which("mosquitto"), "-c", str(bdir / "mosquitto.conf")],
                        bdir / "mosquitto.log", user)
    try:
        proc.wait_port(port, broker, DEADLINE_S * 10, "mosquitto", bdir / "mosquitto.log")
        start_s = time.monotonic() - t
        probe = _Probe(port, "d0000000", pw, "watch", pw)
        try:
            new_pw = secrets.token_urlsafe(12)
            probe.reset()
            t = time.monotonic()
            _dynsec_command(port, pw, [
                {"command": "createRole", **_dynsec_role("dnew")},
                {"command": "createClient", "username": "dnew", "password": new_pw,
                 "roles": [{"rolename": "r-dnew"}]}])
            add_s = _until_connect(port, "dnew", new_pw, True, t)
            time.sleep(0.3)
            add_stall = probe.stall()
            probe.reset()
            t = time.monotonic()
            _dynsec_command(port, pw, [{"command": "deleteClient", "username": "dnew"},
                                       {"command": "deleteRole", "rolename": "r-dnew"}])
            revoke_s = _until_connect(port, "dnew", new_pw, False, t)
            time.sleep(0.3)
            revoke_stall = probe.stall()
            rss = _rss_mb(broker.pid)
        finally:
            probe.close()
    finally:
        proc.stop(broker)
    result = Result("dynamic security", n, config.stat().st_size, 0, start_s, add_s,
                    add_stall * 1000, revoke_s, revoke_stall * 1000, rss)
    shutil.rmtree(d, ignore_errors=True)
    return result


def _row(r: Result) -> str:
    return (f"| {r.form} | {r.devices:,} | {r.acl_bytes / 1e6:.1f} MB | "
            f"{r.passwd_bytes / 1e6:.1f} MB | {r.start_s:.2f} s | {r.add_s:.2f} s | "
            f"{r.add_stall_ms:.0f} ms | {r.revoke_s:.2f} s | {r.revoke_stall_ms:.0f} ms | "
            f"{r.rss_mb:.0f} MB |")


def _cmd(args: argparse.Namespace) -> int:
    base = Path(tempfile.mkdtemp(prefix="bench-auth-", dir=runtime_root()))
    base.chmod(0o711)
    runs = ([("patterns", n) for n in args.devices] + [("user-blocks", n) for n in args.peer]
            + [("dynsec", n) for n in args.dynsec])
    print("| ACL form | devices | ACL file | password file | broker start | add → "
          "connects | stall | revoke → refused | stall | broker RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for form, n in runs:
            r = measure_dynsec(n, base) if form == "dynsec" else measure(form, n, base)
            print(_row(r), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are integers, e.g. 10000,300000") from None
    if any(n < 0 for n in sizes):
        raise argparse.ArgumentTypeError("sizes are 0 (none) or more devices")
    return [n for n in sizes if n > 0]  # 0: not this form


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-broker-auth",
                       help="cost of adding and revoking one device at fleet size",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--devices", type=_sizes, default=[300_000],
                   help="fleet sizes with Dolbom's ACL (default 300000)")
    p.add_argument("--peer", type=_sizes, default=[10_000, 20_000],
                   help="fleet sizes with a user block per device (default 10000,20000; "
                   "it grows with the square of the fleet)")
    p.add_argument("--dynsec", type=_sizes, default=[100_000],
                   help="fleet sizes with the dynamic security plugin (default 100000; the "
                   "ACL file column is then its JSON configuration)")
    p.set_defaults(func=_cmd)
