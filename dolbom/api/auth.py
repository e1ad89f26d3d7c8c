"""Sign-in: argon2 password hashes, short-lived HS256 JWTs, refresh, and the login limiter.

Access tokens live ``access_ttl_s`` (≤ 15 min) and carry ``sub`` (the user id), ``typ``
(``access``), ``iat``, ``exp`` and ``ver``: the person's token version, bumped by a
password change or a deactivation, so every token issued before stops working at the
next request (checked by ``user_for_claims`` on every request, with ``users.active``).
Refresh tokens are the same shape with ``typ`` = ``refresh``; one is never accepted
where the other is expected.

Both carry ``sid``, the sign-in session (``AuthSession``: one login and every pair refreshed
from it). A refresh token works once: using it marks it used and returns a new pair of the
same session, whose refresh token expires when the session does (a login's 12 h are not
extended by refreshing). Presenting a used refresh token again means a copy is in someone
else's hands: the whole session is revoked (OAuth 2.0 Security BCP, refresh token
rotation), so the thief's and the owner's tokens all stop working. Signing out revokes the
session the same way. Every request checks the session (``user_for_claims``).

Time is always passed in (``now``): tests move a clock, they do not sleep.

``login`` and ``refresh_tokens`` take the session the app made (``create_app`` puts the
settings and the limiter in ``session.info``), so pages and routes call them alike.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dolbom.api.settings import MAX_ACCESS_TTL_S, ApiSettings
from dolbom.registry.models import AuthSession, RefreshToken, User, UserToken

ALGORITHM = "HS256"
INFO_KEY = "dolbom.api.auth"
MIN_PASSWORD_LEN = 12
MAX_PASSWORD_LEN = 1024  # argon2 hashes anything, but a 10 MB "password" is an attack
REQUIRED_CLAIMS = ("exp", "iat", "sub", "typ", "sid", "jti")
CLOCK_SKEW_S = 60  # an ``iat`` further in the future than this is refused

_hasher = PasswordHasher()
_dummy_hash: str | None = None


class AuthError(Exception):
    """Wrong credentials, inactive person, or a bad / expired / revoked token."""


class RateLimited(AuthError):
    """Too many failed sign-ins for this (username, client IP): wait ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token is valid
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


# -- passwords ---------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; False for no hash or a corrupt one (never raises)."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _burn_time(password: str) -> None:
    """Verify against a dummy hash: an unknown username costs as much as a known one."""
    global _dummy_hash  # noqa: PLW0603 - computed once, lazily (hashing is slow)
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    verify_password(_dummy_hash, password)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LEN} characters")
    if len(password) > MAX_PASSWORD_LEN:
        raise ValueError(f"a password is at most {MAX_PASSWORD_LEN} characters")


def token_version(session: Session, user_id: int) -> int:
    row = session.get(UserToken, user_id)
    return row.version if row is not None else 0


def _bump(session: Session, user_id: int, password_changed_at: datetime | None) -> None:
    row = session.get(UserToken, user_id)
    if row is None:
        row = UserToken(user_id=user_id, version=0)
        session.add(row)
    row.version = (row.version or 0) + 1
    if password_changed_at is not None:
        row.password_changed_at = password_changed_at
    session.flush()


def set_password(session: Session, user: User, password: str, now: datetime) -> None:
    """Set a person's password; every token they hold stops working."""
    check_password_policy(password)
    user.password_hash = hash_password(password)
    _bump(session, user.id, now)


def deactivate(session: Session, user: User) -> None:
    """Refuse the person from now on (their tokens stop working at the next request)."""
    user.active = False
    _bump(session, user.id, None)


# -- the login limiter ---------------------------------------------------------------


class LoginLimiter:
    """Failed sign-ins per (username, client IP) in a sliding window; bounded memory.

    In-process: each API instance limits on its own (N instances allow N × the limit),
    which still turns an online guessing attack from millions of tries into a handful.
    """

    def __init__(self, max_failures: int, window_s: float, max_keys: int = 100_000) -> None:
        self.max_failures, self.window_s, self.max_keys = max_failures, window_s, max_keys
        self._fails: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        times = [t for t in self._fails.get(key, []) if now - t < self.window_s]
        if times:
            self._fails[key] = times
        else:
            self._fails.pop(key, None)
        return times

    def check(self, key: tuple[str, str], now: float) -> None:
        with self._lock:
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                retry = times[-self.max_failures] + self.window_s - now
                raise RateLimited(max(1, math.ceil(retry)))

    def failed(self, key: tuple[str, str], now: float) -> None:
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._fails[key] = times[-self.max_failures:]
            self._fails.move_to_end(key)
            while len(self._fails) > self.max_keys:
                self._fails.popitem(last=False)  # the stalest key goes first

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._fails.pop(key, None)


@dataclass(slots=True)
class AuthConfig:
    """What ``login`` and ``refresh_tokens`` need besides the session (in session.info)."""

    settings: ApiSettings
    limiter: LoginLimiter
    on_failure: Callable[[str], None] | None = None  # reason → metrics


def _config(session: Session, config: AuthConfig | None) -> AuthConfig:
    if config is not None:
        return config
    found = session.info.get(INFO_KEY)
    if not isinstance(found, AuthConfig):
        raise RuntimeError("this session does not come from dolbom.api.app.create_app")
    return found


# -- tokens --------------------------------------------------------------------------


def _encode(settings: ApiSettings, user: User, version: int, typ: str, sid: str, jti: str,
            iat: int, exp: int) -> str:
    claims: dict[str, Any] = {"sub": str(user.id), "typ": typ, "iat": iat, "exp": exp,
                              "ver": version, "sid": sid, "jti": jti}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def issue_tokens(session: Session, user: User, settings: ApiSettings, now: datetime,
                 sid: str | None = None) -> TokenPair:
    """A pair for ``user``: of a new sign-in session, or of ``sid`` (a refresh)."""
    iat = int(now.timestamp())
    if sid is None:
        auth_session = AuthSession(id=secrets.token_hex(16), user_id=user.id, created_at=now,
                                   expires_at=now + timedelta(seconds=settings.refresh_ttl_s))
        session.add(auth_session)
        session.flush()
    else:
        found = session.get(AuthSession, sid)
        if found is None:
            raise AuthError("sign-in session not found")
        auth_session = found
    session_exp = int(auth_session.expires_at.timestamp())
    jti = secrets.token_hex(16)
    session.add(RefreshToken(jti=jti, session_id=auth_session.id, issued_at=now))
    session.flush()
    version = token_version(session, user.id)
    return TokenPair(
        access_token=_encode(settings, user, version, "access", auth_session.id,
                             secrets.token_hex(8), iat,
                             min(iat + settings.access_ttl_s, session_exp)),
        refresh_token=_encode(settings, user, version, "refresh", auth_session.id, jti, iat,
                              session_exp),
        expires_in=max(1, min(settings.access_ttl_s, session_exp - iat)),
    )


def decode_token(token: str, settings: ApiSettings, now: datetime, typ: str) -> dict[str, Any]:
    """Verify signature (HS256 only: ``alg: none`` and others are refused), claims, expiry."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, settings.jwt_secret.get_secret_value(), algorithms=[ALGORITHM],
            # Expiry is checked below against the injected clock, not the wall clock.
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False,
                     "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidTokenError as e:
        raise AuthError(f"invalid token: {e}") from None
    ts = now.timestamp()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise AuthError("invalid token: exp and iat must be integers")
    if claims.get("typ") != typ:
        raise AuthError(f"invalid token: not an {typ} token")
    if ts >= exp:
        raise AuthError("token expired")
    if iat > ts + CLOCK_SKEW_S:
        raise AuthError("invalid token: issued in the future")
    limit = MAX_ACCESS_TTL_S if typ == "access" else settings.refresh_ttl_s
    if exp - iat > limit:
        raise AuthError("invalid token: lifetime too long")
    if not isinstance(claims.get("sub"), str) or not str(claims["sub"]).isdigit():
        raise AuthError("invalid token: bad subject")
    if not isinstance(claims.get("sid"), str) or not isinstance(claims.get("jti"), str):
        raise AuthError("invalid token: bad session")
    return claims


def decode_access(token: str, settings: ApiSettings, now: datetime) -> dict[str, Any]:
    return decode_token(token, settings, now, "access")


def user_for_claims(session: Session, claims: dict[str, Any]) -> User:
    """The person a verified token names, if they are still active and it is not revoked."""
    user = session.get(User, int(claims["sub"]))
    if user is None or not user.active:
        raise AuthError("this account does not exist or is deactivated")
    if claims.get("ver") != token_version(session, user.id):
        raise AuthError("token revoked (password changed or account deactivated)")
    auth_session = session.get(AuthSession, str(claims.get("sid")))
    if auth_session is None or auth_session.user_id != user.id:
        raise AuthError("token revoked (no such sign-in session)")
    if auth_session.revoked_at is not None:
        raise AuthError("token revoked (signed out, or the session was revoked)")
    return user


def revoke_session(session: Session, sid: str, now: datetime, reason: str) -> bool:
    """Revoke a sign-in session: every token of it stops working. True if it was live."""
    result = session.execute(
        update(AuthSession).where(AuthSession.id == sid, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason[:32]))
    session.flush()
    return bool(getattr(result, "rowcount", 0))


def session_of(token: str, settings: ApiSettings, now: datetime, typ: str) -> str | None:
    """The ``sid`` of a correctly signed, unexpired token (revoked or not), else None."""
    try:
        return str(decode_token(token, settings, now, typ)["sid"])
    except AuthError:
        return None


def logout(session: Session, tokens: list[str], settings: ApiSettings, now: datetime) -> int:
    """Revoke the sessions of the given access or refresh tokens; how many were live."""
    sids = {sid for tok in tokens for typ in ("access", "refresh")
            if (sid := session_of(tok, settings, now, typ)) is not None}
    return sum(revoke_session(session, sid, now, "logout") for sid in sorted(sids))


# -- login and refresh ---------------------------------------------------------------


def login(session: Session, username: str, password: str, client_ip: str, now: datetime, *,
          config: AuthConfig | None = None) -> TokenPair:
    """Check credentials; tokens on success. Raises ``RateLimited`` or ``AuthError``.

    The limiter is checked first, so a locked-out pair is refused even with the right
    password (an attacker learns nothing from a lucky guess).
    """
    cfg = _config(session, config)
    key = (username.strip().lower(), client_ip)
    ts = now.timestamp()
    try:
        cfg.limiter.check(key, ts)
    except RateLimited:
        if cfg.on_failure:
            cfg.on_failure("rate_limited")
        raise
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        _burn_time(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
    if not ok or user is None or not user.active:
        cfg.limiter.failed(key, ts)
        if cfg.on_failure:
            cfg.on_failure("inactive" if ok else "bad_credentials")
        # One message for every case: no telling which usernames exist.
        raise AuthError("wrong username or password, or the account is deactivated")
    cfg.limiter.succeeded(key)
    if _hasher.check_needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    return issue_tokens(session, user, cfg.settings, now)


def refresh_tokens(session: Session, refresh_token: str, now: datetime, *,
                   config: AuthConfig | None = None) -> TokenPair:
    """A new pair for a valid refresh token of a person still active and not revoked.

    The token is spent: a second use revokes its whole session (and is committed at once,
    since the caller's transaction is rolled back by the refusal).
    """
    cfg = _config(session, config)
    claims = decode_token(refresh_token, cfg.settings, now, "refresh")
    user = user_for_claims(session, claims)
    sid, jti = str(claims["sid"]), str(claims["jti"])
    spent = session.execute(
        update(RefreshToken)
        .where(RefreshToken.jti == jti, RefreshToken.session_id == sid,
               RefreshToken.used_at.is_(None))
        .values(used_at=now))
    if not getattr(spent, "rowcount", 0):
        known = session.get(RefreshToken, jti)
        if known is not None and known.session_id == sid:
            revoke_session(session, sid, now, "refresh_reuse")
            session.commit()
            if cfg.on_failure:
                cfg.on_failure("refresh_reuse")
            raise AuthError("refresh token already used: the session is revoked")
        raise AuthError("refresh token not issued by this server")
    return issue_tokens(session, user, cfg.settings, now, sid=sid)
