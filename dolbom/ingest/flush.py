"""Making batches durable: stamp them, write their points to InfluxDB (retried, then
spooled to disk while InfluxDB is down), store their dead letters, and only then
acknowledge their messages to the broker (STYLE.md "Delivery semantics"). ``replay``
writes the spool back, oldest first, once InfluxDB answers again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from dolbom.influx.errors import RetryLater
from dolbom.influx.spool import Spool
from dolbom.influx.writer import InfluxWriter
from dolbom.ingest.backpressure import Backpressure
from dolbom.ingest.batch import Batch, Pending
from dolbom.ingest.dead import DeadLetters
from dolbom.ingest.metrics import Counts
from dolbom.ingest.periodic import nap
from dolbom.ingest.settings import IngestSettings
from dolbom.ingest.stamp import Stamper
from dolbom.mqtt import Backoff, MqttSession

log = logging.getLogger("dolbom.ingest")


class Flusher:
    def __init__(self, settings: IngestSettings, *, pending: Pending, stamper: Stamper,
                 writer: InfluxWriter, spool: Spool, dead: DeadLetters, counts: Counts,
                 session: MqttSession, backpressure: Backpressure) -> None:
        self.settings, self.pending, self.stamper = settings, pending, stamper
        self.writer, self.spool, self.dead, self.counts = writer, spool, dead, counts
        self.metrics = counts.metrics
        self.session, self.backpressure = session, backpressure
        self.influx_healthy = True
        self._drops_reported = 0

    async def run(self, stopping: asyncio.Event, flush_now: asyncio.Event,
                  refresh_due: Callable[[], bool], refresh: Callable[[], Awaitable[None]]
                  ) -> None:
        """Flush every ``flush_interval_s``, or as soon as a batch is full; re-read the
        registry first when ``refresh_due`` (a message came from an unknown device)."""
        interval = self.settings.flush_interval_s
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flush_now.wait(), interval)
            flush_now.clear()
            if refresh_due():
                await refresh()
            await self.flush()

    async def flush(self) -> None:
        """Make the current batch durable, then acknowledge its messages in order."""
        pending = self.pending
        batch = pending.take()
        if not batch.acks and not batch.dead:
            return
        pending.inflight = len(batch)
        self.metrics.pending.set(pending.inflight)
        started = time.monotonic()
        try:
            try:
                await self.stamper.stamp(batch)
            except Exception:
                log.exception("could not record first receive times; the batch waits")
                pending.requeue(batch)
                return
            await self._store_points(batch)
            if batch.dead:
                await self.dead.store(batch.dead)
        finally:
            pending.inflight = 0
        client = self.session.client
        if client is not None and client.connected:
            client.ack_many(batch.acks)
        self.metrics.flush_seconds.observe(time.monotonic() - started)
        self.counts.sync()
        if self.backpressure.paused and len(pending.batch) < self.settings.max_pending // 2:
            self.backpressure.pause(False)

    async def _store_points(self, batch: Batch) -> None:
        lines = batch.events + batch.telemetry
        if not lines:
            return
        if self.influx_healthy:
            backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
            for attempt in range(self.settings.retries_before_spool + 1):
                try:
                    rejected = await self.writer.write(lines)
                except RetryLater as e:
                    self.metrics.write_errors.inc()
                    if attempt == self.settings.retries_before_spool:
                        log.warning("InfluxDB unavailable, spooling to disk: %s", e)
                        self.influx_healthy = False
                        self.metrics.influx_up.set(0)
                        break
                    await asyncio.sleep(backoff.next_delay())
                    continue
                self._written(len(lines) - sum(len(r.lines) for r in rejected))
                self.dead.rejected(rejected)
                return
        # InfluxDB is down: durable on disk instead, replayed by `replay`.
        await asyncio.to_thread(self._spool_batch, batch)
        self.metrics.spooled.inc(len(lines))
        self.metrics.spool_files.set(len(self.spool))
        self._count_spool_drops()

    def _written(self, good: int) -> None:
        self.counts.points += good
        self.metrics.points.inc(good)
        self.metrics.influx_up.set(1)

    def _count_spool_drops(self) -> None:
        new = self.spool.dropped_points - self._drops_reported
        if new:
            log.warning("spool full: dropped %d oldest telemetry points", new)
            self.metrics.spool_dropped.inc(new)
            self._drops_reported += new

    def _spool_batch(self, batch: Batch) -> None:
        self.spool.put(batch.events, event=True)
        self.spool.put(batch.telemetry, event=False)

    async def replay(self, stopping: asyncio.Event) -> None:
        """While the spool has batches, probe InfluxDB and write them back, oldest first."""
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
        while not stopping.is_set():
            f = self.spool.oldest()
            if f is None:
                if not self.influx_healthy:
                    self.influx_healthy = True
                    self.metrics.influx_up.set(1)
                    log.info("InfluxDB is back; spool drained")
                await nap(stopping, 1.0)
                continue
            lines = await asyncio.to_thread(self.spool.read, f)
            try:
                rejected = await self.writer.write(lines)
            except RetryLater:
                await nap(stopping, backoff.next_delay())
                continue
            backoff.reset()
            self.influx_healthy = True  # new batches go straight to InfluxDB again
            good = len(lines) - sum(len(r.lines) for r in rejected)
            self._written(good)
            self.metrics.replayed.inc(good)
            self.dead.rejected(rejected)
            await asyncio.to_thread(self.spool.done, f)
            self.metrics.spool_files.set(len(self.spool))
            self._count_spool_drops()
