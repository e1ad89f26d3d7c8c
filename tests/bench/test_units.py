"""Pure parts of the benchmark: the verdict, count grouping, /proc sampling, profiles."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dolbom.bench.count import Tally, site_groups
from dolbom.bench.loadgen import Offered
from dolbom.bench.procstat import Sampler, cpu_seconds, rss_bytes
from dolbom.bench.report import profile_top
from dolbom.bench.runner import BenchConfig, judge


def _offered(lag: float = 0.0, acked: int = 100) -> Offered:
    return Offered(100, 0.0, 60.0, 60.0, 60.1, lag, 100, acked)


@pytest.mark.parametrize(("offered", "missing", "extra", "drain", "ok", "starts"), [
    (_offered(), 0, 0, 1.0, True, "sustained"),
    (_offered(lag=3.0), 0, 0, 1.0, False, "not offered"),
    (_offered(acked=99), 0, 0, 1.0, False, "broker acknowledged 99 of 100"),
    (_offered(), 1, 0, 1.0, False, "LOSS: 1 points missing"),
    (_offered(), 1, 0, None, False, "LOSS"),
    (_offered(), 0, 0, 30.0, False, "too slow"),
    (_offered(), 0, 0, None, False, "too slow"),
    (_offered(), 0, 2, 1.0, False, "2 more points"),
])
def test_judge(offered: Offered, missing: int, extra: int, drain: float | None, ok: bool,
               starts: str) -> None:
    """Sustained needs schedule kept, every ack, every point, and a prompt drain."""
    got_ok, verdict = judge(BenchConfig(), offered, missing, extra, drain)
    assert got_ok is ok and verdict.startswith(starts), verdict


def test_tally_missing_and_extra_per_measurement() -> None:
    t = Tally({"reading": 10, "event": 5}, {"reading": 9, "event": 6}, 0.0)
    assert (t.missing, t.extra) == (1, 1)  # an extra event never hides a missing reading


def test_site_groups_bound_devices_per_query() -> None:
    sites = [f"site-{i:03d}" for i in range(250)]
    groups = site_groups(sites, 7200, max_devices=50_000)
    assert [s for g in groups for s in g] == sites
    assert all(len(g) * 7200 <= 50_000 for g in groups)
    assert site_groups(["a"], 10**6) == (("a",),)


def test_procstat_sees_own_cpu_and_memory() -> None:
    """CPU seconds grow while we spin; RSS is non-zero; a window gives a percentage."""
    pid = os.getpid()
    s = Sampler(interval=0.05)
    s.watch("me", pid, descendants=False)
    t0 = time.monotonic()
    s.start()
    before = cpu_seconds(pid)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        pass
    s.stop()
    s.sample()
    assert cpu_seconds(pid) > before and rss_bytes(pid) > 0
    usage = s.usage(t0, time.monotonic())
    assert 20 < usage.cpu_pct["me"] <= 110 and usage.rss_peak["me"] > 0


def test_profile_top_charges_library_time_to_dolbom_code(tmp_path: Path) -> None:
    """Self time per leaf; "by Dolbom function" charges SQLAlchemy's time to its caller."""
    p = tmp_path / "prof.txt"
    run = "run (asyncio/base_events.py:1)"
    seen = "update_device_seen (dolbom/registry/service.py:240)"
    sql = "do_executemany (sqlalchemy/engine/default.py:9)"
    decode = "decode (dolbom/protocol/messages.py:300)"
    p.write_text(f"{run};{seen};{sql} 30\n{run};{decode} 10\n{run} 60\n")
    self_top, own = profile_top(p, 3)
    assert self_top[0] == (run, 60.0) and (sql, 30.0) in self_top
    assert own == [("(outside Dolbom's code)", 60.0),
                   ("update_device_seen (dolbom/registry/service.py)", 30.0),
                   ("decode (dolbom/protocol/messages.py)", 10.0)]


def test_stage_quantiles_read_the_alerts_service_histograms() -> None:
    """bench-alerts explains its latency from the service's own /metrics text."""
    from prometheus_client import generate_latest

    from dolbom.alerts.metrics import AlertsMetrics
    from dolbom.bench.latency import stage_quantiles

    m = AlertsMetrics()
    for _ in range(98):
        m.alarm_stage.labels("journal").observe(0.004)
    m.alarm_stage.labels("journal").observe(0.2)
    m.alarm_stage.labels("journal").observe(3.0)
    m.notice_delay.labels("medium").observe(9.0)  # not the life-safety path
    got = stage_quantiles(generate_latest(m.registry).decode())
    assert got["journal"] == (100, 0.005, 0.25)
    assert "outbox -> webhook" not in got
