"""Settings of the alerts service (every option is in dolbom.example.env).

The service's own options are ``DOLBOM_ALERTS__*``; the broker, InfluxDB and the
notification channels are the shared ``DOLBOM_MQTT__*``, ``DOLBOM_INFLUX__*`` and
``DOLBOM_NOTIFY__*``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from dolbom.alerts.model import Escalation, EscalationTable, Priority
from dolbom.alerts.notify.settings import NotifySettings
from dolbom.registry.models import CELL_PATTERN, DEFAULT_CELL
from dolbom.settings import BaseServiceSettings, InfluxSettings


class AlertOptions(BaseModel):
    # Two MQTT sessions: a persistent QoS 1 session for life-safety events only, so a
    # telemetry backlog can never push an alarm out of the broker's queue, and a
    # QoS 0 stream for everything the welfare and technical rules need.
    alarm_client_id: str = "dolbom-alerts-alarm"
    # The cell (a broker and its sites, DESIGN.md §2) this service serves. On PostgreSQL
    # two services of one cell (two machines) elect one active through the database
    # (dolbom/alerts/leader.py: leases "rules:<cell>" and "alarm:<cell>"); the other
    # stands by and takes over when the active dies.
    cell: str = Field(DEFAULT_CELL, pattern=CELL_PATTERN)
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
    # Where the life-safety path (alarm session, life-safety notices, their re-notices and
    # escalations) runs (docs/alerts.md, dolbom/alerts/alarm/):
    #   external  its own command, `dolbom alerts alarms`, supervised by the deployment
    #             (systemd): the rules process neither starts it nor handles alarms
    #   spawn     started and restarted by `dolbom alerts run` (quick start, one command),
    #             in a session of its own so it outlives a rules process killed or stopped
    #   inline    everything in one process (tests with an injected clock)
    # (true and false, the older values, mean spawn and inline.)
    alarm_process: Literal["external", "spawn", "inline"] = "spawn"
    alarm_metrics_port: int = Field(9110, ge=0, le=65535)  # the alarm process's endpoint
    # One alarm process per broker session and database: it holds this file locked (and
    # its PID in it). Unset: a file in the temporary directory named for them.
    alarm_lock_file: Path | None = None
    # Unacknowledged alerts (DESIGN.md §5): high priority is told again after
    # high_renotify_s and escalated to the next tier after high_escalate_s; medium is
    # escalated after medium_escalate_s. Seconds since the alert was raised.
    high_renotify_s: float = Field(60.0, gt=0)
    high_escalate_s: float = Field(180.0, gt=0)
    medium_escalate_s: float = Field(1800.0, gt=0)

    @field_validator("alarm_process", mode="before")
    @classmethod
    def _alarm_process(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"true": True, "1": True, "yes": True, "on": True, "false": False,
                 "0": False, "no": False, "off": False}.get(v.strip().lower(), v.strip())
        if isinstance(v, bool):
            return "spawn" if v else "inline"
        return v

    @model_validator(mode="after")
    def _escalation_order(self) -> AlertOptions:
        if self.high_escalate_s <= self.high_renotify_s:
            raise ValueError(f"high_escalate_s ({self.high_escalate_s:g}) must be later than "
                             f"high_renotify_s ({self.high_renotify_s:g})")
        return self

    def escalation_table(self) -> EscalationTable:
        return EscalationTable({
            Priority.HIGH: (Escalation(self.high_renotify_s, "renotify"),
                            Escalation(self.high_escalate_s, "escalate")),
            Priority.MEDIUM: (Escalation(self.medium_escalate_s, "escalate"),),
            Priority.LOW: (),
        })


class AlertsSettings(BaseServiceSettings):
    influx: InfluxSettings = InfluxSettings()
    notify: NotifySettings = NotifySettings()
    alerts: AlertOptions = AlertOptions()
