"""The registry commands, run through ``dolbom.cli.main`` as an operator would."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url

from dolbom.cli import main
from dolbom.mqtt import Client, ConnectionLost, ConnectRefused
from dolbom.protocol import Topics
from dolbom.registry import service as svc
from dolbom.registry.db import session_factory
from dolbom.registry.models import Device
from dolbom.stack.mosquitto import Mosquitto

BROKER_ENV = ("DOLBOM_BROKER_PASSWD", "DOLBOM_BROKER_ACL", "DOLBOM_BROKER_PID_FILE",
              "DOLBOM_BROKER_OWNER")


RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture()
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run ``dolbom ARGS`` with a clean DOLBOM_* environment; returns (rc, stdout, stderr)."""
    for name in (*BROKER_ENV, "DOLBOM_DATABASE_URL", "DOLBOM_MQTT__HOST", "DOLBOM_MQTT__PORT"):
        monkeypatch.delenv(name, raising=False)

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOLBOM_DATABASE_URL", db_url)
    return db_url


def test_provision_a_home_from_the_command_line(run: RunCli, db: str) -> None:
    """migrate, site/home/resident/device add, list and revoke work end to end."""
    assert run("registry", "migrate")[0] == 0
    rc, out, _ = run("registry", "migrate")
    secret = make_url(db).password
    assert rc == 0 and "up to date" in out and (not secret or str(secret) not in out)
    assert run("site", "add", "s1", "--name", "Seoul centre") == (
        0, "site s1 added (cell default)\n", "")
    assert run("home", "add", "h1", "--site", "s1", "--label", "case-7")[0] == 0
    rc, out, _ = run("resident", "add", "--home", "h1", "--name", "김영희", "--phone", "010-1",
                     "--address", "서울", "--birth-year", "1941", "--wandering")
    assert rc == 0 and out == "resident 1 added to home h1\n"  # no personal data echoed

    rc, out, err = run("device", "add", "esp32-a1", "--site", "s1", "--home", "h1",
                       "--kind", "multisensor")
    assert rc == 0
    password = out.split("MQTT password (shown once): ")[1].strip()
    assert len(password) == 32 and out.count(password) == 1
    assert "warning: broker not updated" in _one_line_error(err)
    with session_factory(db)() as s:
        d = s.get(Device, "esp32-a1")
        assert d is not None and password not in d.mqtt_hash

    rc, out, _ = run("device", "add", "door-1", "--site", "s1", "--kind", "door",
                     "--power", "battery", "--hb", "600")
    assert rc == 0
    rc, out, _ = run("device", "list")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["DEVICE", "SITE", "HOME"]
    assert [line.split()[:6] for line in lines[1:]] == [
        ["door-1", "s1", "-", "door", "battery", "600"],
        ["esp32-a1", "s1", "h1", "multisensor", "mains", "60"],
    ]
    rc, out, _ = run("device", "revoke", "door-1")
    assert rc == 0 and out.startswith("device door-1 revoked at ")
    assert "door-1" not in run("device", "list")[1]
    assert "door-1" in run("device", "list", "--all")[1]


def test_device_config_file_is_private_and_complete(run: RunCli, db: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """--config-out writes a 0600 JSON config instead of printing the password."""
    monkeypatch.setenv("DOLBOM_DEVICE_MQTT_HOST", "192.168.0.10")
    run("registry", "migrate")
    run("site", "add", "s1", "--name", "S")
    path = tmp_path / "esp32-a1.json"
    rc, out, _ = run("device", "add", "esp32-a1", "--site", "s1", "--kind", "button",
                     "--config-out", str(path))
    assert rc == 0 and "password" not in out.replace("with its MQTT password written", "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = json.loads(path.read_text())
    password = config.pop("password")
    assert config == {"v": 1, "site": "s1", "device": "esp32-a1", "kind": "button",
                      "power": "mains", "hb": 60, "broker_host": "192.168.0.10",
                      "broker_port": 1883, "username": "esp32-a1", "topic_prefix": "care/v1"}
    assert password not in out

    # Never overwrite a file that may hold another device's only password copy; and
    # then no device is created that nobody has the password of.
    rc, _, err = run("device", "add", "esp32-a2", "--site", "s1", "--kind", "button",
                     "--config-out", str(path))
    assert rc == 1 and "already exists" in _one_line_error(err)
    assert "esp32-a2" not in run("device", "list", "--all")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("site", "add", "Bad Id", "--name", "x"), "error: site id 'Bad Id' is not valid"),
        (("home", "add", "h1", "--site", "nope"), "error: site 'nope' does not exist"),
        (("resident", "add", "--home", "h01", "--name", "x"), "error: home 'h01' does not exist"),
        (("device", "add", "gw", "--site", "s1", "--kind", "gateway"), "'gw' is reserved"),
        (("device", "revoke", "nope"), "error: device 'nope' does not exist"),
        (("site", "add", "s1", "--name", "again"), "error: site 's1' already exists"),
        (("deadletters", "list", "--limit", "0"), "error: limit must be at least 1"),
        (("registry", "sync-broker"), "error: set DOLBOM_BROKER_PASSWD"),
    ],
)
def test_errors_are_one_line_and_exit_1(run: RunCli, sqlite_url: str,
                                        monkeypatch: pytest.MonkeyPatch,
                                        args: tuple[str, ...], message: str) -> None:
    """A bad request prints one clear line on stderr, no traceback, and exits 1."""
    monkeypatch.setenv("DOLBOM_DATABASE_URL", sqlite_url)
    run("registry", "migrate")
    run("site", "add", "s1", "--name", "S")
    rc, out, err = run(*args)
    assert (rc, out) == (1, "")
    assert message in _one_line_error(err)


def test_unmigrated_database_and_bad_settings_are_one_line(
    run: RunCli, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing schema says to migrate; half-set broker paths name the option."""
    monkeypatch.setenv("DOLBOM_DATABASE_URL", sqlite_url)
    rc, _, err = run("site", "add", "s1", "--name", "S")
    assert rc == 1 and "run `dolbom registry migrate` first" in _one_line_error(err)
    monkeypatch.setenv("DOLBOM_BROKER_PASSWD", "passwd")
    rc, _, err = run("device", "list")
    assert rc == 1
    assert _one_line_error(err).startswith("config error: broker_pid_file")
    rc, _, err = run("device", "list", "--env-file", "/nonexistent.env")
    assert rc == 1 and "does not exist" in _one_line_error(err)


def test_deadletters_list(run: RunCli, db: str) -> None:
    """Dead letters list newest first, filter by reason, and never print the payload."""
    run("registry", "migrate")
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with session_factory(db).begin() as s:
        svc.add_dead_letters(s, [
            svc.DeadLetterIn(t, "care/v1/s1/d1/telemetry", "d1", "not_json", "bad json",
                             b"SECRET-HEALTH-DATA"),
            svc.DeadLetterIn(t, "care/v1/s1/d2/status", "d2", "bad_state", "state 'x'", b"{}"),
        ])
    rc, out, _ = run("deadletters", "list")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 3 and "bad_state" in lines[1] and "not_json" in lines[2]
    assert "SECRET" not in out and " 18 " in lines[2]
    rc, out, _ = run("deadletters", "list", "--reason", "not_json", "--limit", "5")
    assert rc == 0 and len(out.splitlines()) == 2 and "d1" in out


async def test_cli_provisioning_drives_the_real_broker(
    run: RunCli, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broker: Mosquitto
) -> None:
    """With broker settings, device add lets the device in and device revoke throws it out."""
    files = broker.files
    monkeypatch.setenv("DOLBOM_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DOLBOM_MQTT__PORT", str(broker.port))
    monkeypatch.setenv("DOLBOM_BROKER_PASSWD", str(files.passwd))
    monkeypatch.setenv("DOLBOM_BROKER_ACL", str(files.acl))
    monkeypatch.setenv("DOLBOM_BROKER_PID_FILE", str(files.pid_file))
    if files.owner:
        monkeypatch.setenv("DOLBOM_BROKER_OWNER", files.owner)
    run("registry", "migrate")
    run("site", "add", "s1", "--name", "S")
    cfg = tmp_path / "dev.json"
    rc, _, err = run("device", "add", "d1", "--site", "s1", "--kind", "plug",
                     "--config-out", str(cfg))
    assert (rc, err) == (0, "")
    config = json.loads(cfg.read_text())
    assert config["broker_port"] == broker.port

    loop = asyncio.get_running_loop()
    until = loop.time() + 5.0
    while True:  # bounded: the broker applies the SIGHUP within a moment
        client = Client("127.0.0.1", config["broker_port"], "d1", username=config["username"],
                        password=config["password"])
        try:
            await client.connect(timeout=2.0)
            break
        except ConnectRefused:
            assert loop.time() < until, "device not accepted after device add"
            await asyncio.sleep(0.05)
    await client.publish(Topics(config["topic_prefix"]).status("s1", "d1"), b"{}", qos=1)

    assert run("device", "revoke", "d1")[0] == 0
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(client.wait_closed(), 5.0)
    with pytest.raises(ConnectRefused):
        await Client("127.0.0.1", broker.port, "d1", username="d1",
                     password=config["password"]).connect(timeout=2.0)

    rc, out, _ = run("registry", "sync-broker")
    assert rc == 0 and "broker reloaded" in out
    broker.stop()
    rc, _, err = run("registry", "sync-broker")
    assert rc == 1 and "broker is not running" in _one_line_error(err)
    assert run("registry", "sync-broker", "--no-reload")[0] == 0
