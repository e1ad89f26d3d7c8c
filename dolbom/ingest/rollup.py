"""1-minute rollups per home, computed as the readings pass through ingest (pure).

DESIGN.md §4 keeps 1-minute and 1-hour rollups for 2 years. An InfluxDB continuous
query cannot make the 1-minute one at fleet scale: ``SELECT mean(*) … GROUP BY
time(1m), *`` over 300,000 device series took InfluxDB 1.6 65–85 s of wall time and
77–104 s of CPU per run (it runs every minute) and 9–12 GiB of RSS, and grouping by
home instead was slower still (docs/benchmarks.md, "Rollups"). Ingest already holds
every reading with its home, so it adds each one to its home's minute and, once the
minute has closed, writes one ``reading_1m`` point per home into the ``rollup``
retention policy: one field per reading (the mean of that reading over the home's
devices in that minute) and ``samples``, how many readings went into it. The 1-hour
rollup stays a continuous query, over these per-home points (``dolbom.stack``).

Device-level detail stays in ``raw`` (90 days). A minute is written ``grace_s`` after
it ends, so readings that arrive a little late still count; a reading for a minute
already written (replayed backlog, a long broker backlog) is left out of the rollup
and counted in ``late`` (it is in ``raw`` like every other point). At shutdown the
minutes still open are written as they are (``flush_all``).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping

from dolbom.influx.lineproto import line
from dolbom.protocol import READINGS

MINUTE_MS = 60_000
MEASUREMENT = "reading_1m"
FIELDS = tuple(sorted(READINGS))
_AT = {name: i for i, name in enumerate(FIELDS)}
_ZERO = array("d", [0.0] * (2 * len(FIELDS)))  # sum and count per field


class Rollup:
    def __init__(self, grace_s: float = 30.0) -> None:
        self.grace_ms = int(grace_s * 1000)
        # minute → home → (site, sums and counts)
        self._open: dict[int, dict[str, tuple[str, array[float]]]] = {}
        self._closed_before = -(2**62)  # minutes below this were written
        self.late = 0  # readings for a minute already written
        self.written = 0  # reading_1m points produced

    def add(self, site: str, home: str, ts_ms: int, readings: Mapping[str, float]) -> None:
        minute = ts_ms // MINUTE_MS
        if minute < self._closed_before:
            self.late += 1
            return
        homes = self._open.get(minute)
        if homes is None:
            homes = self._open[minute] = {}
        entry = homes.get(home)
        if entry is None:
            entry = homes[home] = (site, array("d", _ZERO))
        acc = entry[1]
        at = _AT
        for name, value in readings.items():
            i = at.get(name)
            if i is not None:
                acc[2 * i] += value
                acc[2 * i + 1] += 1

    def due(self, now_ms: int) -> list[bytes]:
        """Points of every minute that ended at least ``grace_s`` before ``now_ms``."""
        return self._close((now_ms - self.grace_ms) // MINUTE_MS)

    def flush_all(self) -> list[bytes]:
        """Points of every minute still open (at shutdown)."""
        return self._close(max(self._open, default=self._closed_before - 1) + 1)

    @property
    def open_minutes(self) -> int:
        return len(self._open)

    def _close(self, before: int) -> list[bytes]:
        lines: list[bytes] = []
        for minute in sorted(m for m in self._open if m < before):
            ts = minute * MINUTE_MS
            for home, (site, acc) in self._open.pop(minute).items():
                fields: dict[str, float | int] = {}
                samples = 0
                for i, name in enumerate(FIELDS):
                    n = acc[2 * i + 1]
                    if n:
                        fields[name] = acc[2 * i] / n
                        samples += int(n)
                fields["samples"] = samples
                lines.append(line(MEASUREMENT, {"site": site, "home": home}, fields, ts))
        self.written += len(lines)
        self._closed_before = max(self._closed_before, before)
        return lines
