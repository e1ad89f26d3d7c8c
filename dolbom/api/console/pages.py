"""One console request: who is signed in, in which language, with which CSRF token,
and how a page is rendered and answered (cookies, security headers, redirects).

Authentication is the API's (``dolbom.api.auth``): the access token is the
``dolbom_access`` cookie (HttpOnly, SameSite=Strict, path ``/`` so the browser's
EventSource reaches ``/api/v1/alerts/stream`` with it); the refresh token is
``dolbom_refresh`` (HttpOnly, SameSite=Strict, path ``/console`` only). When the access
token has expired, the next page load trades the refresh token for a new pair
(``auth.refresh_tokens``: each refresh token works once) and carries on; the page's
scripts get a 401 instead and renew through ``/console/session/refresh``, one request at
a time. Without a valid refresh token the browser is sent to the login page and comes
back where it was.

The API accepts the cookie for GET/HEAD only; the console's form POSTs are
authenticated here, from the same cookie, and only after their CSRF token has been
checked (``csrf.py``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from dolbom.api import auth
from dolbom.api.access import Scope, scope_for
from dolbom.api.console import csrf
from dolbom.api.console.i18n import CATALOGUE, js_strings, pick_locale, translator
from dolbom.api.console.views import OUTCOMES
from dolbom.api.deps import (
    ACCESS_COOKIE,
    ApiContext,
    Auditor,
    client_ip,
    cookie_secure,
    get_ctx,
)
from dolbom.registry.models import User

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
REFRESH_COOKIE = "dolbom_refresh"
LANG_COOKIE = "dolbom_lang"
PREFIX = "/console"
REFRESH_PATH = PREFIX
FETCH_HEADER = "X-Requested-With"
MESSAGE_HEADER = "X-Console-Message"
# Everything from this origin, nothing from anywhere else (closed networks; no CDN).
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; object-src 'none'; "
                                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry personal data: never kept by a cache
}
GLYPHS = {"alert": "‼", "attention": "!", "device": "⚙", "away": "⌂", "ok": "✓"}
PRIO_GLYPHS = {"high": "‼", "medium": "!", "low": "⚙"}
MESSAGES = frozenset({"acknowledged", "resolved", "note", "logged_out", "expired"})

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.globals.update(glyphs=GLYPHS, prio_glyphs=PRIO_GLYPHS, outcomes=OUTCOMES,
                    known_events=frozenset(k for k in CATALOGUE["en"] if k.startswith("event.")),
                    known_kinds=frozenset(k for k in CATALOGUE["en"]
                                          if k.startswith("device.kind.")))


def safe_next(value: str | None, default: str = f"{PREFIX}/board") -> str:
    """Only a path inside the console: never another host (an open redirect)."""
    if not value or not value.startswith(f"{PREFIX}/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 32 for c in value) or "//" in value:
        return default
    return value


@dataclass
class Page:
    """The state of one console request."""

    request: Request
    ctx: ApiContext
    session: Session
    now: datetime
    user: User | None = None
    nonce: str = ""
    new_nonce: bool = False
    tokens: auth.TokenPair | None = None  # refreshed during this request: set the cookies
    clear_auth: bool = False
    _scope: Scope | None = field(default=None, repr=False)

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, request: Request, session: Session, *, refresh: bool | None = None) -> Page:
        """``refresh``: trade an expired access cookie for a new pair here. By default only
        for page loads: the page's scripts get a 401 and renew through one request of
        their own (``/console/session/refresh``), so parallel fetches never present the
        same refresh token twice (which revokes the session, ``auth.refresh_tokens``)."""
        ctx = get_ctx(request)
        page = cls(request, ctx, session, ctx.clock())
        nonce = request.cookies.get(csrf.COOKIE)
        if nonce and len(nonce) <= 200:
            page.nonce = nonce
        else:
            page.nonce, page.new_nonce = csrf.new_nonce(), True
        if refresh is None:
            refresh = request.headers.get(FETCH_HEADER) != "fetch"
        page.user = page._authenticate(refresh)
        return page

    def _authenticate(self, refresh_allowed: bool = True) -> User | None:
        settings = self.ctx.settings
        token = self.request.cookies.get(ACCESS_COOKIE)
        if token:
            try:
                claims = auth.decode_access(token, settings, self.now)
                user = auth.user_for_claims(self.session, claims)
                self.request.state.user = user
                return user
            except auth.AuthError:
                pass
        refresh = self.request.cookies.get(REFRESH_COOKIE)
        if not refresh_allowed:
            return None  # the script renews the session and asks again
        if not refresh:
            self.clear_auth = bool(token)
            return None
        try:
            pair = auth.refresh_tokens(self.session, refresh, self.now, config=self.ctx.auth)
            claims = auth.decode_access(pair.access_token, settings, self.now)
            user = auth.user_for_claims(self.session, claims)
        except auth.AuthError:
            self.clear_auth = True
            return None
        self.tokens = pair
        self.request.state.user = user
        return user

    # -- facts -----------------------------------------------------------------------
    @property
    def locale(self) -> str:
        if self.user is not None:
            return pick_locale(self.user.locale.value)
        return pick_locale(self.request.cookies.get(LANG_COOKIE),
                           self.request.headers.get("accept-language"))

    @property
    def t(self) -> Any:
        return translator(self.locale)

    @property
    def csrf_token(self) -> str:
        return csrf.token_for(self.nonce, self.ctx.settings.jwt_secret.get_secret_value())

    @property
    def scope(self) -> Scope:
        assert self.user is not None
        if self._scope is None:
            self._scope = scope_for(self.session, self.user)
        return self._scope

    @property
    def is_fetch(self) -> bool:
        return self.request.headers.get(FETCH_HEADER) == "fetch"

    @property
    def here(self) -> str:
        url = self.request.url
        return url.path + (f"?{url.query}" if url.query else "")

    def csrf_ok(self, token: str | None) -> bool:
        token = token or self.request.headers.get(csrf.HEADER)
        # The nonce must come from the browser's cookie, not be minted for this request.
        return not self.new_nonce and csrf.valid(
            self.nonce, token, self.ctx.settings.jwt_secret.get_secret_value())

    def auditor(self) -> Auditor:
        assert self.user is not None
        route = getattr(self.request.scope.get("route"), "path", self.request.url.path)
        return Auditor(self.session, self.user, self.ctx, client_ip(self.request), str(route))

    def audit(self, action: str, resident_ids: int | list[int] | None, detail: str = "") -> None:
        self.auditor()(action, resident_ids, detail)

    def url(self, name: str, **params: Any) -> str:
        return str(self.request.app.url_path_for(f"console.{name}", **params))

    # -- answering --------------------------------------------------------------------
    def render(self, template: str, status: int = 200, *, headers: dict[str, str] | None = None,
               **values: Any) -> Response:
        msg = self.request.query_params.get("msg")
        flash = None
        if msg in MESSAGES:
            flash = self.t(f"alert.{msg}_msg" if msg in ("acknowledged", "resolved", "note")
                           else f"login.{msg}", id=self.request.query_params.get("id", ""))
        ctx: dict[str, Any] = {
            "t": self.t, "locale": self.locale, "csrf": self.csrf_token, "user": None,
            "url": self.url, "static": lambda p: f"/static/{p}", "here": self.here,
            "now_ms": int(self.now.timestamp() * 1000), "js_strings": js_strings(self.locale),
            "flash": flash, "flash_kind": "info", "active": "", "open_count": 0,
        }
        if self.user is not None:
            ctx["user"] = {"display_name": self.user.display_name,
                           "role": self.user.role.value}
        ctx.update(values)
        body = _env.get_template(template).render(ctx)
        return self.finish(HTMLResponse(body, status_code=status, headers=headers))

    def fragment(self, template: str, **values: Any) -> str:
        ctx: dict[str, Any] = {"t": self.t, "locale": self.locale, "csrf": self.csrf_token,
                               "url": self.url, "static": lambda p: f"/static/{p}"}
        ctx.update(values)
        return _env.get_template(template).render(ctx)

    def redirect(self, to: str) -> Response:
        return self.finish(RedirectResponse(to, status_code=303))

    def to_login(self, *, expired: bool = False, back_to: str | None = None) -> Response:
        """401 for the page's scripts; for a person, the login page, then back here (or to
        ``back_to``: after a form POST, the page the form was on)."""
        if self.is_fetch:
            return self.finish(Response(status_code=401))
        q: dict[str, str] = {"next": safe_next(back_to or self.here)}
        if expired:
            q["msg"] = "expired"
        return self.redirect(f"{PREFIX}/login?{urllib.parse.urlencode(q)}")

    def finish(self, response: Response) -> Response:
        """Security headers and whatever cookies this request changed."""
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        secure = cookie_secure(self.request, self.ctx.settings)
        if self.new_nonce:
            response.set_cookie(csrf.COOKIE, self.nonce, httponly=True, samesite="strict",
                                secure=secure, path="/")
        if self.tokens is not None:
            set_auth_cookies(response, self.tokens, self.ctx, secure)
        elif self.clear_auth:
            clear_auth_cookies(response, secure)
        return response

    def message(self, response: Response, text: str) -> Response:
        response.headers[MESSAGE_HEADER] = urllib.parse.quote(text)
        return response


def set_auth_cookies(response: Response, pair: auth.TokenPair, ctx: ApiContext,
                     secure: bool) -> None:
    response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in,
                        httponly=True, samesite="strict", secure=secure, path="/")
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, max_age=ctx.settings.refresh_ttl_s,
                        httponly=True, samesite="strict", secure=secure, path=REFRESH_PATH)


def clear_auth_cookies(response: Response, secure: bool) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=secure)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, httponly=True, samesite="strict",
                           secure=secure)
