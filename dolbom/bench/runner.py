"""Rising rate steps against one target, on fresh servers, with the zero-loss check.

For each target: a fresh Mosquitto (passwd + ACL) and InfluxDB 1.6 (auth on)
on free loopback ports, the target, and the load generator, each started and
stopped by PID. A probe message proves the pipeline end to end; then each
rate step is encoded, offered for ``duration`` seconds from a whole second on,
drained, and counted. A step is **sustained** when

- the generator kept its schedule (never more than ``max_lag_s`` behind:
  otherwise the broker pushed back and the rate was not really offered),
- the broker acknowledged every QoS 1 message,
- every message is a point in InfluxDB (counted per measurement), and
- the last point was there within ``drain_s`` of the last message sent
  (a system that only buffers is not keeping up).

The steps stop at the first one not sustained (unless ``keep_going``); the
result is the highest sustained rate, with each process's CPU and RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dolbom.bench.accounts import Accounts, add_influx_writer, write_broker_files
from dolbom.bench.count import Counter, safe_written, site_groups, wait_drained
from dolbom.bench.errors import BenchError
from dolbom.bench.fleet import DEFAULT_HOMES, DEFAULT_RATES, Fleet
from dolbom.bench.frames import StepPlan
from dolbom.bench.loadgen import LoadGen, LoadGenConfig, Offered, Prepared
from dolbom.bench.procstat import Sampler
from dolbom.bench.targets import DolbomIngest, NodeRedPeer, Servers, Target
from dolbom.influx.admin import InfluxHTTP
from dolbom.influx.errors import QueryFailed
from dolbom.mqtt import Client, MqttError
from dolbom.protocol import Envelope, Topics, encode_telemetry
from dolbom.stack.errors import StackError
from dolbom.stack.influx import InfluxDB
from dolbom.stack.mosquitto import Mosquitto
from dolbom.stack.proc import runtime_root

log = logging.getLogger(__name__)

PROBE_BOOT = 1
RUN_BOOT = 2  # the steps' boot: never the probe's, so (dev, boot, seq) stays unique


@dataclass(frozen=True, slots=True)
class BenchConfig:
    rates: tuple[int, ...] = DEFAULT_RATES
    duration: int = 60
    homes: int = DEFAULT_HOMES
    connections: int = 4
    slices_per_s: int = 20
    telemetry_qos: int = 1
    drain_s: float = 10.0
    drain_max_s: float = 120.0
    max_lag_s: float = 1.0
    keep_going: bool = False
    database: str = "care"
    prefix: str = "care/v1"
    keep_dir: bool = False
    ready_timeout_s: float = 600.0
    warmup_rate: int = 10_000  # 0: no warm-up
    warmup_drain_max_s: float = 900.0
    profile_dir: Path | None = None  # py-spy profiles of the ingest, one per step
    # Diagnosis only: drop the stack's rollup continuous queries, to show what
    # they cost. Not the deployed configuration, so not a headline figure.
    no_rollups: bool = False


@dataclass(slots=True)
class StepResult:
    rate: int
    duration: int
    messages: int
    per_type: dict[str, int]
    expected: dict[str, int]
    counted: dict[str, int]
    missing: int
    extra: int
    offered_rate: float
    max_lag_s: float
    qos1: int
    acked: int
    drain_s: float | None  # last message sent → last point counted
    cpu_pct: dict[str, float]
    rss_peak: dict[str, int]
    machine_busy_pct: float
    irq_pct: float  # interrupt time (mostly loopback TCP), % of one core
    encode_s: float
    sustained: bool
    verdict: str
    target_metrics: dict[str, float] = field(default_factory=dict)
    phase: str = "step"  # or "warm-up"


@dataclass(slots=True)
class TargetResult:
    target: str
    started_at: str
    fleet_homes: int
    fleet_devices: int
    ready_s: float = 0.0
    setup_s: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    warmup: StepResult | None = None
    error: str | None = None

    @property
    def best_rate(self) -> int | None:
        ok = [s.rate for s in self.steps if s.sustained]
        return max(ok) if ok else None


def judge(cfg: BenchConfig, offered: Offered, missing: int, extra: int,
          drain_s: float | None) -> tuple[bool, str]:
    """Whether a step was sustained, and why not."""
    if offered.max_lag_s > cfg.max_lag_s:
        return False, (f"not offered: the generator fell {offered.max_lag_s:.1f} s behind "
                       "(broker backpressure)")
    if offered.acked < offered.qos1:
        return False, f"broker acknowledged {offered.acked} of {offered.qos1} QoS 1 messages"
    if missing:
        waited = "" if drain_s is None else f" after {drain_s:.0f} s"
        return False, f"LOSS: {missing} points missing in InfluxDB{waited}"
    if drain_s is None or drain_s > cfg.drain_s:
        took = "never" if drain_s is None else f"{drain_s:.1f} s"
        return False, f"too slow: all points in InfluxDB {took} after the last message"
    if extra:
        return False, f"{extra} more points than messages (duplicates)"
    return True, "sustained"


def _mono(wall: float) -> float:
    return time.monotonic() - (time.time() - wall)


async def _publish_probe(host: str, port: int, user: str, password: str, topic: str,
                         payload: bytes) -> None:
    async with Client(host, port, "bench-probe", username=user, password=password) as c:
        await c.publish(topic, payload, qos=1)


def wait_ready(servers: Servers, fleet: Fleet, admin: InfluxHTTP, timeout: float) -> float:
    """Send probe messages until one is a point in InfluxDB; returns the seconds it took."""
    t0 = time.monotonic()
    topics = Topics(servers.prefix)
    topic = topics.telemetry(fleet.site_id(0), fleet.device_id(0))
    start_ms = int(time.time() * 1000) - 1000
    seq = 0
    while time.monotonic() - t0 < timeout:
        seq += 1
        now_ms = int(time.time() * 1000)
        payload = encode_telemetry(Envelope(PROBE_BOOT, seq, now_ms, 2), {"rssi_dbm": -60.0})
        with contextlib.suppress(MqttError, OSError):  # not up yet: the next probe will do
            asyncio.run(_publish_probe(servers.mqtt_host, servers.mqtt_port,
                                       servers.accounts.loadgen.name,
                                       servers.accounts.loadgen.password, topic, payload))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                n = Counter(admin, servers.database).count(
                    "reading", start_ms, int(time.time() * 1000) + 1000, fleet.device_id(0))
            except (OSError, QueryFailed, StackError):
                n = 0  # InfluxDB busy: ask again
            if n:
                return time.monotonic() - t0
            time.sleep(0.25)
    raise BenchError(f"the pipeline stored no probe message within {timeout:.0f} s")


def run_target(cfg: BenchConfig, target: Target,
               on_step: Callable[[StepResult], None] | None = None) -> TargetResult:
    fleet = Fleet(cfg.homes)
    accounts = Accounts.generate()
    result = TargetResult(target.name, datetime.now(UTC).isoformat(timespec="seconds"),
                          fleet.homes, fleet.devices)
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-{target.name}-", dir=runtime_root()))
    run_dir.chmod(0o711)
    try:
        _run_target(cfg, target, fleet, accounts, run_dir, result, on_step)
    except (BenchError, QueryFailed, StackError, OSError) as e:
        # Keep the steps measured so far: a failure late in a run is a result too.
        log.error("%s: %s", target.name, e)
        result.error = str(e)
    return result


def _run_target(cfg: BenchConfig, target: Target, fleet: Fleet, accounts: Accounts,
                run_dir: Path, result: TargetResult,
                on_step: Callable[[StepResult], None] | None) -> None:
    sampler = Sampler()
    with contextlib.ExitStack() as stack:
        if cfg.keep_dir:
            log.info("run directory kept: %s", run_dir)
        else:
            stack.callback(shutil.rmtree, run_dir, True)
        t_setup = time.monotonic()
        target.prepare(run_dir, fleet)
        mosq = Mosquitto(run_dir / "mosquitto")
        mosq.prepare()
        write_broker_files(mosq.files, accounts, cfg.prefix)
        mosq.start()
        stack.callback(mosq.stop)
        influx = InfluxDB(run_dir / "influx")
        influx.prepare()
        influx.start()
        stack.callback(influx.stop)
        influx.bootstrap(accounts.influx, cfg.database)
        admin = InfluxHTTP(influx.url, *accounts.influx.admin)
        add_influx_writer(admin, cfg.database, accounts.influx_peer)
        if cfg.no_rollups:
            for res in admin.query("SHOW CONTINUOUS QUERIES"):
                for series in res.get("series", []):
                    if series.get("name") != cfg.database:
                        continue
                    for name, _query in series.get("values", []):
                        admin.query(f'DROP CONTINUOUS QUERY "{name}" ON "{cfg.database}"',
                                    method="POST")
            log.warning("%s: rollup continuous queries dropped (--no-rollups: diagnosis only)",
                        target.name)
        servers = Servers("127.0.0.1", mosq.port, influx.url, influx.port, cfg.database,
                          accounts, cfg.prefix)
        target.start(servers)
        stack.callback(target.stop)
        gen = LoadGen.start(LoadGenConfig(
            "127.0.0.1", mosq.port, accounts.loadgen.name, accounts.loadgen.password, fleet,
            connections=cfg.connections, prefix=cfg.prefix, boot=RUN_BOOT,
            telemetry_qos=cfg.telemetry_qos, slices_per_s=cfg.slices_per_s))
        stack.callback(gen.stop)
        assert mosq.proc is not None and influx.proc is not None
        sampler.watch("broker", mosq.proc.pid)
        sampler.watch("influxdb", influx.proc.pid)
        for name, pid in target.processes().items():
            sampler.watch(name, pid)
        sampler.watch("loadgen", gen.pid)
        # The benchmark's own process (pacing the steps, sampling, counting); its
        # children are the servers, measured above, so it is measured alone.
        sampler.watch("bench", os.getpid(), descendants=False)
        sampler.start()
        stack.callback(sampler.stop)
        result.setup_s = time.monotonic() - t_setup
        result.ready_s = wait_ready(servers, fleet, admin, cfg.ready_timeout_s)
        log.info("%s: pipeline ready (probe stored) %.1f s after start", target.name,
                 result.ready_s)
        written = safe_written(influx.url, cfg.database)
        counter = Counter(admin, cfg.database, site_groups(
            [fleet.site_id(s) for s in range(fleet.sites)], fleet.homes_per_site * 6))
        index = 0
        if cfg.warmup_rate:
            # Steady state first: every device has sent once, so InfluxDB has all
            # its series and the target knows every device, as in a running
            # service. Creating 1.8 M series is a one-off cost, not throughput.
            duration = -(-fleet.devices // cfg.warmup_rate)
            plan = StepPlan(cfg.warmup_rate, duration, 0, cfg.connections, cfg.slices_per_s)
            index = plan.messages
            log.info("%s: warm-up, every device once: %d msg/s for %d s", target.name,
                     cfg.warmup_rate, duration)
            result.warmup = _run_step(cfg, plan, gen, target, counter, written, sampler,
                                      drain_max_s=cfg.warmup_drain_max_s, phase="warm-up")
            if on_step is not None:
                on_step(result.warmup)
        for rate in cfg.rates:
            plan = StepPlan(rate, cfg.duration, index, cfg.connections, cfg.slices_per_s)
            index += plan.messages
            step = _run_step(cfg, plan, gen, target, counter, written, sampler)
            result.steps.append(step)
            if on_step is not None:
                on_step(step)
            if not step.sustained and not cfg.keep_going:
                break


def _run_step(cfg: BenchConfig, plan: StepPlan, gen: LoadGen, target: Target,
              counter: Counter, written: Callable[[], int], sampler: Sampler, *,
              drain_max_s: float | None = None, phase: str = "step") -> StepResult:
    prepared: Prepared = gen.prepare(plan)
    before = written()
    metrics0 = _target_metrics(target)
    # A whole second, after the previous step's count window: step windows never overlap.
    start_at = float(math.ceil(time.time()) + 2)
    log.info("%s: %s %d msg/s for %d s (%d messages, %.0f MB encoded in %.1f s)",
             target.name, phase, plan.rate, plan.duration, plan.messages,
             prepared.nbytes / 1e6, prepared.encode_s)
    spy = _start_profile(cfg, target, plan, phase)
    offered = gen.run(start_at)
    drain_max = cfg.drain_max_s if drain_max_s is None else drain_max_s
    remaining = max(5.0, drain_max - (time.time() - offered.last_write_at))
    drain = wait_drained(counter, prepared.per_measurement, int(start_at * 1000),
                         written=written, written_before=before, deadline_s=remaining)
    drain_s = None if drain.complete_at is None else drain.complete_at - offered.last_write_at
    usage = sampler.usage(_mono(start_at), _mono(offered.last_write_at))
    metrics1 = _target_metrics(target)
    deltas = {k: v - metrics0.get(k, 0.0) for k, v in metrics1.items()
              if k.endswith("_total")}
    if spy is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(30)
    tally = drain.tally
    ok, verdict = judge(cfg, offered, tally.missing, tally.extra, drain_s)
    return StepResult(
        rate=plan.rate, duration=plan.duration, messages=plan.messages,
        per_type=prepared.per_type, expected=tally.expected, counted=tally.counted,
        missing=tally.missing, extra=tally.extra, offered_rate=offered.offered_rate,
        max_lag_s=offered.max_lag_s, qos1=offered.qos1, acked=offered.acked, drain_s=drain_s,
        cpu_pct=usage.cpu_pct, rss_peak=usage.rss_peak,
        machine_busy_pct=usage.machine_busy_pct, irq_pct=usage.irq_pct,
        encode_s=prepared.encode_s,
        sustained=ok, verdict=verdict, target_metrics=deltas, phase=phase,
    )


def _start_profile(cfg: BenchConfig, target: Target, plan: StepPlan, phase: str
                   ) -> subprocess.Popen[bytes] | None:
    """py-spy on the (first) ingest worker for the step (collapsed stacks), when asked and
    installed."""
    if cfg.profile_dir is None or not isinstance(target, DolbomIngest) or not target.procs:
        return None
    first = next(iter(target.procs.values()))
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        log.warning("--profile: py-spy is not installed (pip install py-spy)")
        return None
    cfg.profile_dir.mkdir(parents=True, exist_ok=True)
    out = cfg.profile_dir / f"ingest-{phase}-{plan.rate}.txt"
    return subprocess.Popen(
        [spy, "record", "--pid", str(first.pid), "--duration", str(plan.duration + 2),
         "--rate", "50", "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _target_metrics(target: Target) -> dict[str, float]:
    if isinstance(target, DolbomIngest):
        try:
            return target.metrics()
        except OSError:
            return {}
    if isinstance(target, NodeRedPeer):
        return {"node_red_errors_total": float(target.error_count())}
    return {}
