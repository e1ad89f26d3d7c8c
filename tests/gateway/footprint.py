"""The gateway's footprint: resident memory and CPU time per forwarded message, read from
/proc for the gateway process alone (docs/gateway.md "Footprint").

    .venv/bin/python -m tests.gateway.footprint [--messages 20000] [--rate 500]

Starts a central stack (TLS Mosquitto, InfluxDB, registry) and a home's local Mosquitto
in a temporary directory, provisions a gateway with one child, runs ``dolbom gateway
run``, lets it idle (its CPU time then is ``idle_cpu_ms_per_s``), then publishes
telemetry on the local broker at ``--rate`` messages a second (QoS 1, a 2-second
heartbeat's worth of JSON each) and counts them on the central broker. CPU = (utime +
stime) of the gateway over the run / messages forwarded. Everything it started is
stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from dolbom.mqtt import Client
from dolbom.protocol import Envelope, encode_telemetry
from dolbom.stack.proc import runtime_root
from dolbom.stack.stack import Stack
from tests.gateway.conftest import TOPICS, Home, write_home

CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK, int(fields[12]) / CLK


def run_ns(pid: int) -> int:
    """Time on a CPU of ``pid``'s main thread so far, in ns (/proc/<pid>/schedstat: finer
    than the clock ticks of utime/stime, for the idle rate)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0])
    return vals["VmRSS"], vals["VmHWM"]


async def measure(home: Home, messages: int, rate: float) -> dict[str, float]:
    dev = next(iter(home.children))
    got = 0

    def count(_: object) -> None:
        nonlocal got
        got += 1

    watch = Client("127.0.0.1", home.central.mosquitto.port, "fp-" + secrets.token_hex(2),
                   username="svc-operator", password=home.central.secrets.mqtt["svc-operator"],
                   on_message=count)
    async with watch, home.local_client(dev) as d:
        await watch.subscribe([(TOPICS.telemetry(home.site, dev), 0)])
        home.gateway.start()
        await asyncio.sleep(3)  # started, connected
        pid = home.gateway.pid
        i0, ti0 = run_ns(pid), time.monotonic()
        await asyncio.sleep(5)  # idle: keepalives, timers
        i1, ti1 = run_ns(pid), time.monotonic()
        idle_rss, _ = rss_kb(pid)
        c0, t0 = cpu_s(pid), time.monotonic()
        gap = 1 / rate
        for i in range(messages):
            env = Envelope(1, i + 1, 1_760_000_000_000 + i, 2)
            await d.publish(TOPICS.telemetry(home.site, dev),
                            encode_telemetry(env, {"temperature_c": 21.5, "humidity_pct": 40.0,
                                                   "battery_pct": 88.0, "rssi_dbm": -61.0}),
                            qos=1)
            if gap > 0.0005:
                await asyncio.sleep(gap)
        deadline = time.monotonic() + 120
        while got < messages and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.1)
        c1, t1 = cpu_s(pid), time.monotonic()
        rss, hwm = rss_kb(pid)
    return {"messages": messages, "forwarded": got, "seconds": round(t1 - t0, 1),
            "cpu_us_per_msg": round((sum(c1) - sum(c0)) / max(got, 1) * 1e6, 1),
            "user_us_per_msg": round((c1[0] - c0[0]) / max(got, 1) * 1e6, 1),
            "system_us_per_msg": round((c1[1] - c0[1]) / max(got, 1) * 1e6, 1),
            "idle_cpu_ms_per_s": round((i1 - i0) / (ti1 - ti0) / 1e6, 2),
            "rss_idle_mb": round(idle_rss / 1024, 1), "rss_mb": round(rss / 1024, 1),
            "rss_peak_mb": round(hwm / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--set", action="append", default=[], metavar="DOLBOM_GW_X=VALUE",
                    help="a gateway setting for this run (repeatable)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gwfootprint-", dir=runtime_root()))
    root.chmod(0o711)
    central = Stack(root / "central")
    central.up()
    home: Home | None = None
    try:
        tmp = root / "tmp"
        tmp.mkdir()
        env = {"DOLBOM_GW_STATUS_S": "60", **dict(kv.split("=", 1) for kv in args.set)}
        home = write_home(central, tmp, root, {"esp32-" + secrets.token_hex(2): "multisensor"},
                          "http://127.0.0.1:9/", extra_env=env)
        print(asyncio.run(measure(home, args.messages, args.rate)))
    finally:
        if home is not None:
            home.gateway.stop()
            home.local.stop()
        central.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
