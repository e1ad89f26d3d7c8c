"""``dolbom eval care``: generate, replay, score, in shards over worker processes.

Homes are independent for every rule, so the population is cut into shards of a
few dozen homes; a worker generates a shard to a directory, runs the real rules
over it with ``dolbom.alerts.replay.replay_files``, computes the naive timers from
the same messages, and (unless the data is kept) deletes the files. The parent
scores everything at the end against the merged truth.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dolbom.eval import truth as tr
from dolbom.eval.generate import ALERTS_FILE, HOMES_FILE, MESSAGES_FILE, write_chunk
from dolbom.eval.naive import device_homes, naive_alerts
from dolbom.eval.population import DAY_MS, HomeOutput

NAIVE_HOURS = (12.0, 24.0)


@dataclass(frozen=True, slots=True)
class Job:
    seed: int
    lo: int
    hi: int
    days: int
    start_ms: int
    directory: str
    keep: bool


@dataclass(slots=True)
class ShardResult:
    lo: int
    hi: int
    truth: dict[str, Any]
    alerts: list[dict[str, Any]]
    naive: dict[str, list[dict[str, Any]]]
    messages: int
    replay: dict[str, Any]
    seconds: float


@dataclass(slots=True)
class RunResult:
    truth: tr.Truth
    alerts: list[dict[str, Any]]
    naive: dict[str, list[dict[str, Any]]]
    messages: int
    replay: dict[str, int]
    seconds: float
    data_dir: Path | None = None
    shards: int = 0
    bad: dict[str, int] = field(default_factory=dict)


def run_shard(job: Job) -> ShardResult:
    """Generate, replay and clean up one shard (runs in a worker process)."""
    from dolbom.alerts.replay import replay_files  # the real rules, as the service runs them

    t0 = time.perf_counter()
    d = Path(job.directory)
    end_ms = job.start_ms + job.days * DAY_MS
    naive: dict[str, list[dict[str, Any]]] = {f"naive_{h:g}h": [] for h in NAIVE_HOURS}

    def timers(h: HomeOutput) -> None:
        devs = device_homes({"homes": [h.spec]})
        for hours in NAIVE_HOURS:
            naive[f"naive_{hours:g}h"] += naive_alerts(devs, h.messages, hours, end_ms)

    chunk = write_chunk(d, job.seed, range(job.lo, job.hi), job.days, job.start_ms, timers)
    stats = replay_files(d / HOMES_FILE, d / MESSAGES_FILE, d / ALERTS_FILE)
    alerts = [orjson.loads(line) for line in (d / ALERTS_FILE).read_bytes().splitlines()
              if line.strip()]
    if not job.keep:
        shutil.rmtree(d, ignore_errors=True)
    replay = ({f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)
               if isinstance(getattr(stats, f.name), int)}
              if dataclasses.is_dataclass(stats) else {})
    return ShardResult(job.lo, job.hi, chunk.truth.to_json(), alerts, naive, chunk.messages,
                       replay, time.perf_counter() - t0)


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled and total > 0
        self.t0 = time.monotonic()

    def __call__(self, done: int, messages: int) -> None:
        if not self.enabled:
            return
        el = time.monotonic() - self.t0
        eta = el / done * (self.total - done) if done else 0.0
        width = 30
        bar = "#" * int(width * done / self.total)
        sys.stderr.write(f"\r[{bar:<{width}}] {done}/{self.total} homes  "
                         f"{messages / 1e6:.1f}M messages  {el / 60:.1f} min, "
                         f"~{eta / 60:.1f} min left ")
        sys.stderr.flush()
        if done >= self.total:
            sys.stderr.write("\n")


def run_care(homes: int, days: int, seed: int, start_ms: int, workers: int = 2,
             shard: int = 10, keep_dir: Path | None = None,
             progress: Callable[[int, int], None] | None = None) -> RunResult:
    """The whole evaluation; ``keep_dir`` keeps every shard's files there."""
    t0 = time.perf_counter()
    tmp = None if keep_dir else tempfile.mkdtemp(prefix="dolbom-eval-")
    base = keep_dir or Path(str(tmp))
    jobs = [Job(seed, lo, min(homes, lo + shard), days, start_ms,
                str(base / f"shard-{lo // shard:04d}"), keep_dir is not None)
            for lo in range(0, homes, shard)]
    results: list[ShardResult] = []
    done = messages = 0
    try:
        if workers <= 1:
            for j in jobs:
                r = run_shard(j)
                results.append(r)
                done, messages = done + r.hi - r.lo, messages + r.messages
                if progress:
                    progress(done, messages)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                pending: set[Future[ShardResult]] = {pool.submit(run_shard, j) for j in jobs}
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            r = f.result()
                            results.append(r)
                            done, messages = done + r.hi - r.lo, messages + r.messages
                            if progress:
                                progress(done, messages)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # fail now, not at the end
                    raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    results.sort(key=lambda r: r.lo)
    truth = tr.merge([tr.Truth.from_json(r.truth) for r in results])
    replay: dict[str, int] = {}
    for r in results:
        for k, v in r.replay.items():
            replay[k] = replay.get(k, 0) + v
    naive: dict[str, list[dict[str, Any]]] = {f"naive_{h:g}h": [] for h in NAIVE_HOURS}
    for r in results:
        for k, v in r.naive.items():
            naive[k] += v
    return RunResult(truth, [a for r in results for a in r.alerts], naive,
                     messages, replay, time.perf_counter() - t0, keep_dir, len(jobs))
