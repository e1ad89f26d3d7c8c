"""``dolbom bench-rollups``: what a 1-minute rollup costs, made three ways.

DESIGN.md §4 keeps 1-minute and 1-hour rollups for 2 years. This writes a few minutes
of the fleet's readings (``--homes`` × 6 devices, one reading message per device and
minute, the fields of docs/benchmarks.md's fleet mix) into a fresh InfluxDB of the
stack (the same configuration and bootstrap), then runs, timing InfluxDB's CPU (from
``/proc``), its RSS and the wall time:

1. the usual continuous query, per device, over one minute of ``raw``:
   ``SELECT mean(*) INTO … FROM raw.reading … GROUP BY time(1m), *``
2. the same per home (``GROUP BY time(1m), site, home``)
3. what Dolbom does instead: ingest's ``Rollup`` over the same readings (CPU of this
   process), writing its per-home points, and the stack's hourly query over an hour of
   them (the remaining minutes of the hour are copies of the first).

A continuous query has to finish within the minute it runs every minute; the figures
say whether it can. See docs/ingest.md, "Rollups".
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.influxql import rollup_1h_select
from dolbom.influx.lineproto import line
from dolbom.ingest.rollup import Rollup
from dolbom.stack.influx import InfluxDB
from dolbom.stack.proc import runtime_root

MINUTE_S = 60
# (device slot, readings): the fleet's six devices (dolbom/bench/fleet.py)
SLOTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("liv", {"temperature_c": 21.5, "humidity_pct": 40.0, "illuminance_lux": 120.0,
             "rssi_dbm": -60.0}),
    ("bdr", {"temperature_c": 20.5, "humidity_pct": 42.0, "illuminance_lux": 3.0,
             "rssi_dbm": -61.0}),
    ("dor", {"battery_pct": 80.0, "rssi_dbm": -70.0}),
    ("bed", {"heart_rate_bpm": 60.0, "breath_rate_bpm": 14.0, "rssi_dbm": -65.0}),
    ("plg", {"power_w": 12.5, "rssi_dbm": -55.0}),
    ("smk", {"battery_pct": 90.0, "temperature_c": 21.0, "rssi_dbm": -66.0}),
)


@dataclass(frozen=True, slots=True)
class Run:
    what: str
    wall_s: float
    influx_cpu_s: float
    influx_rss_mib: int
    points_out: int
    other_cpu_s: float = 0.0  # this process (ingest's rollup)


class _Influx:
    def __init__(self, homes: int, minutes: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bench-rollups-", dir=runtime_root()))
        self.base.chmod(0o711)
        self.db = InfluxDB(self.base / "influxdb")
        self.homes, self.minutes = homes, minutes
        pw = secrets.token_urlsafe(18)
        self.users = InfluxUsers(("admin", pw), ("ingest", secrets.token_urlsafe(18)),
                                 ("dashboard", secrets.token_urlsafe(18)))
        self.admin = InfluxHTTP(self.db.url, "admin", pw)

    def start(self) -> None:
        self.db.start()
        self.db.bootstrap(self.users, "care")

    def stop(self) -> None:
        self.db.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.db.proc is not None
        return self.db.proc.pid

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for row in f:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1]) // 1024
        return 0

    def write(self, lines: list[bytes], rp: str) -> None:
        self.admin.write(lines, "care", rp, timeout=300)

    def timed(self, what: str, q: str) -> Run:
        cpu, t = self.cpu_s(), time.monotonic()
        res = self.admin.query(q, "care", method="POST", timeout=1800)
        series = res[0].get("series") if res else None
        written = int(series[0]["values"][0][1]) if series else 0
        return Run(what, time.monotonic() - t, self.cpu_s() - cpu, self.rss_mib(), written)


def _readings(homes: int, t0_ms: int, minutes: int) -> list[tuple[str, str, str, int,
                                                                  dict[str, float]]]:
    out = []
    for m in range(minutes):
        for i in range(homes):
            for k, (slot, readings) in enumerate(SLOTS):
                ts = t0_ms + m * 60_000 + ((i * 6 + k) % 60) * 1000
                out.append((f"s{i % 50:02d}", f"h{i:06d}", f"{slot}-{i:06d}", ts, readings))
    return out


def run(homes: int, minutes: int = 3) -> list[Run]:
    inf = _Influx(homes, minutes)
    hour_ms = (int(time.time()) // 3600 - 1) * 3_600_000  # a whole past hour
    t0 = hour_ms + 60_000
    runs: list[Run] = []
    try:
        inf.start()
        print(f"writing {minutes} min of readings of {homes} homes x 6 devices ...", flush=True)
        data = _readings(homes, t0, minutes)
        chunk: list[bytes] = []
        for site, home, dev, ts, readings in data:
            chunk.append(line("reading", {"site": site, "home": home, "device": dev},
                              readings, ts))
            if len(chunk) == 20_000:
                inf.write(chunk, "raw")
                chunk = []
        inf.write(chunk, "raw")
        print(f"  InfluxDB RSS {inf.rss_mib()} MiB; running the rollups ...", flush=True)

        def window(m: int) -> str:
            a = t0 + m * 60_000
            return f"WHERE time >= {a}ms AND time < {a + 60_000}ms"

        runs.append(inf.timed(
            "continuous query per device, 1 min of raw",
            f'SELECT mean(*) INTO "care"."rollup"."cq_device" FROM "care"."raw"."reading" '  # noqa: S608 - integer times
            f"{window(0)} GROUP BY time(1m), *"))
        print(f"  {runs[-1]}", flush=True)
        runs.append(inf.timed(
            "continuous query per home, 1 min of raw",
            f'SELECT mean(*) INTO "care"."rollup"."cq_home" FROM "care"."raw"."reading" '  # noqa: S608 - integer times
            f"{window(1)} GROUP BY time(1m), site, home"))
        print(f"  {runs[-1]}", flush=True)
        # Dolbom: ingest's rollup over the same readings (all minutes), its points written
        r = Rollup(grace_s=0)
        cpu = time.process_time()
        for site, home, _, ts, readings in data:
            r.add(site, home, ts, readings)
        lines = r.flush_all()
        ingest_cpu = (time.process_time() - cpu) / minutes
        cpu_before, t = inf.cpu_s(), time.monotonic()
        for i in range(0, len(lines), 20_000):
            inf.write(lines[i:i + 20_000], "rollup")
        runs.append(Run("ingest rollup per home, 1 min (write of its points)",
                        (time.monotonic() - t) / minutes, (inf.cpu_s() - cpu_before) / minutes,
                        inf.rss_mib(), len(lines) // minutes, ingest_cpu))
        print(f"  {runs[-1]}", flush=True)
        # the rest of the hour's per-home minutes, so the hourly query reads a whole hour
        first = [ln.rsplit(b" ", 1)[0] for ln in lines if ln.endswith(b" %d" % t0)]
        for m in range(minutes, 59):
            at = b" %d" % (t0 + m * 60_000)
            inf.write([ln + at for ln in first], "rollup")
        runs.append(inf.timed(
            "hourly query over an hour of per-home minutes",
            rollup_1h_select('"care"', f"WHERE time >= {hour_ms}ms AND time < "
                                       f"{hour_ms + 3_600_000}ms")))
        print(f"  {runs[-1]}", flush=True)
    finally:
        inf.stop()
    return runs


def report(homes: int, runs: list[Run]) -> str:
    out = [f"1-minute rollups of {homes:,} homes x 6 devices ({homes * 6:,} series), "
           "InfluxDB 1.6 on this machine:", "",
           "| how | wall s | InfluxDB CPU s | other CPU s | InfluxDB RSS MiB | points out |",
           "|---|---|---|---|---|---|"]
    for r in runs:
        out.append(f"| {r.what} | {r.wall_s:.2f} | {r.influx_cpu_s:.2f} | {r.other_cpu_s:.2f} "
                   f"| {r.influx_rss_mib:,} | {r.points_out:,} |")
    out.append("")
    out.append("A continuous query runs every minute: wall time or CPU above 60 s means it "
               "cannot keep up.")
    return "\n".join(out)


def _cmd(args: argparse.Namespace) -> int:
    runs = run(args.homes, args.minutes)
    print()
    print(report(args.homes, runs))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-rollups",
                       help="the cost of 1-minute rollups: continuous queries vs ingest's")
    p.add_argument("--homes", type=int, default=50_000, help="homes, 6 devices each")
    p.add_argument("--minutes", type=int, default=3, help="minutes of readings written")
    p.set_defaults(func=_cmd)
