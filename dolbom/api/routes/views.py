"""What a resident's day looks like: activity, last seen per device, readings (InfluxDB:
the home's cell's, ``ApiContext.influx_for``).

Queries are constant InfluxQL with bound parameters (``dolbom.influx.query``); the field
and the interval come from allow-lists, checked by the schema (enums) before any query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Query
from sqlalchemy import select

from dolbom.api import access
from dolbom.api.deps import AuditDep, CtxDep, ScopeDep, SessionDep
from dolbom.api.errors import Unavailable, Unprocessable
from dolbom.api.routes import ERRORS, PREFIX, ResidentId
from dolbom.api.schemas import ActivityEvent, DeviceSeen, ReadingPoint, Readings, ReadingSeries
from dolbom.influx.query import INTERVALS, MAX_EVENTS, READING_FIELDS, InfluxUnavailable
from dolbom.registry.models import Device

router = APIRouter(prefix=PREFIX, tags=["resident views"], responses=ERRORS)

ReadingField = Literal["battery_pct", "breath_rate_bpm", "heart_rate_bpm", "humidity_pct",
                       "illuminance_lux", "power_w", "rssi_dbm", "temperature_c"]
Interval = Literal["1m", "5m", "15m", "1h", "1d"]
# The schema's enums are the allow-lists themselves (DESIGN.md §3 readings).
if set(get_args(ReadingField)) != set(READING_FIELDS) or set(get_args(Interval)) != set(INTERVALS):
    raise ImportError("dolbom.api.routes.views: allow-lists out of date with dolbom.influx.query")


def _ms(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, UTC)


EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _utc(t: datetime) -> datetime:
    try:
        return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+14:00
        raise Unprocessable("times must be between 1970 and 2100") from None


def _range(now: datetime, since: datetime | None, until: datetime | None,
           default: timedelta) -> tuple[datetime, datetime]:
    end = _utc(until or now)
    if not EARLIEST <= end <= LATEST or (since is not None and _utc(since) < EARLIEST):
        raise Unprocessable("times must be between 1970 and 2100")
    start = _utc(since) if since is not None else end - default
    if start >= end:
        raise Unprocessable("since must be before until")
    return start, end


@router.get("/residents/{resident_id}/activity", response_model=list[ActivityEvent])
def activity(resident_id: ResidentId, session: SessionDep, scope: ScopeDep, ctx: CtxDep,
             audit: AuditDep, since: datetime | None = None, until: datetime | None = None,
             limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 200) -> list[ActivityEvent]:
    """Events in the resident's home (newest first), default the last 24 h."""
    r = access.require_resident(session, scope, resident_id)
    since, until = _range(ctx.clock(), since, until, timedelta(hours=24))
    try:
        rows = ctx.influx_for(session, r.home_id).activity(r.home_id, since, until, limit)
    except InfluxUnavailable as e:
        raise Unavailable(str(e)) from None
    audit("resident.activity", r.id)
    return [ActivityEvent(at=_ms(row.time_ms), device=str(row.values.get("device") or ""),
                          type=str(row.values.get("type") or ""),
                          val=None if row.values.get("val") is None else str(row.values["val"]))
            for row in rows]


@router.get("/residents/{resident_id}/last-seen", response_model=list[DeviceSeen])
def last_seen(resident_id: ResidentId, session: SessionDep, scope: ScopeDep, ctx: CtxDep,
              audit: AuditDep) -> list[DeviceSeen]:
    """Each device of the resident's home: last message (registry) and last event (InfluxDB)."""
    r = access.require_resident(session, scope, resident_id)
    devices = list(session.scalars(select(Device).where(Device.home_id == r.home_id,
                                                        Device.revoked_at.is_(None))
                                   .order_by(Device.id)))
    try:
        last_event = ctx.influx_for(session, r.home_id).last_event_per_device(r.home_id)
    except InfluxUnavailable as e:
        raise Unavailable(str(e)) from None
    audit("resident.last_seen", r.id)
    return [DeviceSeen(device=d.id, kind=d.kind, last_seen_at=d.last_seen_at,
                       last_state=d.last_state,
                       last_event_at=_ms(last_event[d.id]) if d.id in last_event else None)
            for d in devices]


@router.get("/residents/{resident_id}/readings", response_model=Readings)
def readings(resident_id: ResidentId, field: ReadingField, session: SessionDep,
             scope: ScopeDep, ctx: CtxDep, audit: AuditDep, interval: Interval = "1h",
             since: datetime | None = None, until: datetime | None = None) -> Readings:
    """Mean of one reading per interval and device, default the last 24 h."""
    r = access.require_resident(session, scope, resident_id)
    since, until = _range(ctx.clock(), since, until, timedelta(hours=24))
    iv = str(interval)
    if (until - since).total_seconds() > INTERVALS[iv]:
        raise Unprocessable(f"interval {iv} covers at most {INTERVALS[iv] // 86_400} days")
    try:
        rows = ctx.influx_for(session, r.home_id).readings(r.home_id, str(field), iv, since,
                                                           until)
    except InfluxUnavailable as e:
        raise Unavailable(str(e)) from None
    series: dict[str, list[ReadingPoint]] = {}
    for row in rows:
        v = row.values.get("v")
        if isinstance(v, int | float):
            series.setdefault(row.tags.get("device", ""), []).append(
                ReadingPoint(at=_ms(row.time_ms), value=float(v)))
    audit("resident.readings", r.id, f"field={field}")
    return Readings(field=str(field), interval=iv, since=since, until=until,
                    series=[ReadingSeries(device=d, points=p) for d, p in sorted(series.items())])
