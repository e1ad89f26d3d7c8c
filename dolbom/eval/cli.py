"""``dolbom eval``: the care-outcome evaluation (docs/evaluation.md).

    dolbom eval care [--homes 1000] [--days 30] [--seed 1] [--workers 2] [--out DIR]
    dolbom eval generate --out DIR [--homes N] [--days D] [--seed S]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import date, datetime
from pathlib import Path

from dolbom.eval.population import DEFAULT_START_MS, KST


def _start_ms(text: str | None) -> int:
    if not text:
        return DEFAULT_START_MS
    d = date.fromisoformat(text)
    return int(datetime(d.year, d.month, d.day, tzinfo=KST).timestamp() * 1000)


def _command_line(argv: list[str]) -> str:
    return "dolbom " + shlex.join(argv)


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _care(args: argparse.Namespace) -> int:
    from dolbom.eval import report
    from dolbom.eval.run import Progress, run_care

    command = _command_line(sys.argv[1:]) if sys.argv[1:2] == ["eval"] else (
        f"dolbom eval care --homes {args.homes} --days {args.days} --seed {args.seed} "
        f"--workers {args.workers}")
    keep = None
    if args.keep_data:
        if args.out is None:
            print("--keep-data needs --out DIR (the data goes to DIR/data)", file=sys.stderr)
            return 2
        keep = args.out / "data"
    bar = Progress(args.homes, enabled=not args.quiet)
    res = run_care(args.homes, args.days, args.seed, _start_ms(args.start), args.workers,
                   args.shard, keep, bar)
    extra = {"messages": res.messages, "seconds": round(res.seconds, 1),
             "workers": args.workers, "shards": res.shards, "replay": res.replay}
    doc = report.build(command, res.truth, {"dolbom": res.alerts, **res.naive}, extra)
    text = report.markdown(doc)
    if args.out is not None:
        report.write(args.out, doc)
        print(f"report written to {args.out / 'report.md'} and {args.out / 'report.json'}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from dolbom.eval.generate import write_population

    t0 = time.monotonic()

    def progress(done: int) -> None:
        if not args.quiet:
            sys.stderr.write(f"\r{done}/{args.homes} homes generated")
            sys.stderr.flush()

    n = write_population(args.out, args.seed, args.homes, args.days, _start_ms(args.start),
                         progress=progress)
    if not args.quiet:
        sys.stderr.write("\n")
    print(f"{args.homes} homes, {args.days} days, {n:,} messages in "
          f"{time.monotonic() - t0:.0f} s: {args.out}/homes.json, messages.jsonl, truth.json")
    return 0


def _score(args: argparse.Namespace) -> int:
    import orjson

    from dolbom.eval import report, truth
    from dolbom.eval.naive import device_homes, naive_alerts
    from dolbom.eval.run import NAIVE_HOURS

    t = truth.read(args.dir / "truth.json")
    alerts_path = args.alerts or args.dir / "alerts.jsonl"
    systems = {"dolbom": [orjson.loads(line) for line in alerts_path.read_bytes().splitlines()
                          if line.strip()]}
    homes = orjson.loads((args.dir / "homes.json").read_bytes())
    devices = device_homes(homes)
    for hours in NAIVE_HOURS:
        with (args.dir / "messages.jsonl").open("rb") as f:
            stream = ((m["rx_ms"], m["topic"], None) for m in map(orjson.loads, f))
            systems[f"naive_{hours:g}h"] = naive_alerts(devices, stream, hours, t.end_ms)
    doc = report.build(_command_line(sys.argv[1:]), t, systems, {})
    if args.out is not None:
        report.write(args.out, doc)
    else:
        sys.stdout.write(report.markdown(doc))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--homes", type=_positive, default=1000,
                        help="homes in the simulated population (1000)")
    common.add_argument("--days", type=_positive, default=30, help="days simulated (30)")
    common.add_argument("--seed", type=int, default=1,
                        help="population seed: same seed, same bytes (1)")
    common.add_argument("--start", default=None, metavar="YYYY-MM-DD",
                        help="first day, local midnight in Seoul (nominal; 2025-08-04)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    top = subparsers.add_parser(
        "eval", help="care-outcome evaluation on a simulated population",
        description="Judge the alert rules on a simulated population with ground truth "
                    "(docs/evaluation.md).")
    sub = top.add_subparsers(dest="eval_command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "care", parents=[common],
        help="generate a population, replay the real rules over it, score against truth",
        description="Generate the population in shards, run `dolbom alerts replay` "
                    "on each, run naive 12 h / 24 h inactivity timers on the same messages, "
                    "and score all three against the ground truth. Prints the Markdown "
                    "report, or writes report.md and report.json with --out.")
    p.add_argument("--workers", type=_positive, default=2,
                   help="worker processes, each generating and replaying shards (2)")
    p.add_argument("--shard", type=_positive, default=10,
                   help="homes per shard: memory per worker grows with it (10)")
    p.add_argument("--out", type=Path, default=None,
                   help="write report.md and report.json into this directory")
    p.add_argument("--keep-data", action="store_true",
                   help="keep each shard's homes.json, messages.jsonl, truth.json and "
                        "alerts.jsonl under OUT/data")
    p.set_defaults(func=_care)

    p = sub.add_parser(
        "generate", parents=[common],
        help="write homes.json, messages.jsonl and truth.json of a population",
        description="Write one population as replay input (DESIGN.md §5 \"Replay\") plus "
                    "its ground truth, so `dolbom alerts replay` or any other system can "
                    "be run over it.")
    p.add_argument("--out", type=Path, required=True, help="directory to write into")
    p.set_defaults(func=_generate)

    p = sub.add_parser(
        "score", help="score an alerts.jsonl against a generated population's truth",
        description="Score the alerts of a replay (or of any system writing the replay "
                    "format) over a population written by `dolbom eval generate`, beside "
                    "the naive timers computed from its messages.jsonl.")
    p.add_argument("dir", type=Path,
                   help="directory with homes.json, messages.jsonl and truth.json")
    p.add_argument("--alerts", type=Path, default=None,
                   help="the alerts to score (default DIR/alerts.jsonl)")
    p.add_argument("--out", type=Path, default=None,
                   help="write report.md and report.json here (else Markdown on stdout)")
    p.set_defaults(func=_score)
