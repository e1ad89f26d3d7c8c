"""``dolbom bench``: the throughput benchmark, Dolbom ingest against the Node-RED peer.

    ./dev bench                                   # the full run (DESIGN.md §7)
    ./dev bench --target peer --rates 5000,10000 --duration 20 --homes 10000
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dolbom.bench.fleet import DEFAULT_HOMES, DEFAULT_RATES

if TYPE_CHECKING:
    from dolbom.bench.runner import StepResult, TargetResult
    from dolbom.bench.targets import Target

log = logging.getLogger(__name__)


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("rates are integers, e.g. 5000,10000,20000") from None
    if not rates or any(r < 1 for r in rates):
        raise argparse.ArgumentTypeError("give at least one positive rate")
    return rates


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"workers is a number, not {text!r}") from None
    if not 1 <= n <= 16:
        raise argparse.ArgumentTypeError(f"workers must be 1-16, not {n}")
    return n


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench", help="throughput benchmark: Dolbom ingest vs a Node-RED peer (DESIGN.md §7)",
        description="Offers the national fleet's message mix at rising rates to a fresh "
        "Mosquitto + InfluxDB + target, counts every message in InfluxDB, and reports the "
        "highest rate sustained with zero loss, with each process's CPU and RSS. "
        "See docs/benchmarks.md.")
    p.add_argument("--target", choices=("dolbom", "peer", "both"), default="both")
    p.add_argument("--rates", type=_rates, default=DEFAULT_RATES,
                   help="rising msg/s, comma-separated (default: %(default)s)")
    p.add_argument("--duration", type=int, default=60, help="seconds per step (default 60)")
    p.add_argument("--homes", type=int, default=DEFAULT_HOMES,
                   help="fleet size in homes, 6 devices each (default %(default)s; the national "
                   "fleet is 300000, see docs/benchmarks.md)")
    p.add_argument("--connections", type=int, default=4,
                   help="load generator MQTT connections (default 4)")
    p.add_argument("--telemetry-qos", type=int, choices=(0, 1), default=1)
    p.add_argument("--drain-s", type=float, default=10.0,
                   help="all points must be in InfluxDB this long after the last message")
    p.add_argument("--drain-max-s", type=float, default=120.0,
                   help="how long to wait for late points before calling them lost")
    p.add_argument("--max-lag-s", type=float, default=1.0,
                   help="how far behind schedule the generator may fall (broker backpressure)")
    p.add_argument("--warmup-rate", type=int, default=10_000,
                   help="first send every device once at this rate, not judged (0: none)")
    p.add_argument("--keep-going", action="store_true",
                   help="run every rate even after one is not sustained")
    p.add_argument("--keep-dir", action="store_true", help="keep the servers' data and logs")
    p.add_argument("--ingest-batch-size", type=int, help="DOLBOM_BATCH_SIZE for ingest")
    p.add_argument("--ingest-flush-s", type=float, help="DOLBOM_FLUSH_INTERVAL_S for ingest")
    p.add_argument("--ingest-workers", type=_workers, default=1, metavar="N",
                   help="ingest workers sharing the stream on $share/ (docs/scale.md; "
                   "default 1): CPU per message is printed per worker")
    p.add_argument("--peer-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-rollups", action="store_true",
                   help="diagnosis: drop InfluxDB's rollup continuous queries (shows their cost)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy the ingest during each step (collapsed stacks into DIR)")
    p.add_argument("--json", type=Path, help="write every figure as JSON here")
    p.add_argument("--markdown", type=Path, help="write the result tables as Markdown here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: the CLI must start on installs without the benchmark's
    # dependencies (a gateway has no SQLAlchemy).
    from dolbom.bench import report
    from dolbom.bench.errors import BenchError
    from dolbom.bench.runner import BenchConfig, TargetResult, run_target
    from dolbom.bench.targets import PEER_DIR, DolbomIngest, NodeRedPeer
    from dolbom.stack.errors import StackError

    cfg = BenchConfig(
        rates=args.rates, duration=args.duration, homes=args.homes,
        connections=args.connections, telemetry_qos=args.telemetry_qos, drain_s=args.drain_s,
        drain_max_s=args.drain_max_s, max_lag_s=args.max_lag_s, keep_going=args.keep_going,
        keep_dir=args.keep_dir, warmup_rate=args.warmup_rate, profile_dir=args.profile,
        no_rollups=args.no_rollups,
    )
    if list(cfg.rates) != sorted(cfg.rates):
        print("bench: --rates must rise", file=sys.stderr)
        return 2
    targets: list[Target] = []
    if args.target in ("dolbom", "both"):
        targets.append(DolbomIngest(args.ingest_batch_size, args.ingest_flush_s,
                                    args.ingest_workers))
    if args.target in ("peer", "both"):
        targets.append(NodeRedPeer(args.peer_dir or PEER_DIR))
    command = "dolbom " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else \
        "dolbom bench"
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = report.machine_info()
    results: list[TargetResult] = []
    for target in targets:
        print(f"== {target.name}: {cfg.homes:,} homes, rates {list(cfg.rates)} × "
              f"{cfg.duration} s", flush=True)
        def show(step: StepResult, name: str = target.name) -> None:
            print(report.step_line(name, step), flush=True)

        try:
            res = run_target(cfg, target, on_step=show)
        except (BenchError, StackError, OSError) as e:
            log.error("%s: %s", target.name, e)
            res = TargetResult(target.name, date, cfg.homes, cfg.homes * 6, error=str(e))
        results.append(res)
    print(report.summary(results), flush=True)
    if args.profile is not None:
        for path in sorted(args.profile.glob("ingest-*.txt")):
            self_top, incl_top = report.profile_top(path, 12)
            print(f"-- {path.name}: self time")
            print("\n".join(f"{pct:5.1f}%  {frame}" for frame, pct in self_top))
            print(f"-- {path.name}: by Dolbom function (library time charged to its caller)")
            print("\n".join(f"{pct:5.1f}%  {frame}" for frame, pct in incl_top))
    if args.json:
        args.json.write_text(report.to_json(results, cfg, command, machine, date))
    if args.markdown:
        args.markdown.write_text(report.markdown(results, cfg, command, machine, date))
    return 0 if all(r.error is None for r in results) else 1
