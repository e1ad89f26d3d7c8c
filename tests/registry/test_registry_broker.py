"""Broker credentials and ACL from the registry, checked against the real Mosquitto 2.0."""

from __future__ import annotations

import asyncio
import base64
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dolbom.mqtt import Client, ConnectionLost, ConnectRefused, Received
from dolbom.protocol import Topics
from dolbom.registry import service as svc
from dolbom.registry.broker import mosquitto_hash, render_acl, render_passwd, sync_broker
from dolbom.registry.broker_files import BrokerFiles
from dolbom.registry.errors import BrokerNotRunning
from dolbom.stack.mosquitto import Mosquitto
from dolbom.stack.proc import which

T = Topics()
SILENCE_S = 0.5  # how long "the subscriber receives nothing" is watched
RELOAD_S = 5.0  # bound on the broker applying a SIGHUP


# -- helpers -----------------------------------------------------------------------


class Peer:
    """An MQTT client whose QoS 0 deliveries land in a queue read with bounded waits."""

    def __init__(self, client: Client, inbox: asyncio.Queue[Received]) -> None:
        self.client, self.inbox = client, inbox

    async def next(self, timeout: float = 2.0) -> Received:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def silent(self, timeout: float = SILENCE_S) -> bool:
        try:
            msg = await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            return True
        pytest.fail(f"unexpected delivery on {msg.topic}")


async def connect(broker: Mosquitto, user: str, password: str, client_id: str | None = None,
                  deadline_s: float = RELOAD_S) -> Peer:
    """Connect, retrying refusals for a bounded time while the broker applies a reload."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    while True:
        inbox: asyncio.Queue[Received] = asyncio.Queue()
        client = Client("127.0.0.1", broker.port, client_id or user, username=user,
                        password=password, on_message=inbox.put_nowait)
        try:
            await client.connect(timeout=2.0)
            return Peer(client, inbox)
        except ConnectRefused:
            if loop.time() >= until:
                raise
            await asyncio.sleep(0.05)


def _provision(factory: sessionmaker[Session]) -> dict[str, str]:
    """Site s1 with devices a, b and gateway g; service accounts of every role."""
    with factory.begin() as s:
        svc.add_site(s, "s1", "Site one")
        svc.add_home(s, "h1", "s1")
        pw = {dev: svc.add_device(s, dev, "s1", "h1", kind)[1]
              for dev, kind in (("a", "multisensor"), ("b", "door"), ("g", "gateway"))}
        for name in ("ingest", "alerts", "loadgen", "operator"):
            svc.ensure_service_account(s, name, name, f"{name}-pw")
            pw[name] = f"{name}-pw"
    return pw


@pytest.fixture()
def provisioned(sqlite_factory: sessionmaker[Session], broker: Mosquitto
                ) -> Iterator[tuple[sessionmaker[Session], dict[str, str]]]:
    pw = _provision(sqlite_factory)
    with sqlite_factory() as s:
        sync_broker(s, broker.files, T)
    yield sqlite_factory, pw


# -- hashes and rendered files -------------------------------------------------------


def test_hash_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """With the same salt, mosquitto_hash reproduces the real mosquitto_passwd's line."""
    f = tmp_path / "passwd"
    subprocess.run([which("mosquitto_passwd"), "-c", "-b", str(f), "u", "s3cret:é"], check=True)
    line = f.read_text().strip()
    user, stored = line.split(":", 1)
    _, seven, iterations, salt, _ = stored.split("$")
    assert (user, seven) == ("u", "7")
    assert mosquitto_hash("s3cret:é", base64.b64decode(salt), int(iterations)) == stored


def test_hash_format() -> None:
    """$7$101$, a 12-byte salt and a 64-byte digest in standard base64; salts differ."""
    h = mosquitto_hash("pw")
    _, seven, iterations, salt, digest = h.split("$")
    assert (seven, iterations, len(salt), len(digest)) == ("7", "101", 16, 88)
    assert mosquitto_hash("pw") != h


def test_rendered_files_give_each_device_its_own_topics_only(
        provisioned: tuple[sessionmaker[Session], dict[str, str]]) -> None:
    """Devices' rights are the same five patterns on their own id (no block per device);
    a gateway's block names its status topic; a revoked device leaves the password file;
    no service account can speak as a device of its name."""
    factory, _ = provisioned
    with factory.begin() as s:
        svc.revoke_device(s, "b")
    with factory() as s:
        passwd, acl = render_passwd(s), render_acl(s, Topics("x/v1"))
    assert [line.split(":")[0] for line in passwd.splitlines()] == [
        "alerts", "ingest", "loadgen", "operator", "a", "g"]
    header, patterns, *rest = acl.split("\n\n")
    assert header.startswith("#") and "topic" not in header  # no anonymous rights
    assert patterns.splitlines() == [
        "pattern write x/v1/+/%u/status",
        "pattern write x/v1/+/%u/event/+",
        "pattern write x/v1/+/%u/telemetry",
        "pattern read x/v1/+/%u/ack",
        "pattern read x/v1/+/%u/cmd/+",
    ]
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in rest}
    assert "user a" not in blocks and "user b" not in blocks and "/b/" not in acl
    assert blocks["user g"] == ["topic write x/v1/s1/gw/g/status"]
    for name in ("ingest", "alerts", "loadgen", "operator"):
        assert blocks[f"user {name}"][0] == f"topic deny x/v1/+/{name}/#"
    assert blocks["user ingest"][1:] == blocks["user alerts"][1:] == [
        "topic read x/v1/#", "topic write x/v1/+/+/ack", "topic write x/v1/+/+/cmd/+"]
    assert blocks["user loadgen"][1:] == ["topic write x/v1/#"]
    assert blocks["user operator"][1:] == [
        "topic read x/v1/#", "topic read $SYS/broker/store/messages/#",
        "topic read $SYS/broker/retained messages/count",
        "topic read $SYS/broker/clients/disconnected",
        "topic read $SYS/broker/publish/messages/dropped"]


def test_sync_writes_private_files_owned_by_the_broker_user(
    provisioned: tuple[sessionmaker[Session], dict[str, str]], broker: Mosquitto
) -> None:
    """Both files are mode 0600, owned by the broker's user, and hold what render_* returns."""
    factory, _ = provisioned
    files = broker.files
    with factory() as s:
        assert files.passwd.read_text() == render_passwd(s)
        assert files.acl.read_text() == render_acl(s, T)
    for p in (files.passwd, files.acl):
        st = p.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        if files.owner is not None:
            assert st.st_uid == pwd.getpwnam(files.owner).pw_uid
    assert [p.name for p in files.passwd.parent.iterdir() if p.name.startswith(".")] == []


def test_sync_without_a_running_broker(sqlite_factory: sessionmaker[Session],
                                       tmp_path: Path) -> None:
    """No pid file or a dead pid raises BrokerNotRunning after writing; reload=False does not."""
    _provision(sqlite_factory)
    files = BrokerFiles(tmp_path / "passwd", tmp_path / "acl", tmp_path / "pid", None)
    with sqlite_factory() as s:
        with pytest.raises(BrokerNotRunning, match="broker is not running"):
            sync_broker(s, files, T)
        assert files.passwd.read_text() == render_passwd(s)
        dead = subprocess.Popen(["true"])
        dead.wait()
        files.pid_file.write_text(f"{dead.pid}\n")
        with pytest.raises(BrokerNotRunning, match=f"pid {dead.pid}"):
            sync_broker(s, files, T)
        os.unlink(files.acl)
        sync_broker(s, files, T, reload=False)
        assert files.acl.read_text() == render_acl(s, T)


# -- the real broker -------------------------------------------------------------------


async def test_device_publishes_under_its_own_topics_only(
    provisioned: tuple[sessionmaker[Session], dict[str, str]], broker: Mosquitto
) -> None:
    """Own topics reach ingest; a publish under another device's topic is dropped silently."""
    _, pw = provisioned
    ingest = await connect(broker, "ingest", pw["ingest"])
    await ingest.client.subscribe([(T.uplink_filter(), 0)])
    a = await connect(broker, "a", pw["a"])
    g = await connect(broker, "g", pw["g"])
    try:
        own = [T.status("s1", "a"), T.event("s1", "a", "button"), T.telemetry("s1", "a")]
        for topic in own:
            await a.client.publish(topic, b"{}", qos=1)
        assert [(await ingest.next()).topic for _ in own] == own

        # Mosquitto acks the forbidden QoS 1 publish (MQTT 3.1.1 has no way to refuse
        # it) and drops it: the next delivery is a's own message, then nothing.
        for topic in (T.telemetry("s1", "b"), T.event("s1", "b", "smoke"), T.ack("s1", "b"),
                      T.cmd("s1", "b", "config"), T.gateway_status("s1", "a"), "care/v1/x"):
            await a.client.publish(topic, b"forged", qos=1)
        await a.client.publish(T.telemetry("s1", "a"), b"{}", qos=1)
        assert (await ingest.next()).topic == T.telemetry("s1", "a")
        assert await ingest.silent()

        await g.client.publish(T.gateway_status("s1", "g"), b"{}", qos=1)
        assert (await ingest.next()).topic == T.gateway_status("s1", "g")
    finally:
        for peer in (ingest, a, g):
            await peer.client.disconnect()


async def test_device_reads_only_its_own_downlink(
    provisioned: tuple[sessionmaker[Session], dict[str, str]], broker: Mosquitto
) -> None:
    """A device subscribed to another device's cmd and ack receives nothing from them."""
    _, pw = provisioned
    ingest = await connect(broker, "ingest", pw["ingest"])
    a = await connect(broker, "a", pw["a"])
    try:
        # Mosquitto 2.0.11 grants these subscriptions and filters at delivery time.
        await a.client.subscribe([(T.cmd("s1", "b", "+"), 0), (T.ack("s1", "b"), 0),
                                  ("care/v1/#", 0)])
        await a.client.subscribe([(T.cmd("s1", "a", "+"), 0), (T.ack("s1", "a"), 0)])
        await ingest.client.publish(T.cmd("s1", "b", "ping"), b"{}", qos=1)
        await ingest.client.publish(T.ack("s1", "b"), b"{}", qos=1)
        await ingest.client.publish(T.cmd("s1", "a", "ping"), b"{}", qos=1)
        await ingest.client.publish(T.ack("s1", "a"), b"{}", qos=1)
        assert (await a.next()).topic == T.cmd("s1", "a", "ping")
        assert (await a.next()).topic == T.ack("s1", "a")
        assert await a.silent()
    finally:
        for peer in (ingest, a):
            await peer.client.disconnect()


async def test_service_roles_on_the_broker(
    provisioned: tuple[sessionmaker[Session], dict[str, str]], broker: Mosquitto
) -> None:
    """Operators only watch; the load generator may publish as any device; alerts send commands."""
    _, pw = provisioned
    operator = await connect(broker, "operator", pw["operator"])
    await operator.client.subscribe([(T.uplink_filter(), 0)])
    loadgen = await connect(broker, "loadgen", pw["loadgen"])
    alerts = await connect(broker, "alerts", pw["alerts"])
    try:
        await operator.client.publish(T.cmd("s1", "a", "ping"), b"{}", qos=1)  # dropped
        await loadgen.client.publish(T.telemetry("s1", "b"), b"{}", qos=1)
        await alerts.client.publish(T.cmd("s1", "a", "identify"), b"{}", qos=1)
        await alerts.client.publish(T.telemetry("s1", "a"), b"{}", qos=1)  # dropped
        # the devices' patterns name no service: none speaks as a device of its name
        await operator.client.publish(T.event("s1", "operator", "button"), b"{}", qos=1)
        await alerts.client.publish(T.telemetry("s1", "alerts"), b"{}", qos=1)
        assert (await operator.next()).topic == T.telemetry("s1", "b")
        assert (await operator.next()).topic == T.cmd("s1", "a", "identify")
        assert await operator.silent()
    finally:
        for peer in (operator, loadgen, alerts):
            await peer.client.disconnect()


async def test_wrong_password_and_unknown_user_are_refused(
    provisioned: tuple[sessionmaker[Session], dict[str, str]], broker: Mosquitto
) -> None:
    """CONNECT with a wrong password, or as a user not in the registry, is refused."""
    _, pw = provisioned
    peer = await connect(broker, "a", pw["a"])  # the files are loaded
    await peer.client.disconnect()
    for user, password in (("a", pw["b"]), ("zz", "x"), ("ingest", "")):
        with pytest.raises(ConnectRefused) as e:
            await Client("127.0.0.1", broker.port, "probe", username=user,
                         password=password).connect(timeout=2.0)
        assert e.value.code == 5  # mosquitto 2.0 answers "not authorised" to MQTT 3.1.1


async def test_revoked_device_is_disconnected_and_cannot_return(
    provisioned: tuple[sessionmaker[Session], dict[str, str]], broker: Mosquitto
) -> None:
    """After revoke + sync_broker, mosquitto closes the device's connection and refuses it."""
    factory, pw = provisioned
    ingest = await connect(broker, "ingest", pw["ingest"])
    await ingest.client.subscribe([(T.uplink_filter(), 0)])
    a = await connect(broker, "a", pw["a"])
    b = await connect(broker, "b", pw["b"])
    try:
        await a.client.publish(T.telemetry("s1", "a"), b"{}", qos=1)
        assert (await ingest.next()).topic == T.telemetry("s1", "a")
        with factory.begin() as s:
            svc.revoke_device(s, "a")
        with factory() as s:
            sync_broker(s, broker.files, T)
        # Measured on mosquitto 2.0.11: on SIGHUP it re-checks connected clients
        # against the new password file and closes the revoked one's connection
        # (within ~0.1 s), rather than leaving it connected with no rights.
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(a.client.wait_closed(), RELOAD_S)
        with pytest.raises(ConnectRefused) as e:
            await Client("127.0.0.1", broker.port, "a", username="a",
                         password=pw["a"]).connect(timeout=2.0)
        assert e.value.code == 5
        # The other device is untouched by the reload.
        assert b.client.connected
        await b.client.publish(T.telemetry("s1", "b"), b"{}", qos=1)
        assert (await ingest.next()).topic == T.telemetry("s1", "b")
        assert await ingest.silent()
    finally:
        for peer in (ingest, a, b):
            await peer.client.disconnect()


async def test_new_device_is_accepted_after_sync(
    provisioned: tuple[sessionmaker[Session], dict[str, str]], broker: Mosquitto
) -> None:
    """A device added later connects once sync_broker has reloaded the broker."""
    factory, pw = provisioned
    with factory.begin() as s:
        _, password = svc.add_device(s, "c", "s1", "h1", "button", power="battery", hb_s=600)
    with factory() as s:
        sync_broker(s, broker.files, T)
    c = await connect(broker, "c", password)
    ingest = await connect(broker, "ingest", pw["ingest"])
    try:
        await ingest.client.subscribe([(T.event("s1", "+", "+"), 0)])
        await c.client.publish(T.event("s1", "c", "button"), b"{}", qos=1)
        assert (await ingest.next()).topic == T.event("s1", "c", "button")
    finally:
        await c.client.disconnect()
        await ingest.client.disconnect()
