"""The whole evaluation on a tiny population: generate, replay the real rules, score."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dolbom.eval import report
from dolbom.eval.population import DEFAULT_START_MS
from dolbom.eval.run import run_care


def test_tiny_run_writes_a_report(tmp_path: Path) -> None:
    """Two homes over two days go through replay and come out as report.md and report.json."""
    pytest.importorskip("dolbom.alerts.replay")
    res = run_care(2, 2, 5, DEFAULT_START_MS, workers=1, shard=1, keep_dir=tmp_path / "data")
    assert res.truth.homes == 2 and res.messages > 1000
    assert sorted(res.naive) == ["naive_12h", "naive_24h"]
    for shard in ("shard-0000", "shard-0001"):
        names = {p.name for p in (tmp_path / "data" / shard).iterdir()}
        assert names == {"homes.json", "messages.jsonl", "truth.json", "alerts.jsonl"}
    doc = report.build("dolbom eval care --homes 2 --days 2", res.truth,
                       {"dolbom": res.alerts, **res.naive}, {"messages": res.messages})
    report.write(tmp_path / "out", doc)
    back = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert set(back["systems"]) == {"dolbom", "naive_12h", "naive_24h"}
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Care-outcome evaluation")
