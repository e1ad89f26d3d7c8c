"""The quick start's main job, run as a newcomer would (shortened with --duration)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
CONSOLE = re.compile(r"Console\s+(http://127\.0\.0\.1:\d+)/console/")
LOGIN = re.compile(r"^\s+(demo-[a-z]+)\s+password (\S+)$", re.M)
GATEWAY_UP = re.compile(r"home demo-gwhome reaches the centre through gateway demo-gw")
GATEWAY_ACK = re.compile(r"ack back at demo-gw-node through gateway demo-gw, \d+ ms after")


class Demo:
    """`dolbom demo` as a child process whose output is read while it runs."""

    def __init__(self, state: Path, duration: int) -> None:
        self.err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dolbom.cli", "demo", "--homes", "3", "--duration",
             str(duration), "--dir", str(state)],
            stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = pattern.search(self.out)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"the demo never printed {pattern.pattern!r}: {self.out[-2000:]}")

    def finish(self, timeout: float = 120) -> str:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        self.err.seek(0)
        err = self.err.read()
        self.err.close()
        assert self.proc.returncode == 0, self.out[-2000:] + err[-2000:]
        return self.out


def _console_login(base: str, username: str, password: str) -> str:
    """Sign in through the console's form, as a browser would; returns the board's HTML."""
    with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as c:
        page = c.get("/console/login")
        assert page.status_code == 200
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert token
        r = c.post("/console/login", data={"username": username, "password": password,
                                            "csrf_token": token.group(1)})
        assert r.status_code == 200 and str(r.url).endswith("/console/board"), r.status_code
        return r.text


def test_demo_shows_data_flowing_and_stops_cleanly(runtime_dir: Path) -> None:
    """`dolbom demo` runs the stack, shows points and the scripted fall, serves the console
    whose printed credentials sign in (the worker sees only their residents), stops its
    servers and the console."""
    state = Path(tempfile.mkdtemp(prefix="demo-", dir=runtime_dir))
    demo = Demo(state, 28)
    base = demo.wait_for(CONSOLE).group(1)
    demo.wait_for(re.compile(r"demo-worker\s+password"))
    logins = dict(LOGIN.findall(demo.out))
    assert set(logins) == {"demo-admin", "demo-worker"}
    # one more home, whose node reaches the centre through a gateway
    demo.wait_for(GATEWAY_UP)
    admin_board = _console_login(base, "demo-admin", logins["demo-admin"])
    worker_board = _console_login(base, "demo-worker", logins["demo-worker"])
    admin_tiles = admin_board.count('class="tile tile-')
    worker_tiles = worker_board.count('class="tile tile-')
    assert admin_tiles == 3 + 1 and 1 <= worker_tiles < admin_tiles
    assert httpx.get(f"{base}/console/login", timeout=10).status_code == 200
    out = demo.finish()
    assert "3 simulated homes provisioned" in out
    assert "injected a fall" in out
    # the fall became an alert, and both people were told by signed webhook
    assert "notice to demo-worker: [URGENT] Fall detected" in out
    assert "notice to demo-responder: [URGENT] Fall detected" in out
    counts = [int(m) for m in re.findall(r"points (\d+)", out)]
    assert counts and counts[-1] > 0
    life = [int(m) for m in re.findall(r"life-safety (\d+)", out)]
    assert life and life[-1] >= 1
    assert "stopped cleanly." in out
    # the gateway home's button: its ack came back through the gateway, and the press
    # became an alarm told by signed webhook like any other
    assert GATEWAY_ACK.search(out), out[-3000:]
    assert "notice to demo-responder: [URGENT] Emergency button pressed" in out, out[-3000:]
    # every server it started is gone (their pid files name processes that no longer run)
    pid = int((state / "mosquitto" / "mosquitto.pid").read_text())
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(httpx.TransportError):  # the console stopped with it
        httpx.get(f"{base}/console/login", timeout=2)
    # safe to run twice: the second run reuses the plan, credentials and data, and does
    # not show the passwords again (they were shown once)
    again = Demo(state, 15)
    out2 = again.finish()
    assert "3 simulated homes reused" in out2 and "stopped cleanly." in out2
    assert GATEWAY_UP.search(out2)  # the gateway home again, with the same ids
    assert CONSOLE.search(out2) and "were shown on the first run" in out2
    assert not any(pw in out2 for pw in logins.values())
