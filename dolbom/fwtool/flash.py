"""Flash a bundle onto a board with ``mpremote`` (one invocation, chained with ``+``).

1. remove stale firmware sources: MicroPython imports ``x.py`` before ``x.mpy``, so an
   old ``node.py`` left by a developer would shadow the new ``node.mpy``;
2. copy the bundle (``fs cp -r``);
3. reset, so ``boot.py`` and ``main.py`` run.

The device's state (``boot.txt``, ``outbox.jl`` with unacknowledged alarms,
``override.json``) is kept: flashing must never lose a pending alarm.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from dolbom.fwtool.errors import FirmwareToolError

KEEP = ("boot.txt", "bootfail.txt", "outbox.jl", "override.json")


def mpremote_executable() -> str:
    exe = Path(sys.executable).with_name("mpremote")
    if exe.exists():
        return str(exe)
    return shutil.which("mpremote") or "mpremote"


def _cleanup_script(bundle: Path) -> str:
    stale = sorted(p.with_suffix(".py").as_posix() for p in _entries(bundle, ".mpy"))
    return ("import os\n"
            f"for f in {stale!r}:\n"
            " try:\n  os.remove(f)\n except OSError:\n  pass\n")


def _entries(bundle: Path, suffix: str) -> list[Path]:
    return sorted(p.relative_to(bundle) for p in bundle.rglob(f"*{suffix}"))


def flash_command(bundle: Path, port: str) -> list[str]:
    """The exact mpremote command line that flashes ``bundle`` to the board on ``port``."""
    manifest = bundle / "manifest.json"
    if not manifest.exists() or not (bundle / "config.json").exists():
        raise FirmwareToolError(f"{bundle} is not a bundle (build one with `firmware bundle`)")
    json.loads(manifest.read_text())  # a torn manifest means a torn bundle
    top = sorted(p for p in bundle.iterdir() if p.name != "manifest.json")
    return [mpremote_executable(), "connect", port,
            "exec", _cleanup_script(bundle), "+",
            "fs", "cp", "-r", *[str(p) for p in top], ":", "+",
            "reset"]


def flash(bundle: Path, port: str) -> int:
    cmd = flash_command(bundle, port)
    return subprocess.run(cmd, check=False).returncode
