"""The ingest service: MQTT → decode → enrich → points → InfluxDB (or spool) → PUBACK.

Delivery (DESIGN.md §3, STYLE.md "Delivery semantics"): the service subscribes
with a persistent session at QoS 1 and acknowledges each message only after
what depends on it is durable — its points in InfluxDB or in the fsync'd disk
spool, its dead letter in the registry database. If the service dies first,
the broker delivers the message again; duplicates are dropped by
``(dev, boot, seq)`` and InfluxDB's explicit timestamps make re-writes idempotent:
a point's time is the same on every delivery (DESIGN.md §3), the device's when it is
plausible, else the first receive time, kept durably (``receive_times``) before the
point is written.

The hot path (``intake``) is synchronous and does no I/O; everything that waits
(HTTP, fsync, SQL, the first receive times) happens in the flush task (``flush``),
one batch at a time, while the next batch fills. Past ``max_pending`` undurable
messages, reading from the broker pauses (``backpressure``): memory is bounded and
the broker holds the backlog.

This module wires the parts together, runs them as named tasks and drains them on stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from dolbom.influx.spool import Spool
from dolbom.influx.writer import InfluxWriter
from dolbom.ingest.backpressure import Backpressure
from dolbom.ingest.batch import Pending
from dolbom.ingest.dead import DeadLetters
from dolbom.ingest.devices import DeviceIndex, SeenTimes
from dolbom.ingest.flush import Flusher
from dolbom.ingest.health import Snapshot, serve_health
from dolbom.ingest.intake import Intake
from dolbom.ingest.metrics import Counts, IngestMetrics
from dolbom.ingest.periodic import every
from dolbom.ingest.receive_times import ReceiveTimes
from dolbom.ingest.rollup import Rollup
from dolbom.ingest.rollup_writer import RollupWriter
from dolbom.ingest.seen import SeenRecorder
from dolbom.ingest.selfstats import DEFAULT_INTERVAL_S, SelfStats
from dolbom.ingest.settings import IngestSettings
from dolbom.ingest.stamp import Stamper
from dolbom.mqtt import Client, MqttSession, Received
from dolbom.protocol import Topics
from dolbom.registry.db import session_factory

log = logging.getLogger("dolbom.ingest")


class Ingest:
    def __init__(self, settings: IngestSettings, *, clock: Callable[[], float] = time.time,
                 self_stats_s: float = DEFAULT_INTERVAL_S) -> None:
        self.settings, self.clock = settings, clock
        self.topics = Topics(settings.mqtt.topic_prefix)
        self.stopping = asyncio.Event()
        self.metrics = IngestMetrics()
        self.counts = Counts(self.metrics)
        sessions = self._sessions = session_factory(settings.database_url)
        self.spool = Spool(settings.spool_dir, settings.spool_max_telemetry_bytes)
        self.times = ReceiveTimes(settings.spool_dir / "receive-times.sqlite",
                                  int(settings.receive_times_retention_s * 1000))
        self.writer = InfluxWriter(settings.influx)
        self.rollup = Rollup(settings.rollup_grace_s)
        self.backpressure = Backpressure(lambda: self.session.client)
        self.pending = Pending()
        self.devices = DeviceIndex(sessions)
        self.seen = SeenRecorder(sessions, self.metrics, settings.seen_granularity_s,
                                 lambda: self.devices.shortest_hb_s, SeenTimes(self.devices))
        self.dead = DeadLetters(self.pending, self.counts, sessions)
        self.intake = Intake(settings, self.topics, clock, pending=self.pending,
                             devices=self.devices, dead=self.dead, counts=self.counts,
                             seen=self.seen, times=self.times, rollup=self.rollup,
                             backpressure=self.backpressure)
        self.session = MqttSession(
            settings.mqtt.endpoint(), settings.client_id, [(self._filter(settings), 1)],
            on_message=self.intake.on_message, persistent=True, on_up=self._mqtt_up,
            on_down=self._mqtt_down, disconnect_on_stop=False)
        self.flusher = Flusher(settings, pending=self.pending,
                               stamper=Stamper(self.times, self.rollup, clock),
                               writer=self.writer, spool=self.spool, dead=self.dead,
                               counts=self.counts, session=self.session,
                               backpressure=self.backpressure)
        self.rollups = RollupWriter(settings, self.rollup, self.writer, self.dead, self.counts,
                                    clock)
        # dead letters, spool and write latency for the dashboards (Grafana reads InfluxDB)
        self.selfstats = SelfStats(self.metrics.registry, self.writer, settings.client_id,
                                   clock=clock, interval_s=self_stats_s,
                                   before=self.counts.sync)

    def _filter(self, settings: IngestSettings) -> str:
        """The cell's uplink, shared between workers when ``share_group`` is set."""
        uplink = self.topics.uplink_filter()
        return f"$share/{settings.share_group}/{uplink}" if settings.share_group else uplink

    # ------------------------------------------------------------------ the parts' faces
    def on_message(self, msg: Received) -> None:
        self.intake.on_message(msg)

    @property
    def client(self) -> Client | None:
        return self.session.client

    async def refresh_index(self) -> None:
        """Re-read the device index if it changed; then handle the parked messages."""
        await self.devices.load()
        self.intake.unpark()

    def snapshot(self) -> Snapshot:
        c = self.counts
        return Snapshot(
            mqtt_connected=self.session.connected, influx_up=self.flusher.influx_healthy,
            messages=c.messages, points_written=c.points, dead_letters=c.dead,
            duplicates=c.duplicates, devices_seen=self.seen.count(),
            spool_files=len(self.spool), pending=len(self.pending),
            life_safety_events=c.life_safety,
        )

    async def _mqtt_up(self) -> None:
        self.metrics.mqtt_connects.inc()
        self.metrics.mqtt_up.set(1)

    async def _mqtt_down(self) -> None:
        self.metrics.mqtt_up.set(0)

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Run until ``stopping`` is set; then drain in-flight work within a deadline."""
        stopping, s = self.stopping, self.settings
        await self.refresh_index()
        runner = await serve_health(s, self.counts, self.snapshot)
        async with self.writer:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.session.run(stopping), name="mqtt")
                    tg.create_task(self.flusher.run(stopping, self.intake.flush_now,
                                                    self.devices.refresh_due,
                                                    self.refresh_index), name="flusher")
                    tg.create_task(self.flusher.replay(stopping), name="replay")
                    tg.create_task(every(stopping, s.registry_refresh_s, self.refresh_index),
                                   name="registry")
                    tg.create_task(every(stopping, s.seen_flush_s, self.seen.write),
                                   name="seen")
                    tg.create_task(every(stopping, 5.0, self.rollups.write_closed),
                                   name="rollups")
                    tg.create_task(self.selfstats.run(stopping), name="self-stats")
            finally:
                await self._drain()
                self.close()
                if runner is not None:
                    await runner.cleanup()

    async def _drain(self) -> None:
        self.backpressure.pause(True)
        self.metrics.mqtt_up.set(0)
        try:
            await asyncio.wait_for(self._final_flush(), self.settings.drain_timeout_s)
        except TimeoutError:
            log.error("drain deadline passed; unacknowledged messages stay with the broker")
        if self.session.client is not None:
            await self.session.client.disconnect()

    async def _final_flush(self) -> None:
        await self.flusher.flush()
        await self.seen.write()
        await self.rollups.write(everything=True)
        await self.flusher.flush()  # dead letters of rollup lines InfluxDB refused, if any

    def close(self) -> None:
        self.times.close()
