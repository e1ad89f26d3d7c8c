"""``dolbom bench-rollups`` on a tiny fleet: each way of rolling up makes the points it
should, so the figures it prints are for the right work."""

from __future__ import annotations

import pytest

from dolbom.bench.rollups import report, run

pytestmark = pytest.mark.integration


def test_each_rollup_makes_one_point_per_series_it_summarises() -> None:
    runs = run(homes=20, minutes=2)
    out = {r.what: r.points_out for r in runs}
    assert out == {
        "continuous query per device, 1 min of raw": 20 * 6,
        "continuous query per home, 1 min of raw": 20,
        "ingest rollup per home, 1 min (write of its points)": 20,
        "hourly query over an hour of per-home minutes": 20,
    }
    assert all(r.influx_cpu_s >= 0 and r.influx_rss_mib > 0 for r in runs)
    assert "| continuous query per device, 1 min of raw |" in report(20, runs)
