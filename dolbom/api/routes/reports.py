"""Reports for supervisors and admins: response times against the telecare targets, and
the devices whose alarms were false (the ones causing needless dispatches)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import case, func, select

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import Outcome
from dolbom.api.access import Scope
from dolbom.api.deps import CtxDep, ScopeDep, SessionDep
from dolbom.api.errors import Forbidden, NotFound, Unprocessable
from dolbom.api.routes import ERRORS, PREFIX
from dolbom.api.schemas import FalseAlarmRow, ResponseReport
from dolbom.registry.models import Alert, Site

router = APIRouter(prefix=PREFIX, tags=["reports"], responses=ERRORS)

TARGET_60S, TARGET_180S = 0.975, 0.99  # DESIGN.md §5: answered within 60 s / 180 s
FIRST_YEAR, LAST_YEAR = 1970, 2099
Month = Annotated[str | None, Query(pattern=r"^(19[7-9]\d|20\d\d)-(0[1-9]|1[0-2])$",
                                    description=f"YYYY-MM (UTC), {FIRST_YEAR}-01 to "
                                                f"{LAST_YEAR}-12; default: this month")]


def _month(value: str | None, now: datetime) -> tuple[str, datetime, datetime]:
    if value is not None and not (len(value) == 7 and value[4] == "-"
                                  and value[:4].isdigit() and value[5:].isdigit()
                                  and FIRST_YEAR <= int(value[:4]) <= LAST_YEAR
                                  and 1 <= int(value[5:]) <= 12):
        raise Unprocessable(f"month must be YYYY-MM between {FIRST_YEAR}-01 and "
                            f"{LAST_YEAR}-12, not {value[:20]!r}")
    start = (datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC) if value
             else datetime(now.year, now.month, 1, tzinfo=UTC))
    end = (start.replace(year=start.year + 1, month=1) if start.month == 12
           else start.replace(month=start.month + 1))
    return f"{start:%Y-%m}", start, end


def _sites(session: SessionDep, scope: Scope, site: str | None) -> list[str]:
    if not (scope.everything or (scope.site_id is not None and not scope.life_safety_only
                                 and scope.home_ids is None)):
        raise Forbidden("reports are for supervisors and admins")
    if site is not None:
        if session.get(Site, site) is None or not scope.allows_site(site):
            raise NotFound(f"site {site!r} does not exist")
        return [site]
    if scope.everything:
        return list(session.scalars(select(Site.id).order_by(Site.id)))
    assert scope.site_id is not None
    return [scope.site_id]


@router.get("/reports/response-times", response_model=list[ResponseReport])
def response_times(session: SessionDep, scope: ScopeDep, ctx: CtxDep,
                   site: str | None = None, month: Month = None,
                   priority: Literal["high", "medium", "low"] = "high") -> list[ResponseReport]:
    """Time to acknowledge and to resolve per site for one month, against the targets
    (97.5 % acknowledged within 60 s, 99 % within 180 s)."""
    label, start, end = _month(month, ctx.clock())
    out = []
    for site_id in _sites(session, scope, site):
        st = lc.response_stats(session, site=site_id, since=start, until=end, priority=priority)
        out.append(ResponseReport(
            site_id=site_id, month=label, priority=priority, alerts=st.alerts,
            acknowledged=st.acknowledged, tta_p50_s=st.tta_p50_s, tta_p975_s=st.tta_p975_s,
            tta_p99_s=st.tta_p99_s, within_60s=st.within_60s, within_180s=st.within_180s,
            meets_60s_target=None if st.within_60s is None else st.within_60s >= TARGET_60S,
            meets_180s_target=None if st.within_180s is None else st.within_180s >= TARGET_180S,
            resolved=st.resolved, ttr_p50_s=st.ttr_p50_s, ttr_p99_s=st.ttr_p99_s))
    return out


@router.get("/reports/false-alarms", response_model=list[FalseAlarmRow])
def false_alarms(session: SessionDep, scope: ScopeDep, ctx: CtxDep, site: str | None = None,
                 month: Month = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[FalseAlarmRow]:
    """Devices whose alerts were resolved as false alarms, most first."""
    _, start, end = _month(month, ctx.clock())
    sites = _sites(session, scope, site)
    false_n = func.sum(case((Alert.outcome == Outcome.FALSE_ALARM.value, 1), else_=0))
    rows = session.execute(
        select(Alert.device_id, Alert.site_id, func.max(Alert.home_id), false_n,
               func.count(Alert.id))
        .where(Alert.device_id.is_not(None), Alert.site_id.in_(sites),
               Alert.raised_at >= start, Alert.raised_at < end)
        .group_by(Alert.device_id, Alert.site_id)
        .having(false_n > 0)
        .order_by(false_n.desc(), Alert.device_id)
        .limit(limit)
    ).all()
    return [FalseAlarmRow(device_id=str(d), site_id=s, home_id=h, false_alarms=int(f),
                          alerts=int(n)) for d, s, h, f, n in rows]
