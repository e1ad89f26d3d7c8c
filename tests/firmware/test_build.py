"""The firmware builds: every module compiles with mpy-cross and type-checks against
the MicroPython ESP32 and Pico W stubs (installed by ``./dev setup`` into
``.venv/stubs/<board>``); the deploy tool builds a bundle from the registry's device
config and flashes with the exact mpremote command line shown here."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dolbom.cli import main as dolbom_main
from dolbom.fwtool.bundle import BundleOptions, build, default_source, modules, mpy_cross_command
from dolbom.fwtool.errors import FirmwareToolError
from dolbom.fwtool.flash import flash_command, mpremote_executable

FIRMWARE = default_source()
VENV = Path(sys.executable).parent.parent
STUBS = VENV / "stubs"


def test_every_module_compiles_with_mpy_cross(tmp_path: Path) -> None:
    """Each firmware module compiles to .mpy (a syntax MicroPython lacks fails here)."""
    mods = modules(FIRMWARE)
    assert len(mods) >= 20 and Path("sensors/ld2410.py") in mods
    for rel in mods:
        out = tmp_path / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([*mpy_cross_command(), "-o", str(out), str(FIRMWARE / rel)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, f"{rel}: {r.stderr}"
        assert out.read_bytes()[:1] == b"M"  # an .mpy header


def _mypy_config(tmp: Path, stubs: Path) -> Path:
    # The stubs are checked as part of the build when found on MYPYPATH; their own
    # rough edges (and the private modules they import) are not the firmware's.
    names = sorted({p.name.removesuffix(".pyi") for p in stubs.iterdir()
                    if p.suffix == ".pyi" or (p.is_dir() and not p.name.endswith("-info")
                                              and p.name != "stdlib")})
    cfg = tmp / "mypy.ini"
    cfg.write_text("[mypy]\npython_version = 3.11\ncheck_untyped_defs = True\n"
                   "no_site_packages = True\nwarn_unused_ignores = True\n"
                   "explicit_package_bases = True\n\n"
                   f"[mypy-{','.join(n + ',' + n + '.*' for n in names)},_io]\n"
                   "ignore_errors = True\nignore_missing_imports = True\n")
    return cfg


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_firmware_type_checks_against_the_board_stubs(tmp_path: Path, board: str) -> None:
    """mypy, with the board's MicroPython stubs as typeshed and library: calls into
    machine/network/asyncio must exist on that board with those arguments."""
    stubs = STUBS / board
    assert (stubs / "machine.pyi").exists(), f"no stubs in {stubs}: run ./dev setup"
    env = dict(os.environ, MYPYPATH=str(stubs))
    files = [str(p) for p in modules(FIRMWARE)]
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file",
                        str(_mypy_config(tmp_path, stubs)), "--custom-typeshed-dir",
                        str(stubs), "--cache-dir", str(tmp_path / "cache"), *files],
                       cwd=FIRMWARE, env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


# ---------------------------------------------------------------- the deploy tool
def _registry_config(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A device config written by the real registry CLI (`device add --config-out`)."""
    monkeypatch.setenv("DOLBOM_DATABASE_URL", f"sqlite:///{tmp / 'reg.db'}")
    monkeypatch.setenv("DOLBOM_MQTT__HOST", "10.0.0.5")
    monkeypatch.setenv("DOLBOM_MQTT__PORT", "1883")
    out = tmp / "dev.json"
    for argv in (["registry", "migrate"], ["site", "add", "s1", "--name", "Site 1"],
                 ["home", "add", "h1", "--site", "s1"],
                 ["device", "add", "esp32-a1b2c3", "--site", "s1", "--home", "h1", "--kind",
                  "button", "--power", "battery", "--config-out", str(out)]):
        assert dolbom_main(argv) == 0, argv
    return out


def test_bundle_from_the_registry_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`dolbom firmware bundle` compiles the firmware and writes config.json (0600) with
    the registry's identity + the board's wiring for the kind's sensors + Wi-Fi."""
    dev = _registry_config(tmp_path, monkeypatch)
    capsys.readouterr()
    monkeypatch.setenv("DOLBOM_WIFI_PASSWORD", "wifi-secret")
    out = tmp_path / "bundle"
    rc = dolbom_main(["firmware", "bundle", "--config", str(dev), "--board", "esp32",
                      "--out", str(out), "--wifi-ssid", "home-ap", "--set", "sleep_s=600"])
    assert rc == 0, capsys.readouterr()
    assert "wifi-secret" not in capsys.readouterr().out
    registry = json.loads(dev.read_text())
    cfg = json.loads((out / "config.json").read_text())
    for key in ("site", "device", "kind", "power", "hb", "broker_host", "broker_port",
                "username", "password", "topic_prefix"):
        assert cfg[key] == registry[key], key
    assert cfg["broker_host"] == "10.0.0.5" and cfg["power"] == "battery"
    assert cfg["sensors"] == {"button": {"pin": 25}, "battery": {"pin": 35, "divider": 2.0}}
    assert cfg["wifi"] == {"ssid": "home-ap", "password": "wifi-secret"}
    assert cfg["sleep_s"] == 600 and cfg["led"] == {"pin": 2}
    assert stat.S_IMODE((out / "config.json").stat().st_mode) == 0o600
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fw"] == "1.0.0" and manifest["board"] == "esp32"
    assert (out / "main.py").exists() and (out / "boot.py").exists()
    assert (out / "node.mpy").exists() and (out / "sensors" / "button.mpy").exists()
    assert not list(out.rglob("node.py"))  # compiled, not source
    print(f"\nfirmware bundle: {manifest['code_bytes']} bytes of compiled code")
    assert manifest["code_bytes"] < 64 * 1024  # fits easily in a 2 MB LittleFS partition


def test_flash_runs_this_exact_mpremote_command(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`dolbom firmware flash --dry-run` prints the one mpremote invocation: remove stale
    sources (x.py shadows x.mpy), copy the bundle, reset; device state is not touched."""
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps({"site": "s1", "device": "esp32-a1b2c3", "kind": "door",
                               "broker_host": "h", "broker_port": 1883,
                               "username": "esp32-a1b2c3", "password": "p"}))
    out = tmp_path / "b"
    build(dev, out, BundleOptions(board="pico_w"))
    cmd = flash_command(out, "/dev/ttyACM0")
    top = sorted(str(p) for p in out.iterdir() if p.name != "manifest.json")
    assert cmd[:4] == [mpremote_executable(), "connect", "/dev/ttyACM0", "exec"]
    script = cmd[4]
    assert "os.remove" in script and "'node.py'" in script and "'sensors/door.py'" in script
    assert "outbox.jl" not in script and "boot.txt" not in script  # pending alarms survive
    assert cmd[5:] == ["+", "fs", "cp", "-r", *top, ":", "+", "reset"]
    assert dolbom_main(["firmware", "flash", str(out), "--port", "/dev/ttyACM0",
                        "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == shlex.join(cmd)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["board"] == "rp2" and cfg["sensors"] == {"door": {"pin": 14},
                                                        "battery": {"pin": 29, "divider": 3.0}}


@pytest.mark.parametrize(("change", "message"), [
    ({"device": "Not Valid"}, "not a valid id"),
    ({"password": ""}, "lacks password"),
    ({"v": 2}, "unsupported config version"),
])
def test_bundle_refuses_a_bad_device_config(tmp_path: Path, change: dict[str, object],
                                            message: str) -> None:
    """A broken registry config is refused with a clear message, before anything is built."""
    base: dict[str, object] = {"v": 1, "site": "s1", "device": "esp32-a1b2c3",
                               "kind": "button", "broker_host": "h", "broker_port": 1883,
                               "username": "u", "password": "p"}
    base.update(change)
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps(base))
    with pytest.raises(FirmwareToolError, match=message):
        build(dev, tmp_path / "b", BundleOptions())
    assert not (tmp_path / "b").exists()


def test_bundle_refuses_unknown_sensors_and_non_empty_dirs(tmp_path: Path) -> None:
    """Unknown sensor names and a non-empty output directory are errors (no overwrite of
    another device's config)."""
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps({"site": "s1", "device": "d1", "broker_host": "h",
                               "broker_port": 1, "username": "u", "password": "p"}))
    with pytest.raises(FirmwareToolError, match="unknown sensor 'lidar'"):
        build(dev, tmp_path / "a", BundleOptions(sensors=("lidar",)))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{}")
    with pytest.raises(FirmwareToolError, match="not empty"):
        build(dev, tmp_path / "b", BundleOptions())
