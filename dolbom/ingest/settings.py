"""Settings of the ingest service (every option is in dolbom.example.env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dolbom.settings import BaseServiceSettings, InfluxSettings


class IngestSettings(BaseServiceSettings):
    influx: InfluxSettings = InfluxSettings()
    client_id: str = "dolbom-ingest"
    # Several workers of one cell share its stream (docs/scale.md): each subscribes on
    # $share/<share_group>/ with its own client_id (and spool_dir), and each message goes
    # to one of them. Their sessions are persistent, so a dead worker's share waits in
    # the broker until it returns under the same client_id. Unset: one worker takes all.
    share_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    # Points per InfluxDB write, and the longest a point waits for its batch.
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    # Messages received but not yet durable; past this, reading from the broker
    # pauses (backpressure) instead of growing memory.
    max_pending: int = Field(50_000, ge=100)
    spool_dir: Path = Path("spool")
    # Telemetry spooled while InfluxDB is down is capped (oldest dropped first,
    # counted); events are never dropped.
    spool_max_telemetry_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    # After this many consecutive failed attempts a batch goes to the spool.
    retries_before_spool: int = Field(2, ge=0)
    registry_refresh_s: float = Field(60.0, gt=0)
    # 1-minute rollups per home (DESIGN.md §4) are written this long after each minute
    # ends (readings arriving later are in raw only), into InfluxDB's `rollup` policy;
    # while InfluxDB is down up to rollup_max_pending points wait in memory.
    rollup_grace_s: float = Field(30.0, ge=0, le=600)
    rollup_rp: str = "rollup"
    rollup_max_pending: int = Field(2_000_000, ge=1000)
    # Devices' last-seen times are written to the registry this often. The alerts service
    # reads them after a restart, so keep it well under 3 × the shortest heartbeat (60 s):
    # a value that stale must not look like a lost device.
    seen_flush_s: float = Field(30.0, gt=0, le=60)
    # A device heard continuously is rewritten only once its stored time is this much
    # older than its newest message (a new status and a first message: at once). The
    # stored time then lags by less than this, which stays free of false device_lost at
    # an alerts restart while it is under (lost_factor − 2) × the shortest heartbeat
    # interval (60 s by default; docs/ingest.md "Last seen").
    seen_granularity_s: float = Field(45.0, ge=0, le=3600)
    # A point's time (DESIGN.md §3): the device's when NTP-synced, at most 5 s ahead of ours
    # and no older than raw_retention_s (InfluxDB's `raw` policy, DESIGN.md §4); otherwise
    # the receive time of the message's first delivery, kept in
    # <spool_dir>/receive-times.sqlite for receive_times_retention_s, so that a re-send
    # within that time overwrites its own point instead of adding one.
    raw_retention_s: float = Field(90 * 86_400.0, gt=0)
    receive_times_retention_s: float = Field(7 * 86_400.0, ge=60)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)  # 0: no metrics endpoint
    drain_timeout_s: float = Field(10.0, gt=0)
