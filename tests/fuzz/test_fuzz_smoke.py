"""A few seconds of the atheris harnesses in CI (the long runs are manual: see docs/mqtt.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).with_name("fuzz_decode.py")


def test_fuzz_decode_runs_clean_for_a_few_seconds(tmp_path: Path) -> None:
    """Five seconds of coverage-guided fuzzing of decode() find no crash."""
    run = subprocess.run(
        # libFuzzer reads its RSS as the process's peak, which Linux carries over from the
        # (large) pytest process this one was forked from: judge allocations instead.
        [sys.executable, str(HARNESS), "-max_total_time=5", "-seed=1", "-max_len=4096",
         "-rss_limit_mb=0", "-malloc_limit_mb=1024"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "Done" in out
