"""The console's pages and form actions (server-rendered; see docs/console.md).

GET  /console/login             sign-in form            POST /console/login    sign in
POST /console/logout            sign out                POST /console/locale   한국어 / English
GET  /console/board             "my residents": one tile per resident, worst first
GET  /console/alerts            the inbox (live via /api/v1/alerts/stream)
GET  /console/watch             today's watch list: weak signals that were not pushed
GET  /console/alerts/{id}       one alert with its timeline
GET  /console/alerts/{id}/row   one inbox row (the live inbox fetches it on a change)
POST /console/alerts/{id}/ack | resolve | note
GET  /console/residents/{id}    activity today and over 7 days, temperature, devices
                                (readings from the InfluxDB of the home's cell)
POST /console/session/refresh   the browser's scripts renew the access cookie

Alert changes are ``dolbom.alerts.lifecycle``'s; who may see what is
``dolbom.api.access``'s (anything outside a person's scope is 404); every page that
shows or changes resident data writes an audit entry (``dolbom.api.audit``) in the
request's own transaction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from dolbom.alerts import lifecycle
from dolbom.alerts.errors import AlertError
from dolbom.alerts.model import Outcome
from dolbom.api import auth
from dolbom.api.access import require_alert, require_resident, visible_alerts, visible_residents
from dolbom.api.console import csrf, data, tiles, views
from dolbom.api.console.i18n import LOCALES, pick_locale
from dolbom.api.console.pages import (
    LANG_COOKIE,
    PREFIX,
    REFRESH_COOKIE,
    Page,
    clear_auth_cookies,
    safe_next,
    set_auth_cookies,
)
from dolbom.api.deps import ACCESS_COOKIE, SessionDep, client_ip, cookie_secure
from dolbom.api.errors import NotFound
from dolbom.registry.models import Alert, Device, Home, Locale

router = APIRouter(prefix=PREFIX, include_in_schema=False)

OPEN = ("open", "acknowledged")
INBOX_LIMIT = 200
RECENT_LIMIT = 15
FormStr = Annotated[str, Form()]
CsrfField = Annotated[str, Form(alias=csrf.FIELD)]
NextField = Annotated[str, Form(alias="next")]


def _ids(what: str, ids: list[int]) -> str:
    return f"{what} {','.join(map(str, ids))}" if ids else f"no {what}"


def _open_count(page: Page) -> int:
    return len(visible_alerts(page.session, page.scope, status=OPEN, limit=1000))


def _not_found(page: Page) -> Response:
    if page.is_fetch:
        return page.finish(Response(status_code=404))
    return page.render("error.html", 404, message=page.t("error.not_found"),
                       open_count=_open_count(page))


def _csrf_refused(page: Page) -> Response:
    text = page.t("error.csrf")
    if page.is_fetch:
        return page.message(page.finish(Response(status_code=403)), text)
    return page.render("error.html", 403, message=text)


# -- signing in and out -----------------------------------------------------------------


@router.get("", name="console.home")
@router.get("/", name="console.home_slash")
def home(request: Request, session: SessionDep) -> Response:
    page = Page.open(request, session)
    return page.redirect(page.url("board") if page.user else page.url("login"))


@router.get("/login", name="console.login")
def login_form(request: Request, session: SessionDep, next: str = "") -> Response:
    page = Page.open(request, session)
    if page.user is not None:
        return page.redirect(safe_next(next))
    return page.render("login.html", error=None, username="", next_url=safe_next(next))


@router.post("/login", name="console.login_post")
def login(request: Request, session: SessionDep, username: FormStr = "", password: FormStr = "",
          token: CsrfField = "", next_url: NextField = "") -> Response:
    page = Page.open(request, session)
    if not page.csrf_ok(token):
        return _csrf_refused(page)
    target = safe_next(next_url)
    try:
        pair = auth.login(session, username[:64], password[:1024], client_ip(request), page.now,
                          config=page.ctx.auth)
    except auth.RateLimited as e:
        return page.render("login.html", 429, headers={"Retry-After": str(e.retry_after_s)},
                           error=page.t("login.rate_limited"), username=username[:64],
                           next_url=target)
    except auth.AuthError:
        return page.render("login.html", 401, error=page.t("login.failed"),
                           username=username[:64], next_url=target)
    claims = auth.decode_access(pair.access_token, page.ctx.settings, page.now)
    user = auth.user_for_claims(session, claims)
    # A new session: a new CSRF nonce (one planted before login is worthless after it).
    page.nonce, page.new_nonce, page.tokens, page.user = csrf.new_nonce(), True, pair, user
    response = page.redirect(target)
    response.set_cookie(LANG_COOKIE, user.locale.value, httponly=True, samesite="strict",
                        secure=cookie_secure(request, page.ctx.settings), path="/")
    return response


@router.post("/logout", name="console.logout")
def logout(request: Request, session: SessionDep, token: CsrfField = "") -> Response:
    page = Page.open(request, session)
    if not page.csrf_ok(token):
        return _csrf_refused(page)
    # Revoke the session on the server too: a copy of the cookies is worthless after this.
    tokens = [request.cookies.get(ACCESS_COOKIE), request.cookies.get(REFRESH_COOKIE)]
    if page.tokens is not None:
        tokens += [page.tokens.access_token, page.tokens.refresh_token]
    auth.logout(session, [t for t in tokens if t], page.ctx.settings, page.now)
    page.tokens, page.clear_auth = None, True
    page.nonce, page.new_nonce = csrf.new_nonce(), True
    return page.redirect(f"{PREFIX}/login?msg=logged_out")


@router.post("/session/refresh", name="console.refresh")
def refresh(request: Request, session: SessionDep) -> Response:
    page = Page.open(request, session, refresh=True)
    if not page.csrf_ok(None):
        return _csrf_refused(page)
    if page.user is None:
        return page.finish(Response(status_code=401))
    return page.finish(Response(status_code=204))


@router.post("/locale", name="console.locale")
def set_locale(request: Request, session: SessionDep, locale: FormStr = "",
               token: CsrfField = "", next_url: NextField = "") -> Response:
    page = Page.open(request, session)
    if not page.csrf_ok(token):
        return _csrf_refused(page)
    chosen = pick_locale(locale) if locale in LOCALES else page.locale
    if page.user is not None:
        page.user.locale = Locale(chosen)  # the person's own setting (users.locale)
    default = page.url("board") if page.user else page.url("login")
    response = page.redirect(safe_next(next_url, default))
    response.set_cookie(LANG_COOKIE, chosen, httponly=True, samesite="strict",
                        secure=cookie_secure(request, page.ctx.settings), path="/")
    return response


# -- the board ---------------------------------------------------------------------------


@router.get("/board", name="console.board")
def board(request: Request, session: SessionDep) -> Response:
    page = Page.open(request, session)
    if page.user is None:
        return page.to_login()
    residents = visible_residents(session, page.scope)
    # Each home's last activity from its cell's InfluxDB, one query per cell (docs/scale.md).
    shown = tiles.board(session, page.scope, residents,
                        lambda homes: page.ctx.cell_readers.by_reader(session, homes),
                        page.locale, page.now)
    # List pages write one entry naming every resident shown (ids only); pages about one
    # resident or alert write one entry per resident concerned, findable by resident_id.
    page.audit("console.board", None,
               detail=_ids("residents", [r.id for r in residents]))
    return page.render("board.html", active="board", tiles=shown,
                       counts=tiles.state_counts(shown), open_count=_open_count(page))


@router.get("/watch", name="console.watch")
def watch(request: Request, session: SessionDep) -> Response:
    """The daily watch list (DESIGN.md §5): weak welfare signals of the person's residents
    in the last 24 hours, newest first. Responders see life-safety alerts only: 404."""
    page = Page.open(request, session)
    if page.user is None:
        return page.to_login()
    if not page.scope.sees_registry:
        return _not_found(page)
    residents = visible_residents(session, page.scope)
    items = data.watch_rows(session, residents, page.locale, page.now, page.t)
    page.audit("console.watch", None, detail=_ids("residents", sorted(
        {r.id for it in items for r in it.residents})))
    return page.render("watch.html", active="watch", items=items,
                       open_count=_open_count(page))


# -- alerts --------------------------------------------------------------------------------


def _residents_of(page: Page, alerts: list[Alert]) -> list[int]:
    """The residents shown with these alerts (whom the person may see): audit subjects."""
    by_home = data.residents_by_home(page.session, (a.home_id for a in alerts))
    return [r.id for a in alerts for r in by_home.get(a.home_id or "", [])
            if page.scope.sees_person(r.id)]


@router.get("/alerts", name="console.inbox")
def inbox(request: Request, session: SessionDep) -> Response:
    page = Page.open(request, session)
    if page.user is None:
        return page.to_login()
    pending = data.inbox_order(visible_alerts(session, page.scope, status=OPEN,
                                              limit=INBOX_LIMIT))
    recent = visible_alerts(session, page.scope, status=views.RESOLVED, limit=RECENT_LIMIT)
    shown = pending + recent
    page.audit("console.inbox", None,
               detail=_ids("alerts", [a.id for a in shown]) + "; "
               + _ids("residents", sorted(set(_residents_of(page, shown)))))
    return page.render(
        "inbox.html", active="inbox",
        open_alerts=data.alert_rows(session, page.scope, pending, page.locale, page.now),
        recent=data.alert_rows(session, page.scope, recent, page.locale, page.now),
        open_count=len(pending), stream_url="/api/v1/alerts/stream",
        row_url=f"{PREFIX}/alerts/")


@router.get("/alerts/{alert_id}", name="console.alert")
def alert_page(request: Request, session: SessionDep, alert_id: int) -> Response:
    page = Page.open(request, session)
    if page.user is None:
        return page.to_login()
    try:
        alert = require_alert(session, page.scope, alert_id)
    except NotFound:
        return _not_found(page)
    (row,) = data.alert_rows(session, page.scope, [alert], page.locale, page.now)
    events = data.timeline_items(lifecycle.timeline(session, alert.id), page.locale)
    page.audit("console.alert", _residents_of(page, [alert]) or None, detail=f"alert {alert.id}")
    return page.render("alert.html", active="inbox", a=row, events=events,
                       people=data.contacts(session, page.scope, alert),
                       open_count=_open_count(page))


@router.get("/alerts/{alert_id}/row", name="console.alert_row")
def alert_row(request: Request, session: SessionDep, alert_id: int, next: str = ""
              ) -> Response:
    page = Page.open(request, session)
    if page.user is None:
        return page.to_login()
    try:
        alert = require_alert(session, page.scope, alert_id)
    except NotFound:
        return _not_found(page)
    page.audit("console.alert_row", _residents_of(page, [alert]) or None,
               detail=f"alert {alert.id}")
    return page.finish(HTMLResponse(_row_html(page, alert, safe_next(next, page.url("inbox")))))


def _row_html(page: Page, alert: Alert, next_url: str) -> str:
    (row,) = data.alert_rows(page.session, page.scope, [alert], page.locale, page.now)
    return page.fragment("alert_row.html", a=row, next_url=next_url)


def _act(request: Request, session: SessionDep, alert_id: int, token: str, next_url: str,
         action: str, outcome: str = "", text: str = "") -> Response:
    """Acknowledge, resolve or note: CSRF, scope, the lifecycle call, audit, the answer."""
    page = Page.open(request, session)
    if not page.csrf_ok(token):
        return _csrf_refused(page)
    target = safe_next(next_url, page.url("inbox"))
    if page.user is None:
        return page.to_login(expired=True, back_to=target)
    try:
        alert = require_alert(session, page.scope, alert_id)
    except NotFound:
        return _not_found(page)
    try:
        if action == "acknowledged":
            lifecycle.acknowledge(session, alert.id, page.user, page.now)
            detail = ""
        elif action == "resolved":
            if outcome not in views.OUTCOMES:
                raise AlertError(f"choose an outcome: {', '.join(views.OUTCOMES)}")
            lifecycle.resolve(session, alert.id, Outcome(outcome), page.user, page.now,
                              note=text.strip() or None)
            detail = f"outcome {outcome}"
        else:
            lifecycle.add_note(session, alert.id, text, page.user, page.now)
            detail = "note"
    except AlertError as e:
        session.rollback()
        message = page.t("error.invalid", reason=str(e))
        if page.is_fetch:
            return page.message(page.finish(Response(status_code=409)), message)
        return page.render("error.html", 409, message=message)
    page.audit(f"console.alert.{action}", _residents_of(page, [alert]) or None,
               detail=f"alert {alert.id} {detail}".strip())
    done_text = page.t(f"alert.{action}_msg" if action != "note" else "alert.note_msg",
                       id=alert.id)
    if page.is_fetch:
        session.flush()
        return page.message(page.finish(HTMLResponse(_row_html(page, alert, target))), done_text)
    sep = "&" if "?" in target else "?"
    return page.redirect(f"{target}{sep}msg={action if action != 'note' else 'note'}"
                         f"&id={alert.id}")


@router.post("/alerts/{alert_id}/ack", name="console.ack")
def acknowledge(request: Request, session: SessionDep, alert_id: int, token: CsrfField = "",
                next_url: NextField = "") -> Response:
    return _act(request, session, alert_id, token, next_url, "acknowledged")


@router.post("/alerts/{alert_id}/resolve", name="console.resolve")
def resolve(request: Request, session: SessionDep, alert_id: int, token: CsrfField = "",
            next_url: NextField = "", outcome: FormStr = "", text: FormStr = "") -> Response:
    return _act(request, session, alert_id, token, next_url, "resolved", outcome, text)


@router.post("/alerts/{alert_id}/note", name="console.note")
def note(request: Request, session: SessionDep, alert_id: int, token: CsrfField = "",
         next_url: NextField = "", text: FormStr = "") -> Response:
    return _act(request, session, alert_id, token, next_url, "note", text=text)


# -- a resident ------------------------------------------------------------------------------


@router.get("/residents/{resident_id}", name="console.resident")
def resident(request: Request, session: SessionDep, resident_id: int) -> Response:
    page = Page.open(request, session)
    if page.user is None:
        return page.to_login()
    try:
        r = require_resident(session, page.scope, resident_id)
    except NotFound:
        return _not_found(page)
    home = session.get(Home, r.home_id)
    assert home is not None  # a foreign key
    devices = list(session.scalars(select(Device).where(Device.home_id == home.id)
                                   .order_by(Device.id)))
    alerts = data.home_alerts(session, page.scope, home.id)
    reader = page.ctx.influx_for(session, home.id)  # the home's cell's InfluxDB
    hist = data.history(reader, home.id, page.now, page.locale)
    tile = views.tile([tiles.alert_facts(a) for a in alerts if a.status != views.RESOLVED],
                      [tiles.device_facts(d) for d in devices], home.mode.value)
    activity = None if hist.down else data.last_activity(reader, [home.id], page.now)
    last = tiles.activity_text((activity or {}).get(home.id), activity is None, page.now,
                               page.locale)
    page.audit("console.resident", r.id)
    return page.render(
        "resident.html", active="board", r=data.resident_view(r, home), tile=tile,
        alerts=data.alert_rows(session, page.scope, alerts, page.locale, page.now),
        history_down=hist.down, today_chart=hist.today_chart, week_chart=hist.week_chart,
        today_events=hist.today_events, temp=hist.temperature,
        devices=data.device_views(devices, hist.battery, page.now, page.locale),
        last_activity=last, open_count=_open_count(page))


# The root of the API app, for people who type only the host name.
root = APIRouter(include_in_schema=False)


@root.get("/", name="console.root")
def to_console(request: Request, session: SessionDep) -> Response:
    return Page.open(request, session).redirect(f"{PREFIX}/board")


__all__ = ["clear_auth_cookies", "root", "router", "set_auth_cookies"]
