"""Ingest's own counts → InfluxDB ``ingest_stats`` every minute, for the Operations
dashboard (Grafana reads InfluxDB only; the same counts are Prometheus metrics at
``/metrics``).

Read from the Prometheus registry the service already keeps, so the hot path does
nothing more. Per interval, one point per ingest instance (tag ``instance``: the MQTT
client id, no personal data), fields:

    spool_files       batches waiting in the disk spool (InfluxDB was down), at the time
    spooled           points written to the spool in the interval
    spool_dropped     telemetry points dropped from a full spool in the interval
    points            points InfluxDB accepted in the interval
    write_errors      InfluxDB writes to retry in the interval
    flushes           batches made durable in the interval
    flush_mean_s      their mean time to durable (InfluxDB or spool), when there were some
    flush_p99_s       the bucket bound under which 99 % of them took, when finite
    influx_up, mqtt_up  1 or 0 at the time

and one point per dead-letter reason seen in the interval (tags ``instance``,
``reason``; field ``dead_letters``).

While InfluxDB is down the lines wait in memory (bounded, oldest dropped) and are
written when it answers again: a spool that grew during an outage shows afterwards
at the times it grew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from dolbom.influx.errors import RetryLater
from dolbom.influx.lineproto import line
from dolbom.influx.writer import InfluxWriter

log = logging.getLogger("dolbom.ingest.selfstats")

MEASUREMENT = "ingest_stats"
DEFAULT_INTERVAL_S = 60.0
MAX_WAITING_LINES = 10_000  # about a week of one instance's minutes while InfluxDB is down
_PREFIX = "dolbom_ingest_"
# Counters turned into per-interval deltas: field name -> sample name.
_COUNTERS = {
    "spooled": "spooled_points_total",
    "spool_dropped": "spool_dropped_points_total",
    "points": "points_written_total",
    "write_errors": "write_errors_total",
}
_GAUGES = {"spool_files": "spool_files", "influx_up": "influx_up", "mqtt_up": "mqtt_up"}


@dataclass(frozen=True)
class Totals:
    """The registry's values at one moment (counters since the process started)."""

    counters: Mapping[str, float] = field(default_factory=dict)  # by field name
    gauges: Mapping[str, float] = field(default_factory=dict)  # by field name
    dead_letters: Mapping[str, float] = field(default_factory=dict)  # by reason
    flushes: float = 0.0
    flush_sum_s: float = 0.0
    flush_buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count)


def read_totals(registry: CollectorRegistry) -> Totals:
    """Read ingest's metrics (dolbom.ingest.metrics) from ``registry``."""
    values: dict[str, float] = {}
    dead: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == _PREFIX + "dead_letters_total":
                dead[s.labels["reason"]] = s.value
            elif s.name == _PREFIX + "flush_seconds_bucket":
                buckets.append((float(s.labels["le"]), s.value))
            elif not s.labels:
                values[s.name] = s.value
    return Totals(
        counters={f: values.get(_PREFIX + n, 0.0) for f, n in _COUNTERS.items()},
        gauges={f: values.get(_PREFIX + n, 0.0) for f, n in _GAUGES.items()},
        dead_letters=dead,
        flushes=values.get(_PREFIX + "flush_seconds_count", 0.0),
        flush_sum_s=values.get(_PREFIX + "flush_seconds_sum", 0.0),
        flush_buckets=tuple(sorted(buckets)))


def _p99_bound(prev: Totals, cur: Totals) -> float | None:
    """The smallest bucket bound under which 99 % of the interval's flushes fall."""
    before = dict(prev.flush_buckets)
    n = cur.flushes - prev.flushes
    if n <= 0:
        return None
    for le, count in cur.flush_buckets:
        if count - before.get(le, 0.0) >= 0.99 * n:
            return le if math.isfinite(le) else None
    return None


def stats_lines(instance: str, prev: Totals | None, cur: Totals, at_ms: int) -> list[bytes]:
    """The ``ingest_stats`` points of the interval from ``prev`` (None: the start) to
    ``cur``, at ``at_ms``."""
    prev = prev or Totals()
    fields: dict[str, float | int] = {name: int(cur.gauges.get(name, 0.0)) for name in _GAUGES}
    fields.update({name: int(cur.counters.get(name, 0.0) - prev.counters.get(name, 0.0))
                   for name in _COUNTERS})
    flushes = cur.flushes - prev.flushes
    fields["flushes"] = int(flushes)
    if flushes > 0:
        fields["flush_mean_s"] = (cur.flush_sum_s - prev.flush_sum_s) / flushes
        p99 = _p99_bound(prev, cur)
        if p99 is not None:
            fields["flush_p99_s"] = p99
    lines = [line(MEASUREMENT, {"instance": instance}, fields, at_ms)]
    for reason in sorted(cur.dead_letters):
        n = int(cur.dead_letters[reason] - prev.dead_letters.get(reason, 0.0))
        if n > 0:
            lines.append(line(MEASUREMENT, {"instance": instance, "reason": reason},
                              {"dead_letters": n}, at_ms))
    return lines


class SelfStats:
    """Every ``interval_s``: this interval's lines, written with ingest's InfluxDB writer.

    ``before`` brings the registry up to date first (the service's plain hot-path
    counters are copied into it at each flush and scrape); ``clock`` gives the points'
    time (seconds, like ``time.time``).
    """

    def __init__(self, registry: CollectorRegistry, writer: InfluxWriter, instance: str, *,
                 clock: Callable[[], float], interval_s: float = DEFAULT_INTERVAL_S,
                 before: Callable[[], None] | None = None,
                 max_waiting: int = MAX_WAITING_LINES) -> None:
        if interval_s <= 0:
            raise ValueError("the self-stats interval must be positive")
        self.registry = registry
        self.writer = writer
        self.instance = instance
        self.clock = clock
        self.interval_s = interval_s
        self.before = before
        self._prev: Totals | None = None
        self.waiting: deque[bytes] = deque(maxlen=max_waiting)

    def take(self) -> list[bytes]:
        """Close the interval: its lines join those waiting to be written."""
        if self.before is not None:
            self.before()
        cur = read_totals(self.registry)
        lines = stats_lines(self.instance, self._prev, cur, int(self.clock() * 1000))
        self._prev = cur
        self.waiting.extend(lines)
        return lines

    async def write_once(self) -> int:
        """Take the interval and write every waiting line; how many were written (0 while
        InfluxDB cannot take them: they wait for the next time)."""
        self.take()
        lines = list(self.waiting)
        try:
            rejected = await self.writer.write(lines)
        except RetryLater as e:
            log.debug("self-stats wait for InfluxDB: %s", e)
            return 0
        self.waiting.clear()
        for r in rejected:  # our own lines: a bug, not bad input
            log.error("InfluxDB refused %d self-stats line(s): %s", len(r.lines), r.reason)
        return len(lines) - sum(len(r.lines) for r in rejected)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval_s)
            if stopping.is_set():
                return
            try:
                await self.write_once()
            except Exception:
                log.exception("self-stats write failed")
