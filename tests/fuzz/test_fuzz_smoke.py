"""A few seconds of the atheris harnesses in CI (the long runs are manual: see docs/mqtt.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HARNESS = Path(__file__).with_name("fuzz_decode.py")
# Found by this harness and by tests/protocol/test_fuzz_decode.py, not fixed yet: decode()
# looks a list/object "state" or door/bed "val" up in a set. Drop once messages.py checks it.
KNOWN = "TypeError: unhashable type"


def test_fuzz_decode_runs_clean_for_a_few_seconds(tmp_path: Path) -> None:
    """Five seconds of coverage-guided fuzzing of decode() find no crash (other than the
    known one, reported as an expected failure)."""
    run = subprocess.run(
        [sys.executable, str(HARNESS), "-max_total_time=5", "-seed=1", "-max_len=4096"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    out = run.stdout + run.stderr
    if run.returncode != 0 and KNOWN in out and "messages.py" in out:
        pytest.xfail("known decoder crash: " + KNOWN)
    assert run.returncode == 0, out[-3000:]
    assert "Done" in out
