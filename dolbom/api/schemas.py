"""Request and response bodies of the HTTP API (the OpenAPI schema is built from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dolbom.registry.models import CELL_PATTERN, DEFAULT_CELL, ID_LEN

IdStr = Field(min_length=1, max_length=ID_LEN, pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")


class Problem(BaseModel):
    """Every error: what was wrong."""

    detail: str | list[Any]


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - OAuth2 token type
    expires_in: int


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(None, max_length=4096)


class PasswordChangeIn(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: str
    site_id: str | None
    active: bool


class SiteIn(BaseModel):
    id: str = IdStr
    name: str = Field(min_length=1, max_length=200)
    cell: str = Field(DEFAULT_CELL, pattern=CELL_PATTERN,
                      description="the cell that serves the site (docs/scale.md)")


class SiteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    cell: str


class HomeIn(BaseModel):
    id: str = IdStr
    site_id: str = IdStr
    label: str = Field("", max_length=64)


class HomeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    site_id: str
    label: str
    mode: str
    mode_reason: str | None
    mode_since: datetime | None


class HomeModeIn(BaseModel):
    mode: Literal["normal", "away", "hospital"]
    reason: str = Field("", max_length=200)


class ResidentIn(BaseModel):
    home_id: str = IdStr
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=32)
    address: str | None = Field(None, max_length=1000)
    birth_year: int | None = Field(None, ge=1900, le=2100)
    wandering: bool = False


class ResidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    home_id: str
    name: str
    phone: str | None
    address: str | None
    birth_year: int | None
    wandering: bool


class ResidentDetail(ResidentOut):
    site_id: str
    settings: dict[str, Any]
    care_workers: list[str]


class SettingIn(BaseModel):
    value: float | str


class DeviceIn(BaseModel):
    id: str = IdStr
    site_id: str = IdStr
    home_id: str | None = Field(None, min_length=1, max_length=ID_LEN)
    kind: str = Field(min_length=1, max_length=32)
    power: Literal["mains", "battery"] = "mains"
    hb_s: int = Field(60, ge=5, le=86_400)


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    site_id: str
    home_id: str | None
    kind: str
    power: str
    hb_s: int
    created_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None
    last_state: str | None
    fw: str | None


class ProvisionedDevice(BaseModel):
    device: DeviceOut
    mqtt_username: str
    mqtt_password: str = Field(description="shown once: store it in the device now")
    broker_updated: bool
    warning: str | None = None


class RevokedDevice(BaseModel):
    device: DeviceOut
    broker_updated: bool
    warning: str | None = None


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    site_id: str
    home_id: str | None
    device_id: str | None
    rule: str
    klass: str
    priority: str
    status: str
    count: int
    tier: int
    raised_at: datetime
    updated_at: datetime
    event_ts: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    outcome: str | None
    assignee: str | None = None


class TimelineEntry(BaseModel):
    id: int
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any]


class RespondTo(BaseModel):
    """Who lives at the alert's home and how to reach them (to respond)."""

    resident_id: int
    name: str
    address: str | None
    phone: str | None


class AlertDetail(AlertOut):
    timeline: list[TimelineEntry]
    respond_to: list[RespondTo]


class AssignIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class ResolveIn(BaseModel):
    outcome: Literal["false_alarm", "visited_ok", "needs_care", "emergency_dispatched",
                     "hospitalised", "deceased"]
    note: str | None = Field(None, max_length=2000)


class ActivityEvent(BaseModel):
    at: datetime
    device: str
    type: str
    val: str | None


class DeviceSeen(BaseModel):
    device: str
    kind: str
    last_seen_at: datetime | None = Field(description="last message (registry, from ingest)")
    last_state: str | None
    last_event_at: datetime | None = Field(description="last event stored in InfluxDB")


class ReadingPoint(BaseModel):
    at: datetime
    value: float


class ReadingSeries(BaseModel):
    device: str
    points: list[ReadingPoint]


class Readings(BaseModel):
    field: str
    interval: str
    since: datetime
    until: datetime
    series: list[ReadingSeries]


class ResponseReport(BaseModel):
    site_id: str
    month: str
    priority: str
    alerts: int
    acknowledged: int
    tta_p50_s: float | None
    tta_p975_s: float | None
    tta_p99_s: float | None
    within_60s: float | None = Field(description="acknowledged within 60 s (target 0.975)")
    within_180s: float | None = Field(description="acknowledged within 180 s (target 0.99)")
    meets_60s_target: bool | None
    meets_180s_target: bool | None
    resolved: int
    ttr_p50_s: float | None
    ttr_p99_s: float | None


class FalseAlarmRow(BaseModel):
    device_id: str
    site_id: str
    home_id: str | None
    false_alarms: int
    alerts: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    # The settings' InfluxDB and every cell's (the registry's ``cells`` table) answered.
    influxdb: bool
    sse_subscribers: int
    # Per cell with a row: its InfluxDB answered. None when the registry did not answer
    # (so the cells are unknown); {} when no cell has a row.
    influxdb_cells: dict[str, bool] | None = None
