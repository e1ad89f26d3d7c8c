"""Alerts: list and filter, show with the timeline, acknowledge, assign, note, resolve,
and the live stream (Server-Sent Events).

Every transition is ``dolbom.alerts.lifecycle``'s (one implementation for the alerts
service, the CLI and this API); this module only decides who may call it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import Outcome, Status
from dolbom.api import access
from dolbom.api.access import Scope
from dolbom.api.auth import AuthError, decode_access, user_for_claims
from dolbom.api.deps import (
    ApiContext,
    AuditDep,
    CtxDep,
    ScopeDep,
    SessionDep,
    UserDep,
    access_token,
)
from dolbom.api.errors import Unprocessable
from dolbom.api.events import AlertChange
from dolbom.api.routes import ERRORS, PREFIX, AlertId
from dolbom.api.schemas import (
    AlertDetail,
    AlertOut,
    AssignIn,
    NoteIn,
    ResolveIn,
    RespondTo,
    TimelineEntry,
)
from dolbom.registry.models import Alert, User, UserRole

router = APIRouter(prefix=PREFIX, tags=["alerts"], responses=ERRORS)

HEARTBEAT_S = 15.0  # an SSE comment this often keeps proxies from closing the stream
SCOPE_REFRESH_S = 5.0  # a stream re-checks the person and their scope this often
MAX_EVENT_ID = 9_223_372_036_854_775_807  # BIGINT

StatusQ = Literal["open", "acknowledged", "resolved"]
PriorityQ = Literal["high", "medium", "low"]


def _usernames(session: Session, ids: Sequence[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}


def _out(alert: Alert, names: dict[int, str]) -> AlertOut:
    out = AlertOut.model_validate(alert)
    out.assignee = names.get(alert.assignee_id) if alert.assignee_id is not None else None
    return out


def _one(session: Session, alert: Alert) -> AlertOut:
    return _out(alert, _usernames(session, [alert.assignee_id]))


def _residents(session: Session, alert: Alert) -> list[int]:
    return [r.id for r in access.residents_of_home(session, alert.home_id)]


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(session: SessionDep, scope: ScopeDep,
                status: Annotated[list[StatusQ] | None, Query()] = None,
                priority: PriorityQ | None = None, site: str | None = None,
                worker: Annotated[str | None, Query(description="assignee's username")] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AlertOut]:
    """Alerts you may see, newest first (default: open and acknowledged)."""
    alerts = access.visible_alerts(
        session, scope, status=status or [Status.OPEN.value, Status.ACKNOWLEDGED.value],
        priority=priority, site=site, worker=worker, limit=limit)
    names = _usernames(session, [a.assignee_id for a in alerts])
    return [_out(a, names) for a in alerts]


def _format(change: AlertChange) -> str:
    return (f"id: {change.event_id}\nevent: alert\n"
            f"data: {json.dumps(change.to_json(), separators=(',', ':'))}\n\n")


def _refresh(ctx: ApiContext, claims: dict[str, Any]) -> Scope | None:
    """The person's current scope, or None if the account was deactivated or its tokens
    revoked (password change) since the stream opened."""
    with ctx.sessions() as session:
        try:
            user = user_for_claims(session, claims)
        except AuthError:
            return None
        return access.scope_for(session, user)


@router.get("/alerts/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "alert changes, as Server-Sent Events"}})
async def alert_stream(
        request: Request, ctx: CtxDep, user: UserDep, scope: ScopeDep,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID,
                                           description="resume after this event id")]
        = None) -> StreamingResponse:
    """Alert changes you may see, live. Each event's ``id`` is the journal id: a client
    that reconnects with ``Last-Event-ID`` gets what it missed.

    The token is checked when the stream opens; while it runs, the account is re-checked
    every few seconds: a deactivation or password change ends the stream, and assignment
    changes apply to what it carries. The stream also ends when the token expires: the
    client reconnects with a fresh one (``Last-Event-ID`` loses nothing)."""
    resume = after
    if last_event_id is not None and last_event_id.strip().isdigit() \
            and len(last_event_id.strip()) <= 18:  # within the journal's BIGINT ids
        resume = int(last_event_id.strip())
    token = access_token(request)
    assert token is not None  # current_user accepted it
    claims = decode_access(token, ctx.settings, ctx.clock())
    current: list[Scope] = [scope]
    sub = ctx.bus.subscribe(lambda: current[0], last_event_id=resume)

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            next_check = time.monotonic() + SCOPE_REFRESH_S
            told_reset = False
            while True:
                change: AlertChange | None = None
                try:
                    change = await asyncio.wait_for(
                        anext(sub), min(HEARTBEAT_S, SCOPE_REFRESH_S))
                except TimeoutError:
                    pass
                except StopAsyncIteration:
                    return
                if time.monotonic() >= next_check:
                    if ctx.clock().timestamp() >= claims["exp"]:
                        return  # an expired token carries nothing more
                    fresh = await asyncio.to_thread(_refresh, ctx, claims)
                    if fresh is None:
                        return
                    current[0] = fresh
                    next_check = time.monotonic() + SCOPE_REFRESH_S
                if sub.truncated and not told_reset:
                    told_reset = True  # more was missed than is replayed: reload the list
                    yield "event: reset\ndata: {}\n\n"
                if change is None:
                    yield ": keepalive\n\n"
                elif change.visible_to(current[0]):
                    yield _format(change)
        finally:
            await sub.aclose()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
def get_alert(alert_id: AlertId, session: SessionDep, scope: ScopeDep,
              audit: AuditDep) -> AlertDetail:
    """The alert, its full timeline, and who lives there with how to reach them
    (responders get the latter only while the alert is not resolved; a care worker only
    the residents assigned to them, never a housemate)."""
    alert = access.require_alert(session, scope, alert_id)
    events = lc.timeline(session, alert.id)
    respond: list[RespondTo] = []
    if not (scope.role is UserRole.RESPONDER and alert.status == Status.RESOLVED):
        respond = [RespondTo(resident_id=r.id, name=r.name, address=r.address, phone=r.phone)
                   for r in access.people_of_home(session, scope, alert.home_id)]
    audit("alert.read", [r.resident_id for r in respond], f"alert={alert.id}")
    return AlertDetail(
        **_one(session, alert).model_dump(),
        timeline=[TimelineEntry(id=e.id, at=e.at, kind=e.kind, actor=e.actor,
                                detail=dict(e.detail or {})) for e in events],
        respond_to=respond)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut)
def acknowledge(alert_id: AlertId, session: SessionDep, scope: ScopeDep, user: UserDep,
                ctx: CtxDep, audit: AuditDep) -> AlertOut:
    """I am taking this alert: escalation stops. Idempotent."""
    alert = access.require_alert(session, scope, alert_id)
    lc.acknowledge(session, alert.id, user, ctx.clock())
    audit("alert.ack", _residents(session, alert), f"alert={alert.id}")
    return _one(session, alert)


@router.post("/alerts/{alert_id}/assign", response_model=AlertOut)
def assign(alert_id: AlertId, body: AssignIn, session: SessionDep, scope: ScopeDep, user: UserDep,
           ctx: CtxDep, audit: AuditDep) -> AlertOut:
    """Hand the alert to a person who may see it."""
    alert = access.require_alert(session, scope, alert_id)
    assignee = session.scalar(select(User).where(User.username == body.username))
    if assignee is None or not assignee.active or not access.may_see_alert(session, assignee,
                                                                           alert):
        raise Unprocessable(f"{body.username!r} is not an active person who may see "
                            f"alert {alert.id}")
    lc.assign(session, alert.id, assignee, user, ctx.clock())
    audit("alert.assign", _residents(session, alert), f"alert={alert.id} to={assignee.username}")
    return _one(session, alert)


@router.post("/alerts/{alert_id}/notes", response_model=AlertOut)
def add_note(alert_id: AlertId, body: NoteIn, session: SessionDep, scope: ScopeDep, user: UserDep,
             ctx: CtxDep, audit: AuditDep) -> AlertOut:
    alert = access.require_alert(session, scope, alert_id)
    lc.add_note(session, alert.id, body.text, user, ctx.clock())
    audit("alert.note", _residents(session, alert), f"alert={alert.id}")
    return _one(session, alert)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut)
def resolve(alert_id: AlertId, body: ResolveIn, session: SessionDep, scope: ScopeDep,
            user: UserDep, ctx: CtxDep, audit: AuditDep) -> AlertOut:
    """Close the alert with what happened (and optionally a note)."""
    alert = access.require_alert(session, scope, alert_id)
    lc.resolve(session, alert.id, Outcome(body.outcome), user, ctx.clock(), note=body.note)
    audit("alert.resolve", _residents(session, alert), f"alert={alert.id} outcome={body.outcome}")
    return _one(session, alert)
