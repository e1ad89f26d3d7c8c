"""Sign in (OAuth2 password flow), refresh, sign out, who am I, change my password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from dolbom.api import auth
from dolbom.api.deps import CtxDep, SessionDep, UserDep, access_token, client_ip
from dolbom.api.errors import TooManyAttempts, Unauthorized, Unprocessable
from dolbom.api.routes import ERRORS, PREFIX
from dolbom.api.schemas import (
    LogoutIn,
    PasswordChangeIn,
    Problem,
    RefreshIn,
    TokenOut,
    UserOut,
)

router = APIRouter(prefix=PREFIX, tags=["auth"], responses=ERRORS)


def _out(pair: auth.TokenPair) -> TokenOut:
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token,
                    expires_in=pair.expires_in)


@router.post("/auth/token", response_model=TokenOut,
             responses={429: {"model": Problem, "description": "too many failed sign-ins"}})
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
          session: SessionDep, ctx: CtxDep) -> TokenOut:
    """Sign in with username and password (form fields): an access and a refresh token."""
    try:
        pair = auth.login(session, form.username, form.password, client_ip(request),
                          ctx.clock())
    except auth.RateLimited as e:
        raise TooManyAttempts(str(e), e.retry_after_s) from None
    except auth.AuthError as e:
        raise Unauthorized(str(e)) from None
    return _out(pair)


@router.post("/auth/refresh", response_model=TokenOut)
def refresh(body: RefreshIn, session: SessionDep, ctx: CtxDep) -> TokenOut:
    """A new token pair for a valid refresh token, which is spent: presenting it again
    revokes the whole sign-in session (every token refreshed from it)."""
    try:
        return _out(auth.refresh_tokens(session, body.refresh_token, ctx.clock()))
    except auth.AuthError as e:
        raise Unauthorized(str(e)) from None


@router.post("/auth/logout", status_code=204)
def logout(request: Request, user: UserDep, session: SessionDep, ctx: CtxDep,
           body: LogoutIn | None = None) -> None:
    """Sign out: the session of this access token (and of ``refresh_token``, if given) is
    revoked on the server; its access and refresh tokens stop working at once."""
    tokens = [t for t in (access_token(request), body.refresh_token if body else None) if t]
    auth.logout(session, tokens, ctx.settings, ctx.clock())


@router.get("/me", response_model=UserOut)
def me(user: UserDep) -> UserOut:
    return UserOut.model_validate(user)


@router.post("/me/password", status_code=204)
def change_password(body: PasswordChangeIn, user: UserDep, session: SessionDep,
                    ctx: CtxDep) -> None:
    """Change my password; every token issued before (on every device) stops working."""
    if not auth.verify_password(user.password_hash, body.current_password):
        raise Unprocessable("the current password is wrong")
    try:
        auth.set_password(session, user, body.new_password, ctx.clock())
    except ValueError as e:
        raise Unprocessable(str(e)) from None
