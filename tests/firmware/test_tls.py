"""The firmware's MQTT client over TLS, under the real MicroPython unix port (its mbedTLS
``tls``), against the real Mosquitto's TLS listener; the CA comes as PEM text, as in a
device config written by ``dolbom device add --config-out``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dolbom.certs import CA_CERT, init_ca, issue_service
from dolbom.mqtt import Client
from dolbom.stack.mosquitto import Mosquitto, TlsFiles
from tests.firmware.simnode import MPY_DIR, micropython

pytestmark = pytest.mark.integration

FIRMWARE = Path(__file__).parent.parent.parent / "firmware"
USER, PASSWORD = "esp32-tls1", "tls-device-pw"
OBSERVER = "observer"
TOPIC = "care/v1/s1/esp32-tls1/telemetry"

# Connects with the firmware's mqttc.Client, publishes one QoS 1 message (returns at the
# broker's PUBACK), prints one JSON line.
SCRIPT = """
import sys, json
sys.path.insert(0, %(mpy)r)
import simhw
sys.modules["machine"] = simhw
sys.modules["network"] = simhw
sys.modules["esp32"] = simhw
sys.path.insert(0, %(fw)r)
import asyncio
import mqttc

req = json.loads(sys.stdin.read())

async def main():
    c = mqttc.Client(req["id"], req["host"], req["port"], req["user"], req["password"], 30,
                     req["topic"] + "/will", b"lost", lambda t, p: None, ca=req["ca"])
    try:
        await c.connect(timeout_ms=10000)
        await c.publish(req["topic"], b"over tls", 1)
        await c.disconnect()
        print(json.dumps({"ok": True}))
    except mqttc.MQTTError as e:
        print(json.dumps({"ok": False, "error": str(e)}))

asyncio.run(main())
"""


def firmware_publish(tmp_path: Path, broker: Mosquitto, ca_pem: str,
                     client_id: str) -> dict[str, object]:
    script = tmp_path / "tls_probe.py"
    script.write_text(SCRIPT % {"mpy": str(MPY_DIR), "fw": str(FIRMWARE)})
    req = {"id": client_id, "host": "127.0.0.1", "port": broker.tls_port, "user": USER,
           "password": PASSWORD, "topic": TOPIC, "ca": ca_pem}
    p = subprocess.run([micropython(), str(script)], input=json.dumps(req), text=True, check=False,
                       capture_output=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    result: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
    return result


def start_broker(root: Path, ca_dir: Path, name: str, hosts: list[str]) -> Mosquitto:
    cert = issue_service(ca_dir, name, hosts)
    b = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-fwtls-", dir=root)),
                  tls=TlsFiles(ca_dir / CA_CERT, cert.cert, cert.key))
    b.prepare()
    for user, pw in ((USER, PASSWORD), (OBSERVER, PASSWORD)):
        subprocess.run(["mosquitto_passwd", "-b", str(b.files.passwd), user, pw], check=True)
    b.files.acl.write_text(f"user {USER}\ntopic readwrite care/v1/s1/{USER}/#\n"
                           f"user {OBSERVER}\ntopic read care/v1/#\n")
    if b.user is not None:
        subprocess.run(["chown", f"{b.user}:", str(b.files.passwd), str(b.files.acl)],
                       check=True)
    b.start()
    return b


@pytest.fixture(scope="module")
def ca_dir(runtime_dir: Path) -> Path:
    d = Path(tempfile.mkdtemp(prefix="fwca-", dir=runtime_dir))
    init_ca(d)
    return d


@pytest.fixture(scope="module")
def broker(runtime_dir: Path, ca_dir: Path) -> Iterator[Mosquitto]:
    b = start_broker(runtime_dir, ca_dir, "mosquitto", ["127.0.0.1", "localhost"])
    yield b
    b.stop()


async def test_firmware_connects_and_publishes_over_tls(tmp_path: Path, broker: Mosquitto,
                                                        ca_dir: Path) -> None:
    """With the right CA's PEM the firmware client connects over TLS, gets its PUBACK, and
    the message reaches a subscriber."""
    async with Client("127.0.0.1", broker.port, "obs", username=OBSERVER,
                      password=PASSWORD) as obs:
        await obs.subscribe([(TOPIC, 1)])
        result = await asyncio.to_thread(firmware_publish, tmp_path, broker,
                                         (ca_dir / CA_CERT).read_text(), "fw-ok")
        assert result == {"ok": True}
        async with asyncio.timeout(10):
            msg = await anext(aiter(obs.messages()))
    assert (msg.topic, msg.payload) == (TOPIC, b"over tls")


def test_firmware_refuses_a_broker_signed_by_another_ca(tmp_path: Path, broker: Mosquitto,
                                                        runtime_dir: Path) -> None:
    """A CA other than the broker's is refused in the TLS handshake (before CONNECT)."""
    other = Path(tempfile.mkdtemp(prefix="fwca-other-", dir=runtime_dir))
    init_ca(other)
    result = firmware_publish(tmp_path, broker, (other / CA_CERT).read_text(), "fw-wrong-ca")
    assert result["ok"] is False and "not correctly signed by the trusted CA" in str(
        result["error"]), result


def test_firmware_checks_the_broker_host_name(tmp_path: Path, runtime_dir: Path,
                                              ca_dir: Path) -> None:
    """The right CA but a certificate for another host than the one dialled is refused."""
    b = start_broker(runtime_dir, ca_dir, "elsewhere", ["broker.example.org"])
    try:
        result = firmware_publish(tmp_path, b, (ca_dir / CA_CERT).read_text(), "fw-wrong-name")
    finally:
        b.stop()
    assert result["ok"] is False and "CN" in str(result["error"]), result


def test_firmware_refuses_a_ca_that_is_not_pem(tmp_path: Path, broker: Mosquitto) -> None:
    """A config whose "ca" is not a PEM certificate fails the link (mbedTLS: "invalid
    cert"), not the node."""
    result = firmware_publish(tmp_path, broker, "not a certificate", "fw-bad-pem")
    assert result["ok"] is False and "invalid cert" in str(result["error"]), result
