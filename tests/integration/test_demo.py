"""The quick start's main job, run as a newcomer would (shortened with --duration)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _run_demo(state: Path) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "dolbom.cli", "demo", "--homes", "3", "--duration", "28",
         "--dir", str(state)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_demo_shows_data_flowing_and_stops_cleanly(runtime_dir: Path) -> None:
    """`dolbom demo` runs the stack, shows points and the scripted fall, stops its servers."""
    state = Path(tempfile.mkdtemp(prefix="demo-", dir=runtime_dir))
    out = _run_demo(state)
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
    # every server it started is gone (their pid files name processes that no longer run)
    pid = int((state / "mosquitto" / "mosquitto.pid").read_text())
    assert not Path(f"/proc/{pid}").exists()
    # safe to run twice: the second run reuses the plan, credentials and data
    out2 = _run_demo(state)
    assert "3 simulated homes reused" in out2 and "stopped cleanly." in out2
