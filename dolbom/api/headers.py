"""Security headers on every answer of the app: API JSON, console pages, the alert stream,
static assets, the OpenAPI UI, errors and redirects alike.

- ``Cache-Control: no-store`` on everything that may carry personal data (every route but
  the static assets, which are the same for everyone and only revalidated: ``no-cache``);
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``,
  ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'`` (no framing, no clickjacking);
- a Content-Security-Policy without inline script: JSON answers may load nothing at all;
  console pages and the OpenAPI UI only this origin's files.

Over HTTPS (directly, or from a trusted proxy's X-Forwarded-Proto), also
``Strict-Transport-Security``: the browser never falls back to plain HTTP for this host.

A route that sets one of these itself keeps its own value (the console's pages set theirs).
A pure ASGI middleware, so the alert stream is not buffered.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON and anything else that is not a page: nothing to load, nothing to frame.
API_CSP = ("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
           "form-action 'none'")
# The console's pages and their assets: this origin only, no inline script.
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")
# The OpenAPI UI: its bundle and our init script from this origin, no inline script;
# Swagger UI sets style attributes from its scripts.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
STATIC_PREFIXES = ("/static/", "/docs/assets/")
HSTS = "max-age=31536000"

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def policy_for(path: str) -> dict[str, str]:
    """The headers an answer to ``path`` gets unless it set them itself."""
    static = path.startswith(STATIC_PREFIXES)
    if path.startswith("/docs") or path.startswith("/api/docs"):
        csp = DOCS_CSP
    elif path.startswith(("/console", "/static/")) or path == "/":
        csp = PAGE_CSP
    else:
        csp = API_CSP
    return {**COMMON, "content-security-policy": csp,
            "cache-control": "no-cache" if static else "no-store"}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = policy_for(str(scope.get("path", "")))
        if scope.get("scheme") == "https":
            wanted["strict-transport-security"] = HSTS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in wanted.items():
                    if k not in headers:
                        headers[k] = v
                if wanted["cache-control"] == "no-store" and "pragma" not in headers:
                    headers["pragma"] = "no-cache"  # HTTP/1.0 caches
            await send(message)

        await self.app(scope, receive, send_with_headers)
