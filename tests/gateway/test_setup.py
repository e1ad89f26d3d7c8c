"""``dolbom gateway provision`` and ``setup`` as commands: the files they write, the
central broker's ACL after provisioning, and an idempotent install into a temp root
(systemd cannot run here; the units are checked as files, and against the copies in
the repository's gateway/ folder)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pydantic import BaseModel

from dolbom.gateway.provision import LOCAL_GATEWAY_USER, provision
from dolbom.gateway.settings import GatewaySettings
from dolbom.gateway.setup import BROKER_UNIT, BROKER_UNIT_TEXT, GATEWAY_UNIT, gateway_unit, setup
from dolbom.mqtt import Client, ConnectRefused, Received, client_context
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.settings import load
from dolbom.stack.proc import free_port, give_to, service_user, start, stop, wait_port, which
from dolbom.stack.stack import Stack
from tests.gateway.conftest import TOPICS
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def dolbom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOLBOM_")}
    return subprocess.run([sys.executable, "-m", "dolbom.cli", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_provision_then_setup_into_a_temp_root(central: Stack, tmp_path: Path) -> None:
    """provision registers the gateway and its child and writes loadable settings and a
    local broker whose ACL names the child; setup installs them with the right modes,
    and a second run changes nothing."""
    site = "pv" + secrets.token_hex(3)
    with session_factory(central.database_url).begin() as s:
        registry.add_site(s, site, site)
        registry.add_home(s, "h" + site, site)
        registry.add_device(s, "kid-" + site, site, "h" + site, "door")
    f = central.mosquitto.files
    env = {"DOLBOM_DATABASE_URL": central.database_url, "DOLBOM_BROKER_PASSWD": str(f.passwd),
           "DOLBOM_BROKER_ACL": str(f.acl), "DOLBOM_BROKER_PID_FILE": str(f.pid_file)}
    out = tmp_path / "out"
    r = dolbom("gateway", "provision", "--site", site, "--gateway", "gw-" + site, "--home",
               "h" + site, "--child", "kid-" + site, "--z2m", "hall=zb-" + site,
               "--central-host", "broker.example.org", "--ca-file", str(central.ca_file),
               "--out", str(out), env=env)
    assert r.returncode == 1 and "zb-" + site in r.stderr  # not registered: refused
    r = dolbom("gateway", "provision", "--site", site, "--gateway", "gw-" + site, "--home",
               "h" + site, "--child", "kid-" + site, "--central-host", "broker.example.org",
               "--ca-file", str(central.ca_file), "--ha-discovery", "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["gateway"] == "gw-" + site
    acl = f.acl.read_text().split(f"user gw-{site}\n")[1].split("\n\n")[0]
    assert f"care/v1/{site}/kid-{site}/telemetry" in acl
    assert (out / "gateway.env").stat().st_mode & 0o777 == 0o600
    assert (out / "local-accounts.env").stat().st_mode & 0o777 == 0o600
    assert "ZIGBEE2MQTT_MQTT_PASSWORD=" in (out / "local-accounts.env").read_text()
    assert f"user kid-{site}" in (out / "mosquitto" / "acl").read_text()
    assert "listener 1883 127.0.0.1" in (out / "mosquitto" / "dolbom.conf").read_text()

    root = tmp_path / "root"
    first = setup(out, root, systemctl=False)
    etc = root / "etc/dolbom-gateway"
    assert etc / "gateway.env" in first and (etc / "gateway.env").stat().st_mode & 0o777 == 0o600
    assert (etc / "mosquitto/passwd").stat().st_mode & 0o777 == 0o600
    units = root / "etc/systemd/system"
    assert "Restart=always" in (units / GATEWAY_UNIT).read_text()
    assert "Restart=always" in (units / BROKER_UNIT).read_text()
    assert setup(out, root, systemctl=False) == []  # idempotent
    r = dolbom("gateway", "setup", "--from", str(out), "--root", str(root), "--no-systemctl",
               env={})
    assert r.returncode == 0 and "nothing changed" in r.stdout
    # the installed settings load (paths point where setup put them on the Pi)
    values = dict(line.split("=", 1) for line in (etc / "gateway.env").read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    assert values["DOLBOM_GW_CENTRAL__TLS__CA_FILE"] == "/etc/dolbom-gateway/ca.crt"
    values["DOLBOM_GW_CENTRAL__TLS__CA_FILE"] = str(etc / "ca.crt")
    env_file = tmp_path / "check.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    s = load(GatewaySettings, env_file)
    assert s.central.use_tls and s.central.port == 8883 and s.children == ["kid-" + site]
    assert s.discovery.enabled and s.discovery.kinds == {"kid-" + site: "door"}


def test_repository_units_are_what_setup_writes() -> None:
    """gateway/systemd/ in the repository is exactly what `dolbom gateway setup` installs."""
    d = REPO / "gateway" / "systemd"
    assert (d / BROKER_UNIT).read_text() == BROKER_UNIT_TEXT
    assert (d / GATEWAY_UNIT).read_text() == gateway_unit()


def test_gateway_run_help_and_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """The commands have --help; a bad setting stops `run` with one line naming it."""
    from dolbom.cli import main

    for cmd in ("run", "provision", "setup"):
        with pytest.raises(SystemExit) as e:
            main(["gateway", cmd, "--help"])
        assert e.value.code == 0 and "usage: dolbom gateway " + cmd in capsys.readouterr().out
    r = dolbom("gateway", "run", env={"DOLBOM_GW_SITE": "s1", "DOLBOM_GW_GATEWAY_ID": "GW!"})
    assert r.returncode != 0 and "gateway_id" in r.stderr and len(r.stderr.splitlines()) == 1


def _leaves(model: type[BaseModel], prefix: str) -> set[str]:
    out: set[str] = set()
    for name, f in model.model_fields.items():
        t = f.annotation
        if isinstance(t, type) and issubclass(t, BaseModel):
            out |= _leaves(t, f"{prefix}{name.upper()}__")
        else:
            out.add(prefix + name.upper())
    return out


def test_example_env_lists_every_setting_and_loads(tmp_path: Path) -> None:
    """gateway/gateway.env.example names every option (password fields included) and,
    with a site and an id filled in, loads as the defaults."""
    text = (REPO / "gateway" / "gateway.env.example").read_text()
    keys = {line.split("=", 1)[0] for line in text.splitlines()
            if "=" in line and not line.startswith("#")}
    assert keys == _leaves(GatewaySettings, "DOLBOM_GW_")
    f = tmp_path / "gw.env"
    f.write_text(text.replace("DOLBOM_GW_SITE=\n", "DOLBOM_GW_SITE=s1\n")
                 .replace("DOLBOM_GW_GATEWAY_ID=\n", "DOLBOM_GW_GATEWAY_ID=gw-1\n"))
    s = load(GatewaySettings, f)
    defaults = GatewaySettings(site="s1", gateway_id="gw-1")
    assert s.model_dump() == defaults.model_dump()


async def test_provisioned_local_broker_runs_with_its_tls_listener(
        central: Stack, tmp_path: Path, runtime_dir: Path) -> None:
    """The local broker config provision writes runs as is on the real Mosquitto: a child
    logs in with its own (central) password over the home-network TLS listener, trusting
    the project's CA, and may publish only its own topics; the gateway's account reads
    them on loopback."""
    site = "lb" + secrets.token_hex(3)
    pw: dict[str, str] = {}
    with session_factory(central.database_url).begin() as s:
        registry.add_site(s, site, site)
        registry.add_home(s, "h" + site, site)
        for dev in ("kid-" + site, "other-" + site):
            _, pw[dev] = registry.add_device(s, dev, site, "h" + site, "multisensor")
    out = Path(tempfile.mkdtemp(prefix="gwprov-", dir=runtime_dir))
    port, tls_port = free_port(), free_port()
    p = provision(central.database_url, out, site=site, gateway_id="gw-" + site,
                  home="h" + site, children=["kid-" + site], central_host="127.0.0.1",
                  central_port=8883, ca_file=central.ca_file, topics=TOPICS, local_port=port,
                  local_tls_port=tls_port, ca_dir=central.ca_dir, lan_hosts=["127.0.0.1"],
                  data_dir=out / "gwdata", etc_dir=out)
    (out / "gwdata-mosquitto").mkdir()
    user = service_user("mosquitto")
    give_to(out, user)
    broker = start([which("mosquitto"), "-c", str(out / "mosquitto" / "dolbom.conf")],
                   tmp_path / "mosquitto.log", user)
    try:
        wait_port(tls_port, broker, 10, "local mosquitto (TLS)", tmp_path / "mosquitto.log")
        got: list[Received] = []
        gw = Client("127.0.0.1", port, "gw", username=LOCAL_GATEWAY_USER,
                    password=p.local_passwords[LOCAL_GATEWAY_USER], on_message=got.append)
        kid = Client("127.0.0.1", tls_port, "kid", username="kid-" + site,
                     password=pw["kid-" + site], ssl=client_context(central.ca_file))
        async with gw, kid:
            await gw.subscribe([(f"care/v1/{site}/#", 1)])
            await kid.publish(TOPICS.telemetry(site, "kid-" + site), b"{}", qos=1)
            await kid.publish(TOPICS.telemetry(site, "other-" + site), b"{}", qos=1)
            await eventually(lambda: len(got) >= 1, 5, "the child's message")
            await asyncio.sleep(0.3)
        assert [m.topic for m in got] == [TOPICS.telemetry(site, "kid-" + site)]
        with pytest.raises(ConnectRefused):  # not a child of this gateway
            await Client("127.0.0.1", port, "x", username="other-" + site,
                         password=pw["other-" + site]).connect()
    finally:
        stop(broker)
