"""``dolbom firmware``: build a node's bundle and flash it.

    dolbom firmware bundle --config dev.json --board esp32 --out DIR \
        [--sensors button,door] [--wifi-ssid S] [--profile wiring.json] [--set key=json]
    dolbom firmware flash DIR --port /dev/ttyUSB0 [--dry-run]
    dolbom firmware boards

The Wi-Fi password is read from ``DOLBOM_WIFI_PASSWORD`` (never a command-line
argument: it would show in ``ps`` and shell history).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path
from typing import Any

from dolbom.fwtool.bundle import BundleOptions, build
from dolbom.fwtool.errors import FirmwareToolError
from dolbom.fwtool.flash import flash, flash_command
from dolbom.fwtool.profiles import BOARDS


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise FirmwareToolError(f"--set {item!r}: use KEY=JSON, e.g. hb=30")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _bundle(args: argparse.Namespace) -> int:
    profile = None
    if args.profile is not None:
        try:
            profile = json.loads(args.profile.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise FirmwareToolError(f"cannot read profile {args.profile}: {e}") from None
    sensors = None
    if args.sensors is not None:
        sensors = tuple(s for s in args.sensors.split(",") if s)
    opts = BundleOptions(board=args.board, sensors=sensors, wifi_ssid=args.wifi_ssid,
                         wifi_password=os.environ.get("DOLBOM_WIFI_PASSWORD", ""),
                         profile=profile, extra=_parse_set(args.set or []))
    b = build(args.config, args.out, opts, source=args.source)
    print(f"bundle for {b.config['device']} ({b.config['board']}) in {b.path}: "
          f"{len(b.files)} files, {b.size_bytes} bytes of code; "
          f"sensors: {', '.join(b.config['sensors']) or 'none'}")
    if "wifi" not in b.config:
        print("note: no --wifi-ssid given; the node will not join a network")
    return 0


def _flash(args: argparse.Namespace) -> int:
    cmd = flash_command(args.bundle, args.port)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return flash(args.bundle, args.port)


def _boards(args: argparse.Namespace) -> int:
    for name, prof in BOARDS.items():
        pins = ", ".join(f"{s}={v.get('pin', v)}" for s, v in prof["sensors"].items())
        print(f"{name}: {pins}")
    return 0


def _guard(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except FirmwareToolError as e:
            print(f"error: {e}")
            return 2

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("firmware", help="build and flash node firmware (ESP32, Pico W)")
    fs = p.add_subparsers(dest="firmware_command", metavar="ACTION", required=True)

    b = fs.add_parser("bundle", help="compile the firmware with a device's config")
    b.add_argument("--config", type=Path, required=True,
                   help="device config from `dolbom device add --config-out`")
    b.add_argument("--board", default="esp32", choices=sorted(BOARDS))
    b.add_argument("--out", type=Path, required=True, help="new, empty directory")
    b.add_argument("--sensors", help="comma-separated; default: by device kind")
    b.add_argument("--wifi-ssid", help="password from DOLBOM_WIFI_PASSWORD")
    b.add_argument("--profile", type=Path, help="JSON wiring that replaces the board's")
    b.add_argument("--set", action="append", metavar="KEY=JSON",
                   help="any other config key, e.g. --set hb=30 --set power=\"battery\"")
    b.add_argument("--source", type=Path, default=None,
                   help="the firmware directory (default: this checkout's firmware/)")
    b.set_defaults(func=_guard(_bundle))

    f = fs.add_parser("flash", help="copy a bundle to a board with mpremote and reset it")
    f.add_argument("bundle", type=Path)
    f.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    f.add_argument("--dry-run", action="store_true", help="print the mpremote command only")
    f.set_defaults(func=_guard(_flash))

    bl = fs.add_parser("boards", help="board profiles and their pins")
    bl.set_defaults(func=_guard(_boards))
