"""Dependencies shared by routes and console pages: context, session, current user, audit.

Authentication: ``Authorization: Bearer <access token>``; the ``dolbom_access`` cookie
is accepted too, but only for safe methods (GET, HEAD), so the console's page loads and
EventSource work while a cookie can never authorise a change (no CSRF by construction:
changes need the header, which another site cannot make a browser send).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from dolbom.api import audit
from dolbom.api.access import Scope, scope_for
from dolbom.api.auth import AuthConfig, AuthError, decode_access, user_for_claims
from dolbom.api.cell_readers import CellReaders
from dolbom.api.errors import Unauthorized
from dolbom.api.events import AlertBus
from dolbom.api.metrics import ApiMetrics
from dolbom.api.settings import ApiSettings
from dolbom.influx.query import InfluxReader
from dolbom.registry.models import User

ACCESS_COOKIE = "dolbom_access"
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(slots=True)
class ApiContext:
    """Everything one app holds, built once by ``create_app``."""

    settings: ApiSettings
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    influx: InfluxReader  # the settings' InfluxDB: homes whose cell has no row
    bus: AlertBus
    metrics: ApiMetrics
    auth: AuthConfig
    audit_key: audit.AuditKey
    cell_readers: CellReaders

    def influx_for(self, session: Session, home_id: str) -> InfluxReader:
        """The InfluxDB of the home's site's cell (``dolbom cell add``), else ``influx``."""
        return self.cell_readers.for_home(session, home_id)


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request: committed when the handler succeeds, else rolled back.

    Use with ``Depends(get_session, scope="function")`` (``SessionDep``) so the commit
    happens before the response is sent: a client never sees success for a change (or a
    read whose audit entry) that did not commit.
    """
    session = get_ctx(request).sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def client_ip(request: Request) -> str:
    """The client's address for the login limiter and the audit log: the peer, or what a
    trusted proxy forwarded (dolbom.api.proxy), so a client cannot choose it."""
    return request.client.host if request.client else "-"


def cookie_secure(request: Request, settings: ApiSettings) -> bool:
    """Set cookies with Secure: always unless disabled, and for every HTTPS request
    (directly, or through a trusted proxy's X-Forwarded-Proto: https)."""
    return settings.cookie_secure or request.url.scheme == "https"


def access_token(request: Request) -> str | None:
    """The bearer token of the request (header; the cookie only for GET and HEAD)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    if request.method in SAFE_METHODS:
        return request.cookies.get(ACCESS_COOKIE) or None
    return None


def authenticate(request: Request, session: Session) -> User:
    """The person the request's token names; ``AuthError`` if none or invalid."""
    token = access_token(request)
    if token is None:
        raise AuthError("not signed in")
    ctx = get_ctx(request)
    claims = decode_access(token, ctx.settings, ctx.clock())
    user = user_for_claims(session, claims)
    request.state.user = user
    return user


def current_user(request: Request, session: SessionDep) -> User:
    try:
        return authenticate(request, session)
    except AuthError as e:
        raise Unauthorized(str(e)) from None


def optional_user(request: Request, session: Session) -> User | None:
    """For console pages: the signed-in person, or None (never raises for bad tokens)."""
    try:
        return authenticate(request, session)
    except AuthError:
        return None


UserDep = Annotated[User, Depends(current_user)]
CtxDep = Annotated[ApiContext, Depends(get_ctx)]


def current_scope(session: SessionDep, user: UserDep) -> Scope:
    return scope_for(session, user)


ScopeDep = Annotated[Scope, Depends(current_scope)]


@dataclass(slots=True)
class Auditor:
    """Writes audit entries for the current request (who, when, from where, route)."""

    session: Session
    user: User
    ctx: ApiContext
    client_ip: str
    route: str

    def __call__(self, action: str, resident_ids: int | Iterable[int] | None,
                 detail: str = "") -> None:
        """One entry per resident concerned (one with no resident if there is none)."""
        ids: list[int | None]
        if resident_ids is None:
            ids = [None]
        elif isinstance(resident_ids, int):
            ids = [resident_ids]
        else:
            ids = list(dict.fromkeys(resident_ids)) or [None]
        audit.record_many(self.session, self.ctx.audit_key, actor=self.user, action=action,
                          resident_ids=ids, client_ip=self.client_ip, route=self.route,
                          detail=detail, at=self.ctx.clock())
        self.ctx.metrics.audit_entries.inc(len(ids))


def get_auditor(request: Request, session: SessionDep, user: UserDep) -> Auditor:
    route = getattr(request.scope.get("route"), "path", request.url.path)
    return Auditor(session, user, get_ctx(request), client_ip(request), str(route))


AuditDep = Annotated[Auditor, Depends(get_auditor)]
