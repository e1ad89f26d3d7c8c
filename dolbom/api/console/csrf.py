"""CSRF protection for the console's cookie-authenticated form POSTs.

Each browser session has a random nonce in the HttpOnly cookie ``dolbom_csrf``
(SameSite=Strict); every form carries ``csrf_token`` = HMAC-SHA256(server secret,
nonce) in a hidden field, and every POST is refused unless the field matches the
cookie. A page on another site can neither read the cookie nor compute the HMAC,
and SameSite=Strict keeps the cookies off its requests in the first place (two
walls). The nonce is replaced at login and logout, so a token does not outlive
its session (and a nonce planted before login is useless after it).

The JavaScript sends the same token in the ``X-CSRF-Token`` header (it reads it
from the page's ``<meta name="csrf-token">``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "dolbom_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
_CONTEXT = b"dolbom-console-csrf-v1:"


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def token_for(nonce: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), _CONTEXT + nonce.encode(), hashlib.sha256)
    return mac.hexdigest()


def valid(nonce: str | None, token: str | None, secret: str) -> bool:
    """True only if both are present and the token is this nonce's (constant time)."""
    if not nonce or not token or len(nonce) > 200 or len(token) > 200:
        return False
    return hmac.compare_digest(token_for(nonce, secret), token)
