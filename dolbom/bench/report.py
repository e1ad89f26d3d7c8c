"""Tables of a benchmark run: one line per step on the terminal, Markdown for the docs."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dolbom.bench.runner import BenchConfig, StepResult, TargetResult

PROC_ORDER = ("broker", "influxdb", "ingest", "node-red", "loadgen", "bench")


def _procs(step: StepResult) -> list[str]:
    names = [n for n in PROC_ORDER if n in step.cpu_pct]
    return names + sorted(n for n in step.cpu_pct if n not in names)


def others_pct(s: StepResult) -> float:
    """CPU (% of one core) spent outside the run's processes and interrupts during the step."""
    cores = os.cpu_count() or 1
    return max(0.0, s.machine_busy_pct * cores - sum(s.cpu_pct.values()) - s.irq_pct)


def step_line(target: str, s: StepResult) -> str:
    drain = "never" if s.drain_s is None else f"{s.drain_s:.1f}s"
    cpu = " ".join(f"{n} {s.cpu_pct[n]:.0f}%" for n in _procs(s))
    rss = " ".join(f"{n} {s.rss_peak.get(n, 0) / 2**20:.0f}M" for n in _procs(s))
    counted = sum(s.counted.values())
    phase = "warm-up " if s.phase != "step" else ""
    nonzero = {k.removeprefix("dolbom_ingest_").removesuffix("_total"): v
               for k, v in sorted(s.target_metrics.items()) if v and "/" not in k}
    notes = ("\n        target: " + ", ".join(f"{k} {v:,.0f}" for k, v in nonzero.items())
             if nonzero else "")
    return (f"{target:>6} {phase}{s.rate:>6}/s × {s.duration}s: offered {s.offered_rate:,.0f}/s "
            f"(lag {s.max_lag_s:.2f}s) counted {counted:,}/{s.messages:,} drain {drain} "
            f"→ {s.verdict}\n        CPU {cpu} | interrupts {s.irq_pct:.0f}% | "
            f"other processes {others_pct(s):.0f}% | "
            f"machine {s.machine_busy_pct:.0f}% of {os.cpu_count()} cores\n        RSS {rss}"
            f"{notes}{ingest_cost(s)}")


INGEST_MESSAGES = "dolbom_ingest_messages_total"


def ingest_cost(s: StepResult) -> str:
    """Ingest's CPU per message taken (/proc, over the step's offered load), in all and,
    with several workers, per worker with each one's share of the messages."""
    workers = sorted(n for n in s.cpu_pct if n == "ingest" or n.startswith("ingest-"))
    taken = s.target_metrics.get(INGEST_MESSAGES, 0.0)
    if not workers or not taken:
        return ""

    def us(cpu_pct: float, messages: float) -> str:
        return f"{cpu_pct / 100 * s.duration / messages * 1e6:.1f} µs" if messages else "-"

    line = (f"\n        ingest CPU per message taken: "
            f"{us(sum(s.cpu_pct[n] for n in workers), taken)} ({taken:,.0f} messages)")
    if len(workers) > 1:
        line += "; per worker: " + ", ".join(
            f"{n} {us(s.cpu_pct[n], m)} × {m:,.0f} ({m / s.duration:,.0f}/s)"
            for n in workers for m in [s.target_metrics.get(f"{n}/{INGEST_MESSAGES}", 0.0)])
    return line


def _version(argv: list[str]) -> str:
    exe = shutil.which(argv[0])
    if exe is None:
        return "missing"
    try:
        r = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=10,
                           check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0] if out else "?"


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    osname = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "os": osname,
        "kernel": platform.release(), "python": platform.python_version(),
        "mosquitto": _version(["mosquitto", "-h"]).removeprefix("mosquitto version "),
        "influxdb": _version(["influxd", "version"]).removeprefix("InfluxDB ").split(" (")[0],
        "node": _version(["node", "--version"]),
    }


def summary(results: list[TargetResult]) -> str:
    lines = []
    best = {r.target: r.best_rate for r in results}
    for r in results:
        b = r.best_rate
        lines.append(f"{r.target}: highest rate sustained with zero loss: "
                     + (f"{b:,} msg/s" if b else "none") + (f" (error: {r.error})"
                                                            if r.error else ""))
    d, p = best.get("dolbom"), best.get("peer")
    if d and p:
        lines.append(f"Dolbom / peer: {d / p:.2f}×")
    return "\n".join(lines)


def markdown(results: list[TargetResult], cfg: BenchConfig, command: str,
             machine: dict[str, str], date: str) -> str:
    out = [f"Command: `{command}`  ", f"Date: {date}  ",
           "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), "",
           f"Fleet: {results[0].fleet_homes:,} homes × 6 = {results[0].fleet_devices:,} devices; "
           f"steps of {cfg.duration} s; telemetry QoS {cfg.telemetry_qos}; sustained = zero "
           f"loss counted in InfluxDB and all points in within {cfg.drain_s:.0f} s.", ""]
    for r in results:
        out.append(f"**{r.target}** (ready {r.ready_s:.1f} s after start)")
        out.append("")
        steps = ([r.warmup] if r.warmup is not None else []) + r.steps
        procs: list[str] = []
        for s in steps:
            procs += [n for n in _procs(s) if n not in procs]
        head = ["step", "rate/s", "offered/s", "counted", "drain s", "result",
                *[f"CPU {n} %" for n in procs], "CPU irq %", "CPU others %", "machine %",
                *[f"RSS {n} MiB" for n in procs]]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for s in steps:
            drain = "—" if s.drain_s is None else f"{s.drain_s:.1f}"
            row = [s.phase, f"{s.rate:,}", f"{s.offered_rate:,.0f}",
                   f"{sum(s.counted.values()):,} / {s.messages:,}", drain, s.verdict,
                   *[f"{s.cpu_pct.get(n, 0):.0f}" for n in procs],
                   f"{s.irq_pct:.0f}", f"{others_pct(s):.0f}", f"{s.machine_busy_pct:.0f}",
                   *[f"{s.rss_peak.get(n, 0) / 2**20:.0f}" for n in procs]]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    out.append(summary(results).replace("\n", "  \n"))
    return "\n".join(out) + "\n"


def to_json(results: list[TargetResult], cfg: BenchConfig, command: str,
            machine: dict[str, str], date: str) -> str:
    doc: dict[str, Any] = {
        "command": command, "date": date, "machine": machine, "config": asdict(cfg),
        "results": [{**asdict(r), "best_rate": r.best_rate} for r in results],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)


_DOLBOM = Path(__file__).resolve().parents[1]
_OWN_FILES = {p.name for p in _DOLBOM.rglob("*.py")} - {"cli.py", "__init__.py", "__main__.py"}


def _frame_file(frame: str) -> str:
    """``func (path/file.py:line)`` → ``path/file.py``."""
    inner = frame.rpartition("(")[2]
    return inner.rpartition(":")[0]


def _is_own(frame: str) -> bool:
    f = _frame_file(frame)
    # py-spy shortens paths of the running package's modules to their base name.
    return ("dolbom/" in f and not f.endswith("/cli.py")) or ("/" not in f and f in _OWN_FILES)


def profile_top(path: Path, n: int = 15) -> tuple[list[tuple[str, float]],
                                                   list[tuple[str, float]]]:
    """(self time, time by Dolbom function) of a py-spy ``--format raw`` profile, in %.

    Each line is ``frame;frame;...;leaf count``. "By Dolbom function" charges
    each sample to the deepest frame of Dolbom's own code on its stack, so a
    library's time (SQLAlchemy, asyncio) counts for the Dolbom code calling it.
    """
    self_time: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = stack.split(";")
        self_time[frames[-1]] = self_time.get(frames[-1], 0) + c
        mine = [f for f in frames if _is_own(f)]
        key = mine[-1].rsplit(":", 1)[0] + ")" if mine else "(outside Dolbom's code)"
        own[key] = own.get(key, 0) + c
        total += c

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, 100.0 * v / max(total, 1))
                for f, v in sorted(d.items(), key=lambda kv: -kv[1])[:n]]

    return top(self_time), top(own)
