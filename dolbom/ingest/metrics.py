"""Prometheus metrics of the ingest service (counts and latencies are metrics, not logs)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
