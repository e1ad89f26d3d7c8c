"""CPU and memory of each process of a run, sampled from ``/proc/<pid>``.

CPU is user + system time (``/proc/<pid>/stat`` fields 14 and 15, in clock
ticks) of the process and its descendants, as a % of one core over a window;
RSS is ``VmRSS`` of the process and its descendants, the peak over the samples
in the window. The machine's busy share comes from ``/proc/stat``.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after its last ')'.
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    f = _stat_fields(pid)
    if f is None:
        return 0.0
    return (int(f[11]) + int(f[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        f = _stat_fields(int(entry.name))
        if f is not None:
            out.setdefault(int(f[1]), []).append(int(entry.name))  # ppid (field 4)
    return out


def tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, interrupts) clock ticks of all cores since boot.

    Interrupt time (irq + softirq: here mostly loopback TCP) is busy time that
    ``/proc/<pid>/stat`` charges to no process, so it is reported on its own.
    """
    first = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in first]
    idle = v[3] + v[4]  # idle + iowait
    total = sum(v[:8])  # guest time is already inside user
    return total - idle, total, v[5] + v[6]


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # monotonic s
    cpu: dict[str, float]  # name -> CPU seconds (process tree)
    rss: dict[str, int]  # name -> bytes (process tree)
    busy: int
    total: int
    irq: int


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_pct: dict[str, float]  # % of one core
    rss_peak: dict[str, int]
    machine_busy_pct: float  # % of all cores
    seconds: float
    irq_pct: float = 0.0  # interrupts (irq + softirq), % of one core


@dataclass
class Sampler:
    """Samples every ``interval`` s in a thread; ``usage(t0, t1)`` summarises a window."""

    procs: dict[str, int] = field(default_factory=dict)  # name -> pid
    alone: set[str] = field(default_factory=set)  # names measured without descendants
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, name: str, pid: int, descendants: bool = True) -> None:
        with self._lock:
            self.procs[name] = pid
            if not descendants:
                self.alone.add(name)

    def sample(self) -> Sample:
        children = children_map()
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        with self._lock:
            procs, alone = dict(self.procs), set(self.alone)
        for name, pid in procs.items():
            pids = [pid] if name in alone else tree(pid, children)
            cpu[name] = sum(cpu_seconds(p) for p in pids)
            rss[name] = sum(rss_bytes(p) for p in pids)
        busy, total, irq = machine_ticks()
        s = Sample(time.monotonic(), cpu, rss, busy, total, irq)
        with self._lock:
            self.samples.append(s)
        return s

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="procstat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def usage(self, t0: float, t1: float) -> Usage:
        """Usage between monotonic times t0 and t1 (nearest samples inside the window)."""
        with self._lock:
            samples = list(self.samples)
        times = [s.t for s in samples]
        i = bisect.bisect_left(times, t0)
        j = bisect.bisect_right(times, t1) - 1
        if i >= len(samples) or j <= i:
            return Usage({}, {}, 0.0, 0.0)
        a, b = samples[i], samples[j]
        dt = b.t - a.t
        cpu = {n: 100.0 * (b.cpu[n] - a.cpu[n]) / dt for n in b.cpu if n in a.cpu}
        peak: dict[str, int] = {}
        for s in samples[i: j + 1]:
            for n, v in s.rss.items():
                peak[n] = max(peak.get(n, 0), v)
        ticks = max(b.total - a.total, 1)
        busy = 100.0 * (b.busy - a.busy) / ticks
        irq = 100.0 * (b.irq - a.irq) / ticks * (os.cpu_count() or 1)
        return Usage(cpu, peak, busy, dt, irq)
