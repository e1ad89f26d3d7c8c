"""Ingest's self-stats: per-interval ``ingest_stats`` points from the metrics it already
keeps, on an injected clock, written to the real InfluxDB 1.6 (and kept while it is down)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.writer import InfluxWriter
from dolbom.ingest.metrics import IngestMetrics
from dolbom.ingest.selfstats import SelfStats, read_totals, stats_lines
from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import Topics
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB
from dolbom.stack.proc import free_port
from tests.influx.lineproto import parse_line

T0 = 1_790_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def parsed(lines: list[bytes]) -> list[tuple[dict[str, str], dict[str, object], int]]:
    out = []
    for ln in lines:
        meas, tags, fields, ts = parse_line(ln.decode())
        assert meas == "ingest_stats"
        out.append((tags, fields, ts))
    return out


def test_interval_lines_are_deltas_of_the_metrics() -> None:
    """Counters become per-interval deltas, gauges their value, one point per dead-letter
    reason seen in the interval, flush latency as mean and 99 % bucket bound."""
    m = IngestMetrics()
    m.dead_letters.labels("not_json").inc(3)
    m.dead_letters.labels("unknown_device").inc(1)
    m.spooled.inc(500)
    m.spool_files.set(4)
    m.influx_up.set(0)
    for s in (0.02, 0.02, 0.03, 0.2):
        m.flush_seconds.observe(s)
    first = read_totals(m.registry)
    (main, *dead) = parsed(stats_lines("ingest-1", None, first, 60_000))
    assert main[0] == {"instance": "ingest-1"} and main[2] == 60_000
    assert main[1]["spool_files"] == 4 and main[1]["spooled"] == 500
    assert main[1]["influx_up"] == 0 and main[1]["flushes"] == 4
    assert main[1]["flush_mean_s"] == pytest.approx(0.0675)
    assert main[1]["flush_p99_s"] == 0.25  # the bucket holding the slowest of four
    assert [(t["reason"], f["dead_letters"]) for t, f, _ in dead] == [
        ("not_json", 3), ("unknown_device", 1)]

    m.dead_letters.labels("not_json").inc(2)
    m.spool_files.set(0)
    m.points.inc(900)
    (main, *dead) = parsed(stats_lines("ingest-1", first, read_totals(m.registry), 120_000))
    assert main[1]["spooled"] == 0 and main[1]["points"] == 900
    assert main[1]["spool_files"] == 0 and main[1]["flushes"] == 0
    assert "flush_mean_s" not in main[1] and "flush_p99_s" not in main[1]
    assert [(t["reason"], f["dead_letters"]) for t, f, _ in dead] == [("not_json", 2)]


def _writer(url: str, users: InfluxUsers) -> InfluxWriter:
    return InfluxWriter(InfluxSettings(url=url, username=users.ingest[0],
                                       password=SecretStr(users.ingest[1]), timeout_s=5))


@pytest.mark.integration
async def test_written_on_the_injected_clock_and_kept_while_influx_is_down(
        influx: InfluxDB, influx_users: InfluxUsers, influx_admin: InfluxHTTP) -> None:
    """Each interval's points carry the injected clock's time; while InfluxDB does not
    answer they wait, and are written at their own times when it answers again."""
    m = IngestMetrics()
    clock = Clock()
    down = _writer(f"http://127.0.0.1:{free_port()}", influx_users)  # nobody listens
    async with _writer(influx.url, influx_users) as up, down:
        stats = SelfStats(m.registry, down, "ss-test", clock=clock, interval_s=60)
        m.spool_files.set(7)
        m.dead_letters.labels("missing_field").inc(2)
        assert await stats.write_once() == 0  # InfluxDB unreachable: kept
        assert len(stats.waiting) == 2
        clock.t += 60
        m.spool_files.set(3)
        stats.writer = up
        assert await stats.write_once() == 3  # both intervals' points, in one write
        assert not stats.waiting
    rows = influx_admin.rows(
        "SELECT spool_files, dead_letters, reason FROM ingest_stats "
        "WHERE instance = 'ss-test' ORDER BY time", "care")
    t0 = int(T0 * 1000)
    assert [(r["time"], r["spool_files"], r["dead_letters"], r["reason"]) for r in rows] == [
        (t0, 7, None, None), (t0, None, 2, "missing_field"), (t0 + 60_000, 3, None, None)]


@pytest.mark.integration
async def test_run_writes_every_interval_until_stopped(
        influx: InfluxDB, influx_users: InfluxUsers, influx_admin: InfluxHTTP) -> None:
    """The loop writes one point per interval and returns when the service stops."""
    m = IngestMetrics()
    clock = Clock(T0 + 3600)
    stopping = asyncio.Event()
    q = "SELECT count(flushes) FROM ingest_stats WHERE instance = 'ss-loop'"
    async with _writer(influx.url, influx_users) as w:
        stats = SelfStats(m.registry, w, "ss-loop", clock=clock, interval_s=0.05)
        task = asyncio.create_task(stats.run(stopping), name="self-stats")
        deadline = time.monotonic() + 10
        while influx_admin.count(q, "care") < 2 and time.monotonic() < deadline:
            clock.t += 60  # each interval its own time
            await asyncio.sleep(0.05)
        stopping.set()
        await asyncio.wait_for(task, 5)
    assert influx_admin.count(q, "care") >= 2


def test_ingest_wires_its_metrics_clock_and_interval(tmp_path: Path) -> None:
    """The service's self-stats use its clock, the interval it was given, and see a dead
    letter counted on the hot path without a flush or a scrape in between."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    with session_factory(url).begin() as s:
        registry.add_site(s, "s1", "S")
    settings = IngestSettings(database_url=url, spool_dir=tmp_path / "spool", metrics_port=0,
                              client_id="ingest-7")
    clock = Clock()
    ingest = Ingest(settings, clock=clock, self_stats_s=15.0)
    assert ingest.selfstats.interval_s == 15.0
    assert Ingest(settings, clock=clock).selfstats.interval_s == 60.0  # the default
    ingest.on_message(Received(Topics().telemetry("s1", "dev-1"), b"{not json", 1, False, 1,
                               False))
    clock.t += 15
    (main, *dead) = parsed(ingest.selfstats.take())
    assert main[0] == {"instance": "ingest-7"} and main[2] == int((T0 + 15) * 1000)
    assert [(t["reason"], f["dead_letters"]) for t, f, _ in dead] == [("not_json", 1)]
    ingest.close()
