"""Transport security (DESIGN.md §2, TESTPLAN S-05) against the real Mosquitto with TLS.

The CA and every certificate are made here with the project's own ``dolbom.certs``;
each broker is started by ``dolbom.stack`` on free loopback ports and stopped by PID.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pwd
import socket
import ssl
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from dolbom.certs import CA_CERT, init_ca, issue_service
from dolbom.cli import main
from dolbom.mqtt import (
    Client,
    ConnectionLost,
    MqttError,
    PlaintextRefused,
    TlsError,
    client_context,
    packets,
)
from dolbom.protocol import Envelope, encode_event
from dolbom.settings import BaseServiceSettings, SettingsError, load
from dolbom.stack.mosquitto import Mosquitto, TlsFiles
from dolbom.stack.stack import Stack
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import TOPICS, eventually, provision, unique_now_ms

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice-pw"


def _new_ca(root: Path) -> Path:
    d = Path(tempfile.mkdtemp(prefix="ca-", dir=root))
    init_ca(d)
    return d


def _tls_broker(root: Path, ca_dir: Path, name: str, hosts: list[str],
                not_before: dt.datetime | None = None, days: int = 30) -> Mosquitto:
    """A Mosquitto with a TLS listener serving a certificate ``name`` for ``hosts``, and
    one user (alice) allowed under t/#. The caller stops it."""
    cert = issue_service(ca_dir, name, hosts, not_before=not_before, days=days)
    b = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-tls-", dir=root)),
                  tls=TlsFiles(ca_dir / CA_CERT, cert.cert, cert.key))
    b.prepare()
    subprocess.run(["mosquitto_passwd", "-b", str(b.files.passwd), USER, PASSWORD], check=True)
    b.files.acl.write_text(f"user {USER}\ntopic readwrite t/#\n")
    if b.user is not None:
        subprocess.run(["chown", f"{b.user}:", str(b.files.passwd), str(b.files.acl)],
                       check=True)
    b.start()
    return b


@pytest.fixture(scope="module")
def ca_dir(runtime_dir: Path) -> Path:
    return _new_ca(runtime_dir)


@pytest.fixture(scope="module")
def broker(runtime_dir: Path, ca_dir: Path) -> Iterator[Mosquitto]:
    b = _tls_broker(runtime_dir, ca_dir, "mosquitto", ["127.0.0.1", "localhost"])
    yield b
    b.stop()


@pytest.fixture()
def start_broker(runtime_dir: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Factory for a broker with a special certificate; each is stopped after the test."""
    started: list[Mosquitto] = []

    def make(*args: object, **kw: object) -> Mosquitto:
        b = _tls_broker(runtime_dir, *args, **kw)  # type: ignore[arg-type]
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def tls_client(b: Mosquitto, ca: Path, cid: str, host: str = "127.0.0.1") -> Client:
    assert b.tls_port is not None
    return Client(host, b.tls_port, cid, username=USER, password=PASSWORD,
                  ssl=client_context(ca))


def _handshake(port: int, ctx: ssl.SSLContext, host: str = "127.0.0.1") -> str:
    """One TLS handshake with the broker (bounded); returns the negotiated version."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as s:
        return str(s.version())


# -- the broker's TLS listener ----------------------------------------------------------


async def test_right_ca_connects_and_a_message_flows(broker: Mosquitto, ca_dir: Path) -> None:
    """A client trusting the CA connects over TLS, and a QoS 1 message goes through."""
    async with tls_client(broker, ca_dir / CA_CERT, "sub") as sub, \
            tls_client(broker, ca_dir / CA_CERT, "pub") as pub:
        await sub.subscribe([("t/#", 1)])
        await pub.publish("t/x", b"hello over tls", qos=1)
        async with asyncio.timeout(10):
            msg = await anext(aiter(sub.messages()))
    assert (msg.topic, msg.payload) == ("t/x", b"hello over tls")


async def test_localhost_name_is_checked_and_accepted(broker: Mosquitto, ca_dir: Path) -> None:
    """The certificate names localhost too: the host name check passes for it."""
    async with tls_client(broker, ca_dir / CA_CERT, "by-name", host="localhost") as c:
        assert c.connected


async def test_wrong_ca_is_refused(broker: Mosquitto, runtime_dir: Path) -> None:
    """A client trusting another CA refuses the broker's certificate before sending CONNECT."""
    other = _new_ca(runtime_dir)
    with pytest.raises(TlsError, match="certificate"):
        await tls_client(broker, other / CA_CERT, "wrong-ca").connect(timeout=5)


async def test_expired_server_certificate_is_refused(start_broker: Callable[..., Mosquitto],
                                                     ca_dir: Path) -> None:
    """A broker certificate that expired yesterday is refused, even though the CA is right."""
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    b = start_broker(ca_dir, "expired", ["127.0.0.1"], not_before=long_ago, days=9)
    with pytest.raises(TlsError, match="expired"):
        await tls_client(b, ca_dir / CA_CERT, "expired").connect(timeout=5)


async def test_certificate_for_another_host_is_refused(
        start_broker: Callable[..., Mosquitto], ca_dir: Path) -> None:
    """A certificate from the right CA but for another host name is refused (host checked)."""
    b = start_broker(ca_dir, "elsewhere", ["broker.example.org"])
    with pytest.raises(TlsError, match=r"mismatch|match"):
        await tls_client(b, ca_dir / CA_CERT, "other-host").connect(timeout=5)


async def test_plaintext_mqtt_on_the_tls_port_is_refused(broker: Mosquitto) -> None:
    """A plaintext CONNECT sent to the TLS port never gets a CONNACK: the broker hangs up."""
    assert broker.tls_port is not None
    c = Client("127.0.0.1", broker.tls_port, "plain", username=USER, password=PASSWORD)
    with pytest.raises(ConnectionLost):
        await c.connect(timeout=5)
    # The same by hand: whatever comes back is not an MQTT CONNACK (0x20).
    with socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as s:
        s.sendall(packets.connect("plain2", 30, True, USER, PASSWORD, None))
        try:
            reply = s.recv(64)
        except (ConnectionResetError, TimeoutError):
            reply = b""
    assert not reply.startswith(b"\x20")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted(broker: Mosquitto, ca_dir: Path,
                                      version: ssl.TLSVersion) -> None:
    """The listener accepts TLS 1.2 (the floor) and TLS 1.3."""
    assert broker.tls_port is not None
    ctx = client_context(ca_dir / CA_CERT)
    ctx.minimum_version = ctx.maximum_version = version
    assert _handshake(broker.tls_port, ctx) == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                                ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_1_1_is_refused(broker: Mosquitto, ca_dir: Path) -> None:
    """A client offering only TLS 1.1 is refused by the broker (tls_version tlsv1.2)."""
    assert broker.tls_port is not None
    if not ssl.HAS_TLSv1_1:
        pytest.skip("this Python's OpenSSL cannot offer TLS 1.1 at all")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca_dir / CA_CERT)
    # OpenSSL 3 refuses to offer TLS 1.1 at its default security level; level 0 lets
    # this client send a real TLS 1.1 hello, so the refusal seen is the broker's.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as e:
        _handshake(broker.tls_port, ctx)
    if "NO_PROTOCOLS_AVAILABLE" in str(e.value) or "no protocols available" in str(e.value):
        pytest.skip("this Python's OpenSSL would not send a TLS 1.1 hello (nothing to test)")
    assert "PROTOCOL_VERSION" in str(e.value).upper() or \
        "UNSUPPORTED_PROTOCOL" in str(e.value).upper(), e.value


def test_only_loopback_is_plaintext_and_the_key_is_the_brokers(broker: Mosquitto) -> None:
    """The plaintext listener binds 127.0.0.1 only; the TLS key is 0600, owned by the broker."""
    conf = (broker.dir / "mosquitto.conf").read_text()
    listeners = [ln.split() for ln in conf.splitlines() if ln.startswith("listener ")]
    assert listeners == [["listener", str(broker.port), "127.0.0.1"],
                         ["listener", str(broker.tls_port), "127.0.0.1"]]
    assert "tls_version tlsv1.2" in conf
    key = (broker.dir / "tls" / "server.key").stat()
    assert stat.S_IMODE(key.st_mode) == 0o600
    if os.geteuid() == 0:
        assert pwd.getpwuid(key.st_uid).pw_name == "mosquitto"


# -- the clients' settings ---------------------------------------------------------------


def test_settings_refuse_plaintext_credentials_to_a_remote_broker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS switched off + credentials + a broker that is not loopback stops start-up, one line."""
    monkeypatch.setenv("DOLBOM_MQTT__HOST", "broker.example.org")
    monkeypatch.setenv("DOLBOM_MQTT__USERNAME", "svc-ingest")
    monkeypatch.setenv("DOLBOM_MQTT__PASSWORD", "secret")
    monkeypatch.setenv("DOLBOM_MQTT__TLS__ENABLED", "false")
    with pytest.raises(SettingsError) as e:
        load(BaseServiceSettings)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "secret" not in msg
    assert "plaintext" in msg and "broker.example.org" in msg and "DOLBOM_MQTT" in msg


@pytest.mark.parametrize(("host", "tls", "port"), [
    ("127.0.0.1", False, 1883), ("localhost", False, 1883), ("::1", False, 1883),
    ("127.8.9.10", False, 1883), ("broker.example.org", True, 8883), ("10.0.0.5", True, 8883),
])
def test_tls_is_on_by_default_off_loopback(host: str, tls: bool, port: int) -> None:
    """Without a TLS setting, a loopback broker is plaintext and any other uses TLS on 8883."""
    s = load(BaseServiceSettings, mqtt={"host": host, "username": "u", "password": "p"})
    assert (s.mqtt.use_tls, s.mqtt.port) == (tls, port)
    assert (s.mqtt.ssl_context() is not None) == tls


def test_settings_refuse_a_missing_ca_file(tmp_path: Path) -> None:
    """A CA file that does not exist stops start-up with one line naming it."""
    with pytest.raises(SettingsError, match="ca_file"):
        load(BaseServiceSettings, mqtt={"tls": {"ca_file": str(tmp_path / "nope.crt")}})


async def test_client_never_sends_credentials_in_plaintext_off_loopback() -> None:
    """A Client built by hand without TLS for a remote host refuses before opening a socket."""
    c = Client("192.0.2.1", 1883, "x", username="u", password="p")
    with pytest.raises(PlaintextRefused):
        await c.connect(timeout=1)


# -- the stack, device configs and the alarm path over TLS -------------------------------


async def test_alarm_over_tls_is_journalled_and_acked(stack: Stack) -> None:
    """A button press published over TLS is journalled, acked over TLS and notified."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "t1", "ht1", {"btn-ht1": "button"}, rec.url)
        ctx = client_context(stack.ca_file)
        assert stack.mosquitto.tls_port is not None
        async with running_alerts(alerts_settings(stack), Clock()), \
                Client("127.0.0.1", stack.mosquitto.tls_port, "btn-ht1", username="btn-ht1",
                       password=pw["btn-ht1"], ssl=ctx) as dev:
            await dev.subscribe([(TOPICS.ack("t1", "btn-ht1"), 1)])
            payload = encode_event(Envelope(1, 7, unique_now_ms(), 2))
            await dev.publish(TOPICS.event("t1", "btn-ht1", "button"), payload, qos=1)
            async with asyncio.timeout(10):
                ack = await anext(aiter(dev.messages()))
            assert orjson.loads(ack.payload) == {"boot": 1, "seq": 7}
            await eventually(lambda: len(rec.received) == 2, 10, "2 deliveries")
    assert {b["rule"] for b in rec.received} == {"button"}


async def test_service_account_over_tls_with_stack_settings(stack: Stack) -> None:
    """The stack's TLS settings (CA file, TLS port) give a working service connection."""
    pw = provision(stack, "t2", "ht2", {"pir-ht2": "multisensor"})
    s = stack.mqtt_tls_settings("svc-ingest")
    assert s.use_tls and s.password is not None
    async with Client(s.host, s.port, "svc-tls", username=s.username,
                      password=s.password.get_secret_value(), ssl=s.ssl_context()) as svc, \
            Client("127.0.0.1", s.port, "pir-ht2", username="pir-ht2", password=pw["pir-ht2"],
                   ssl=s.ssl_context()) as dev:
        await svc.subscribe([(TOPICS.uplink_filter(), 1)])
        await dev.publish(TOPICS.event("t2", "pir-ht2", "motion"),
                          encode_event(Envelope(1, 1, unique_now_ms(), 2)), qos=1)
        async with asyncio.timeout(10):
            msg = await anext(aiter(svc.messages()))
    assert msg.topic == TOPICS.event("t2", "pir-ht2", "motion")


async def test_device_config_carries_the_ca_and_connects_over_tls(
        stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`device add --config-out` writes the CA and TLS endpoint; with them the device connects."""
    files = stack.mosquitto.files
    assert stack.mosquitto.tls_port is not None
    for name, value in {
        "DOLBOM_DATABASE_URL": stack.database_url, "DOLBOM_BROKER_PASSWD": str(files.passwd),
        "DOLBOM_BROKER_ACL": str(files.acl), "DOLBOM_BROKER_PID_FILE": str(files.pid_file),
        "DOLBOM_BROKER_OWNER": files.owner or "", "DOLBOM_DEVICE_CA_FILE": str(stack.ca_file),
        "DOLBOM_DEVICE_MQTT_TLS_PORT": str(stack.mosquitto.tls_port),
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["site", "add", "t3", "--name", "T3"]) == 0
    out = tmp_path / "btn-t3.json"
    assert main(["device", "add", "btn-t3", "--site", "t3", "--kind", "button",
                 "--config-out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    cfg = json.loads(out.read_text())
    assert cfg["ca"] == stack.ca_file.read_text()
    assert (cfg["tls_host"], cfg["tls_port"]) == ("127.0.0.1", stack.mosquitto.tls_port)
    assert {"broker_host", "broker_port", "username", "password", "topic_prefix"} <= set(cfg)
    ctx = ssl.create_default_context(cadata=cfg["ca"])  # the device trusts only this PEM
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2

    async def connected() -> bool:
        async with Client(cfg["tls_host"], cfg["tls_port"], cfg["device"],
                          username=cfg["username"], password=cfg["password"], ssl=ctx) as c:
            return c.connected

    # The registry reloads the broker with SIGHUP: the new user is known within moments.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            assert await connected()
            break
        except MqttError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
