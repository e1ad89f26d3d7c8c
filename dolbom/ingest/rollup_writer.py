"""Writing the per-home 1-minute rollups (``dolbom.ingest.rollup``) into InfluxDB's
``rollup`` policy once their minutes have closed."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from dolbom.influx.errors import RetryLater
from dolbom.influx.writer import InfluxWriter
from dolbom.ingest.dead import DeadLetters
from dolbom.ingest.metrics import Counts
from dolbom.ingest.rollup import Rollup
from dolbom.ingest.settings import IngestSettings

log = logging.getLogger("dolbom.ingest")


class RollupWriter:
    def __init__(self, settings: IngestSettings, rollup: Rollup, writer: InfluxWriter,
                 dead: DeadLetters, counts: Counts, clock: Callable[[], float]) -> None:
        self.settings, self.rollup, self.writer = settings, rollup, writer
        self.dead, self.counts, self.clock = dead, counts, clock
        self._lines: deque[bytes] = deque()  # closed minutes not yet written
        self._dropped = 0

    async def write(self, *, everything: bool = False) -> None:
        """Write the rollups of the minutes that have closed (``everything``: also the
        open ones, at shutdown). While InfluxDB is down they wait here, the oldest
        dropped (and counted) past ``rollup_max_pending``: raw points are the record,
        rollups can be rebuilt from them."""
        r, metrics, report = self.rollup, self.counts.metrics, self.counts.report
        late = r.late
        self._lines.extend(r.flush_all() if everything else r.due(int(self.clock() * 1000)))
        report(metrics.rollup_late, "rollup-late", late)
        over = len(self._lines) - self.settings.rollup_max_pending
        for _ in range(max(0, over)):
            self._lines.popleft()
            self._dropped += 1
        report(metrics.rollup_dropped, "rollup-dropped", self._dropped)
        size = self.settings.batch_size
        while self._lines:
            chunk = [self._lines[i] for i in range(min(size, len(self._lines)))]
            try:
                rejected = await self.writer.write(chunk, self.settings.rollup_rp)
            except RetryLater as e:
                log.debug("rollups wait for InfluxDB: %s", e)
                return
            for _ in chunk:
                self._lines.popleft()
            metrics.rollup_points.inc(len(chunk) - sum(len(x.lines) for x in rejected))
            self.dead.rejected(rejected)

    async def write_closed(self) -> None:
        """``write`` for the periodic task: a failure is logged and retried next time."""
        try:
            await self.write()
        except Exception:
            log.exception("rollup write failed; retrying")
