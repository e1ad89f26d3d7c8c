"""Prometheus metrics of the ingest service (counts and latencies are metrics, not logs)."""

from __future__ import annotations

import collections
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dolbom.protocol import Kind


class IngestMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter("dolbom_ingest_messages_total", "Messages received, by kind",
                                ["kind"], registry=r)
        self.points = Counter("dolbom_ingest_points_written_total",
                              "Points accepted by InfluxDB", registry=r)
        self.dead_letters = Counter("dolbom_ingest_dead_letters_total",
                                    "Messages or points dead-lettered, by reason", ["reason"],
                                    registry=r)
        self.duplicates = Counter("dolbom_ingest_duplicates_total",
                                  "Messages already stored, by (dev, boot, seq)", registry=r)
        self.spooled = Counter("dolbom_ingest_spooled_points_total",
                               "Points written to the disk spool", registry=r)
        self.replayed = Counter("dolbom_ingest_replayed_points_total",
                                "Spooled points written to InfluxDB after recovery", registry=r)
        self.spool_dropped = Counter("dolbom_ingest_spool_dropped_points_total",
                                     "Telemetry points dropped because the spool was full",
                                     registry=r)
        self.rollup_points = Counter("dolbom_ingest_rollup_points_total",
                                     "1-minute per-home rollup points written", registry=r)
        self.rollup_late = Counter(
            "dolbom_ingest_rollup_late_readings_total",
            "Readings for a minute whose rollup was already written (in raw only)", registry=r)
        self.rollup_dropped = Counter(
            "dolbom_ingest_rollup_dropped_points_total",
            "Rollup points dropped: InfluxDB was down longer than they are kept", registry=r)
        self.write_errors = Counter("dolbom_ingest_write_errors_total",
                                    "InfluxDB writes that must be retried", registry=r)
        self.mqtt_connects = Counter("dolbom_ingest_mqtt_connects_total",
                                     "Successful MQTT (re)connections", registry=r)
        self.pending = Gauge("dolbom_ingest_pending_messages",
                             "Messages received and not yet durable", registry=r)
        self.spool_files = Gauge("dolbom_ingest_spool_files", "Batches waiting in the spool",
                                 registry=r)
        self.devices_online = Gauge("dolbom_ingest_devices_seen",
                                    "Devices heard from since start", registry=r)
        self.influx_up = Gauge("dolbom_ingest_influx_up", "1 if the last write succeeded",
                               registry=r)
        self.mqtt_up = Gauge("dolbom_ingest_mqtt_up", "1 while connected to the broker",
                             registry=r)
        self.flush_seconds = Histogram("dolbom_ingest_flush_seconds",
                                       "Time to make one batch durable", registry=r)


class Counts:
    """Plain counts kept by the hot path and for the snapshot, copied into the Prometheus
    counters at each flush and scrape (``sync``): a labelled counter per message costs
    more than decoding it."""

    def __init__(self, metrics: IngestMetrics) -> None:
        self.metrics = metrics
        self.messages = self.points = self.dead = self.duplicates = self.life_safety = 0
        self.kinds: collections.Counter[Kind] = collections.Counter()
        self.dead_reasons: collections.Counter[str] = collections.Counter()
        self._reported: dict[str, float] = {}

    def dead_letter(self, reason: str) -> None:
        self.dead += 1
        self.dead_reasons[reason] += 1

    def sync(self) -> None:
        """Copy the hot path's plain counters into the Prometheus counters."""
        m = self.metrics
        for kind, n in self.kinds.items():
            self.report(m.messages.labels(kind.value), f"k:{kind}", n)
        for reason, n in self.dead_reasons.items():
            self.report(m.dead_letters.labels(reason), f"d:{reason}", n)
        self.report(m.duplicates, "dup", self.duplicates)

    def report(self, counter: Any, key: str, total: float) -> None:
        """Raise ``counter`` to ``total`` (what was reported under ``key`` so far)."""
        delta = total - self._reported.get(key, 0)
        if delta:
            counter.inc(delta)
            self._reported[key] = total
