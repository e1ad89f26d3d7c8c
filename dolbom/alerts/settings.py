"""Settings of the alerts service (every option is in dolbom.example.env)."""

from __future__ import annotations

from dolbom.alerts.notify.settings import NotifySettings
from pydantic import Field

from dolbom.settings import BaseServiceSettings, InfluxSettings


class AlertsSettings(BaseServiceSettings):
    influx: InfluxSettings = InfluxSettings()
    notify: NotifySettings = NotifySettings()
    # Two MQTT sessions (DESIGN.md §3, ISSUE: a telemetry backlog must never push an
    # alarm out of the broker's queue): a persistent QoS 1 session for life-safety
    # events only, and a QoS 0 stream for everything the welfare/technical rules need.
    alarm_client_id: str = "dolbom-alerts-alarm"
    stream_client_id: str = "dolbom-alerts-stream"
    tick_s: float = Field(1.0, gt=0, le=60)  # how often timers (deadlines) are checked
    state_flush_s: float = Field(10.0, gt=0)  # rule state written to the database
    outbox_poll_s: float = Field(1.0, gt=0)
    retry_initial_s: float = Field(2.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)
    # A recipient's next channel is tried after this many failed attempts on one;
    # a channel failing this long raises a technical alert.
    fallback_after_attempts: int = Field(3, ge=1)
    channel_down_after_s: float = Field(60.0, gt=0)
    export_s: float = Field(5.0, gt=0)  # alert transitions → InfluxDB `alert` measurement
    console_url: str | None = None  # e.g. https://care.example.org/alerts/ (links in notices)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9109, ge=0, le=65535)
