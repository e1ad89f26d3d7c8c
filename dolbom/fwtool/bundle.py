"""Build a firmware bundle: every module compiled by ``mpy-cross`` plus ``config.json``.

    <out>/boot.py  <out>/main.py           plain source (the port runs these by name)
    <out>/*.mpy  <out>/sensors/*.mpy       compiled modules (bytecode, portable)
    <out>/config.json                      0600: the device's MQTT password is in it
    <out>/manifest.json                    board, fw version, file sizes, sha256

The bundle is what ``dolbom firmware flash`` copies to the board, and what the tests
run under the MicroPython unix port, so the code tested is the code shipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dolbom.fwtool.errors import FirmwareToolError
from dolbom.fwtool.profiles import BOARDS, KIND_SENSORS, SENSORS
from dolbom.protocol import is_valid_id

SOURCE_ONLY = frozenset({"boot.py", "main.py"})
REQUIRED = ("site", "device", "broker_host", "broker_port", "username", "password")


def default_source() -> Path:
    """The firmware/ directory of this checkout."""
    return Path(__file__).resolve().parents[2] / "firmware"


def mpy_cross_command() -> list[str]:
    """How to run mpy-cross: the venv's script if present, else the module."""
    exe = Path(sys.executable).with_name("mpy-cross")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mpy-cross")
    if found:
        return [found]
    return [sys.executable, "-m", "mpy_cross"]


def firmware_version(source: Path) -> str:
    m = re.search(r'^FW = "([^"]+)"', (source / "node.py").read_text(), re.M)
    if not m:
        raise FirmwareToolError(f"{source / 'node.py'} has no FW version")
    return m.group(1)


def modules(source: Path) -> list[Path]:
    """Firmware source files, relative to ``source``, sorted."""
    out = [p.relative_to(source) for p in source.rglob("*.py")]
    return sorted(p for p in out if "__pycache__" not in p.parts)


def compile_module(source: Path, rel: Path, out: Path) -> Path:
    """Compile one module; raises FirmwareToolError with mpy-cross's message."""
    dst = out / rel.with_suffix(".mpy")
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*mpy_cross_command(), "-o", str(dst), "-s", rel.as_posix(), str(source / rel)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise FirmwareToolError(f"mpy-cross failed on {rel}: {r.stderr.strip()}")
    return dst


def load_device_config(path: Path) -> dict[str, Any]:
    """The registry's device config (``dolbom device add --config-out``), checked."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FirmwareToolError(f"cannot read device config {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise FirmwareToolError(f"{path} is not a JSON object")
    if cfg.get("v", 1) != 1:
        raise FirmwareToolError(f"{path}: unsupported config version {cfg.get('v')!r}")
    missing = [k for k in REQUIRED if not cfg.get(k)]
    if missing:
        raise FirmwareToolError(f"{path} lacks {', '.join(missing)}")
    for key in ("site", "device"):
        if not is_valid_id(str(cfg[key])):
            raise FirmwareToolError(f"{path}: {key} {cfg[key]!r} is not a valid id")
    return cfg


@dataclass
class BundleOptions:
    board: str = "esp32"
    sensors: tuple[str, ...] | None = None  # None: the defaults for the device kind
    wifi_ssid: str | None = None
    wifi_password: str = ""
    profile: dict[str, Any] | None = None  # replaces the board's built-in profile
    extra: dict[str, Any] = field(default_factory=dict)  # any other config key


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: tuple[Path, ...]  # relative paths
    size_bytes: int  # of the compiled code (excluding config.json)
    config: dict[str, Any]


def node_config(device: dict[str, Any], opts: BundleOptions) -> dict[str, Any]:
    """The firmware's config.json: the registry's fields + wiring + Wi-Fi."""
    if opts.board not in BOARDS and opts.profile is None:
        raise FirmwareToolError(f"unknown board {opts.board!r}; one of {', '.join(BOARDS)}")
    profile = opts.profile if opts.profile is not None else BOARDS[opts.board]
    fitted = opts.sensors
    if fitted is None:
        fitted = KIND_SENSORS.get(str(device.get("kind", "multisensor")), ())
    wiring = profile.get("sensors", {})
    sensors: dict[str, Any] = {}
    for name in fitted:
        if name not in SENSORS:
            raise FirmwareToolError(f"unknown sensor {name!r}; one of {', '.join(SENSORS)}")
        if name not in wiring:
            raise FirmwareToolError(f"the {opts.board} profile has no wiring for {name}")
        sensors[name] = dict(wiring[name])
    cfg = dict(device)
    cfg["sensors"] = sensors
    cfg["board"] = profile.get("board", opts.board)
    for key in ("led", "buzzer"):
        if profile.get(key) is not None:
            cfg[key] = profile[key]
    if opts.wifi_ssid:
        cfg["wifi"] = {"ssid": opts.wifi_ssid, "password": opts.wifi_password}
    cfg.update(opts.extra)
    return cfg


def build(device_config: Path, out: Path, opts: BundleOptions,
          source: Path | None = None) -> Bundle:
    """Compile the firmware and write the device's config into ``out`` (created)."""
    src = source or default_source()
    if not (src / "node.py").exists():
        raise FirmwareToolError(f"{src} is not the firmware source directory")
    device = load_device_config(device_config)
    cfg = node_config(device, opts)
    if out.exists() and any(out.iterdir()):
        raise FirmwareToolError(f"{out} is not empty; choose a new directory")
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    manifest: dict[str, Any] = {}
    for rel in modules(src):
        if rel.name in SOURCE_ONLY and rel.parent == Path("."):
            dst = out / rel
            shutil.copyfile(src / rel, dst)
        else:
            dst = compile_module(src, rel, out)
        r = dst.relative_to(out)
        files.append(r)
        data = dst.read_bytes()
        manifest[r.as_posix()] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    size = sum(int(v["bytes"]) for v in manifest.values())
    conf = out / "config.json"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, sort_keys=True)
        f.write("\n")
    files.append(Path("config.json"))
    (out / "manifest.json").write_text(json.dumps(
        {"fw": firmware_version(src), "board": cfg["board"], "device": cfg["device"],
         "code_bytes": size, "files": manifest}, indent=1, sort_keys=True) + "\n")
    return Bundle(out, tuple(files), size, cfg)
