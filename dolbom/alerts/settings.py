"""Settings of the alerts service (every option is in dolbom.example.env).

The service's own options are ``DOLBOM_ALERTS__*``; the broker, InfluxDB and the
notification channels are the shared ``DOLBOM_MQTT__*``, ``DOLBOM_INFLUX__*`` and
``DOLBOM_NOTIFY__*``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from dolbom.alerts.notify.settings import NotifySettings
from dolbom.settings import BaseServiceSettings, InfluxSettings


class AlertOptions(BaseModel):
    # Two MQTT sessions: a persistent QoS 1 session for life-safety events only, so a
    # telemetry backlog can never push an alarm out of the broker's queue, and a
    # QoS 0 stream for everything the welfare and technical rules need.
    alarm_client_id: str = "dolbom-alerts-alarm"
    stream_client_id: str = "dolbom-alerts-stream"
    tick_s: float = Field(1.0, gt=0, le=60)  # how often timers (deadlines) are checked
    state_flush_s: float = Field(10.0, gt=0)  # rule state written to the database
    outbox_poll_s: float = Field(1.0, gt=0)
    retry_initial_s: float = Field(2.0, gt=0)  # notification retry backoff
    retry_max_s: float = Field(60.0, gt=0)
    # A recipient's next contact is tried after this many failed attempts on one;
    # a channel failing this long raises a technical alert.
    fallback_after_attempts: int = Field(3, ge=1)
    channel_down_after_s: float = Field(60.0, gt=0)
    export_s: float = Field(5.0, gt=0)  # alert transitions → InfluxDB `alert` measurement
    console_url: str | None = None  # e.g. https://care.example.org/alerts (links in notices)
    # The broker or InfluxDB unreachable this long raises a technical alert per site.
    dependency_down_after_s: float = Field(60.0, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9109, ge=0, le=65535)  # 0: no /metrics and /health endpoint
    # The alarm session and life-safety notices in a process of their own (see
    # dolbom/alerts/alarms.py), so no rule work can run ahead of an alarm; false runs
    # everything in one process (small sites, tests with an injected clock).
    alarm_process: bool = True
    alarm_metrics_port: int = Field(9110, ge=0, le=65535)  # the alarm process's endpoint


class AlertsSettings(BaseServiceSettings):
    influx: InfluxSettings = InfluxSettings()
    notify: NotifySettings = NotifySettings()
    alerts: AlertOptions = AlertOptions()
