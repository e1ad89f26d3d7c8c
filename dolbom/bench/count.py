"""The zero-loss check: every offered message must be a point in InfluxDB.

Each message becomes exactly one point (telemetry → ``reading``, event →
``event``, status → ``device_status``; ``frames.MEASUREMENT``), stored under the
device's ``ts`` or, when the receiver distrusts it, the receive time
(DESIGN.md §3). Both lie between the step's first second and the moment the
step is counted, and the steps run one after another, so counting each
measurement in that time window counts exactly that step's points, whatever
time rule the system under test applies. A point is unique per (measurement,
tags, ms): a device never sends twice in one ms, so nothing overwrites.

While a step drains, progress is watched on InfluxDB's own write counter
(``/debug/vars``), which is cheap; the count itself is InfluxQL ``count()``
of a field every point of the measurement has (``COUNT_FIELD``), a few sites
per query so that InfluxDB's memory stays bounded.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dolbom.influx.admin import InfluxHTTP
from dolbom.influx.errors import QueryFailed
from dolbom.influx.influxql import safe_name

# A count over a step touches every series of the measurement (1.8 M for the
# national fleet): it takes seconds to minutes, after the step, not during it.
COUNT_TIMEOUT_S = 900.0


def influx_points_written(url: str, database: str, rollup_rp: str = "rollup") -> int:
    """Points InfluxDB stored in ``database`` since it started, rollups aside (the
    ``writePointsOk`` statistic of its shards outside ``rollup_rp``): the points a step's
    messages become."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/debug/vars", timeout=10) as r:  # noqa: S310
        stats = json.loads(r.read())
    return sum(int(e.get("values", {}).get("writePointsOk", 0)) for e in stats.values()
               if isinstance(e, dict) and e.get("name") == "shard"
               and e.get("tags", {}).get("database") == database
               and e.get("tags", {}).get("retentionPolicy") != rollup_rp)


def query(client: InfluxHTTP, q: str, database: str, timeout: float = COUNT_TIMEOUT_S,
          params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """InfluxQL over POST with a long timeout: counting a step touches every series."""
    return client.query(q, database, method="POST", timeout=timeout, params=params)


# The field counted per measurement: one that every point of it has (every
# telemetry message of the fleet carries rssi_dbm). Counting one field, not
# ``*``, opens one cursor per series instead of one per series and field.
COUNT_FIELD = {"reading": "rssi_dbm", "event": "seq", "device_status": "state"}
# InfluxDB 1.x holds a cursor per series a query touches: counting 1.8 M
# series at once took it past 20 GB. Counting a few sites at a time bounds that.
MAX_DEVICES_PER_COUNT = 50_000


def site_groups(sites: Sequence[str], devices_per_site: int,
                max_devices: int = MAX_DEVICES_PER_COUNT) -> tuple[tuple[str, ...], ...]:
    """Sites split into groups of at most ``max_devices`` devices (one query each)."""
    per = max(1, max_devices // max(1, devices_per_site))
    return tuple(tuple(sites[i: i + per]) for i in range(0, len(sites), per)) or ((),)


@dataclass(frozen=True, slots=True)
class Counter:
    """Counts a measurement's points in a time window, a group of sites per query."""

    client: InfluxHTTP
    database: str
    groups: tuple[tuple[str, ...], ...] = ((),)  # () in a group: no site filter

    def count(self, measurement: str, start_ms: int, end_ms: int,
              device: str | None = None) -> int:
        field = COUNT_FIELD.get(measurement)
        what = f'"{safe_name(field)}"' if field else "*"
        # names are checked (InfluxQL cannot bind them); the device and sites are bound
        base = (f'SELECT count({what}) FROM "{safe_name(measurement)}" '  # noqa: S608 - checked
                f"WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms")
        params: dict[str, Any] = {}
        if device is not None:
            base += " AND device = $device"
            params["device"] = device
        total = 0
        for group in (((),) if device is not None else self.groups):
            q, bound = base, dict(params)
            if group:
                q += " AND (" + " OR ".join(f"site = $s{i}" for i in range(len(group))) + ")"
                bound.update({f"s{i}": s for i, s in enumerate(group)})
            for res in query(self.client, q, self.database, params=bound):
                for series in res.get("series", []):
                    for row in series["values"]:
                        total += max([0, *(int(v) for v in row[1:] if v is not None)])
        return total

    def tally(self, expected: dict[str, int], start_ms: int, end_ms: int) -> Tally:
        asked = time.time()
        counted = {m: self.count(m, start_ms, end_ms) for m in expected}
        return Tally(expected, counted, asked)


@dataclass(frozen=True, slots=True)
class Tally:
    expected: dict[str, int]
    counted: dict[str, int]
    counted_at: float  # epoch s when the count was asked for

    @property
    def missing(self) -> int:
        return sum(max(0, n - self.counted.get(m, 0)) for m, n in self.expected.items())

    @property
    def extra(self) -> int:
        return sum(max(0, self.counted.get(m, 0) - n) for m, n in self.expected.items())


@dataclass(frozen=True, slots=True)
class Drain:
    tally: Tally
    complete_at: float | None  # epoch s when every point was counted (None: never)


def wait_drained(counter: Counter, expected: dict[str, int], start_ms: int,
                 *, written: Callable[[], int], written_before: int, deadline_s: float,
                 quiet_s: float = 30.0, poll_s: float = 0.5, recount_s: float = 3.0) -> Drain:
    """Wait until the step's points are all in InfluxDB, then count them.

    ``written()`` is InfluxDB's write counter and ``written_before`` its value
    before the step: once it has grown by the expected number of points (or
    stopped growing for ``quiet_s``), count; recount while InfluxDB is still
    being written to, until everything is there or ``deadline_s`` from now.
    """
    need = sum(expected.values())
    end = time.monotonic() + deadline_s
    last, last_change = written(), time.monotonic()
    reached_at: float | None = None  # epoch s when InfluxDB had been sent enough points
    next_count = 0.0
    while True:
        now = time.monotonic()
        w = written()
        if w != last:
            last, last_change = w, now
        if reached_at is None and w - written_before >= need:
            reached_at = time.time()
        settled = reached_at is not None or now - last_change >= quiet_s or now >= end
        if settled and now >= next_count:
            asked_at = time.time()
            t = counter.tally(expected, start_ms, int(asked_at * 1000) + 1000)
            if t.missing == 0:
                # Complete when the points were written, not when counting them ended.
                done = asked_at if reached_at is None else min(reached_at, asked_at)
                return Drain(t, done)
            if now >= end or time.monotonic() - last_change >= quiet_s:
                return Drain(t, None)
            reached_at = None
            next_count = time.monotonic() + recount_s  # counting is not free: not too often
        time.sleep(poll_s)


def safe_written(url: str, database: str) -> Callable[[], int]:
    """``influx_points_written``, repeating the last value while InfluxDB is too busy to say."""
    last = [0]

    def read() -> int:
        with contextlib.suppress(OSError, ValueError, QueryFailed):
            last[0] = influx_points_written(url, database)
        return last[0]

    return read
