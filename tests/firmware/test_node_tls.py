"""The node over TLS: the real firmware (mpy-cross bundle) under the real MicroPython unix
port, on a simulated ESP32, against the real Mosquitto's TLS listener and the real alerts
service (which journals life-safety events and sends the ``ack``). The device config
carries the CA's PEM, ``tls_host`` and ``tls_port``, as ``dolbom device add --config-out``
writes them (docs/security-transport.md)."""

from __future__ import annotations

import json
import secrets
import socket
import tempfile
from pathlib import Path

import pytest

from dolbom.certs import CA_CERT, init_ca
from dolbom.stack.stack import Stack
from tests.firmware.conftest import observing, site_id, until
from tests.firmware.simnode import BUTTON, SimNode, device_config, make_flash
from tests.firmware.test_node_broker import HEAP_BUDGET, journal
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tls_flash(stack: Stack, tmp: Path, site: str, dev: str, hook: str, ca_pem: str) -> Path:
    """A home with this device, and its flash: the config's plaintext port is closed, so
    the node can only reach the broker through ``tls_host:tls_port``."""
    pw = care_home(stack, site, "h" + site, {dev: "multisensor"}, hook)
    cfg = device_config(tmp / "dev.json", site, dev, pw[dev], closed_port())
    assert stack.mosquitto.tls_port is not None
    return make_flash(tmp, cfg, ("button", "door", "pir"), ca=ca_pem, tls_host="127.0.0.1",
                      tls_port=stack.mosquitto.tls_port)


async def test_node_with_a_ca_delivers_over_tls_and_gets_its_ack(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path) -> None:
    """A node whose config has the CA dials the TLS listener; a press is journalled and
    acked over TLS and leaves the flash outbox; heap within the node's budget."""
    site, dev = site_id(), "esp32-" + secrets.token_hex(3)
    async with webhook_receiver() as rec:
        flash = tls_flash(fw_stack, tmp_path, site, dev, rec.url, fw_stack.ca_file.read_text())
        node = SimNode(flash)
        nodes.append(node)
        async with running_alerts(alerts_settings(fw_stack), Clock()), \
                observing(fw_stack, site, dev) as obs:
            node.start()
            await node.wait_for(r"mqtt up 1", 20)
            await until(lambda: obs.of("status"), 5, "the retained ready status")
            mark = node.count()
            await node.press(BUTTON, 200)
            (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5, after=mark)
            seq = int(kept.group(1))
            await node.wait_for(rf"acked 1 {seq} pending 0", 15, after=mark)
            assert node.outbox() == []
            assert journal(fw_stack, dev) == [(1, seq)]
            await until(lambda: obs.of("event/button"), 5, "the press on the broker")
            await node.wait_for(r"heap live", 5)
        live, alloc, sim = node.heap_figures()
        # Held to the same budget as the plaintext node (test_node_broker.py), although
        # the unix port allocates mbedTLS's own state (context, CA chain, session) on
        # the MicroPython heap, where an ESP32 keeps it in the IDF heap beside Wi-Fi's
        # buffers (docs/security-transport.md, "Heap").
        print(f"\nfirmware heap over TLS: peak live {live} B, peak allocated {alloc} B "
              f"(simulator's own {sim} B excluded; 64-bit unix port)")
        assert live < HEAP_BUDGET, f"peak live heap over TLS {live} B > {HEAP_BUDGET} B"
    assert not node.find(r"mqtt connect")  # no failed attempt: the first dial was TLS


async def test_node_with_another_ca_delivers_nothing_and_says_why(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, runtime_dir: Path) -> None:
    """A CA that did not sign the broker's certificate: the node logs the refused
    certificate, never connects, and keeps the press in its flash outbox."""
    other = Path(tempfile.mkdtemp(prefix="fwca-other-", dir=runtime_dir))
    init_ca(other)
    site, dev = site_id(), "esp32-" + secrets.token_hex(3)
    async with webhook_receiver() as rec:
        flash = tls_flash(fw_stack, tmp_path, site, dev, rec.url,
                          (other / CA_CERT).read_text())
        node = SimNode(flash)
        nodes.append(node)
        async with observing(fw_stack, site, dev) as obs:
            node.start()
            await node.wait_for(r"@wdt start", 10)  # the node's tasks are running
            mark = node.count()
            await node.press(BUTTON, 200)
            (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5, after=mark)
            # Two attempts (backoff 1-2 s), each refused in the handshake, before CONNECT.
            await node.wait_for(r"mqtt connect: .*not correctly signed by the trusted CA", 20,
                                count=2)
            assert not node.find(r"mqtt up")
            assert node.outbox() == [(1, int(kept.group(1)))]
            assert obs.received == []
    assert journal(fw_stack, dev) == []


async def test_node_refuses_plaintext_to_a_broker_off_loopback(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path) -> None:
    """A config with a broker that is not loopback and no CA: one line saying the node
    refuses to send its password in plaintext, and no MQTT attempt at all."""
    cfg = tmp_path / "dev.json"
    device_config(cfg, site_id(), "esp32-" + secrets.token_hex(3), "pw", 1883)
    fields = json.loads(cfg.read_text())
    fields["broker_host"] = "10.0.0.5"
    cfg.write_text(json.dumps(fields))
    node = SimNode(make_flash(tmp_path, cfg, ("button",)))
    nodes.append(node)
    node.start()
    (line,) = await node.wait_for(r"config error: (.*)", 15)
    assert "10.0.0.5" in line.group(1) and "plaintext" in line.group(1) \
        and "password" in line.group(1), line.group(0)
    assert not node.find(r"mqtt")
