"""Every answer of the app carries the security headers: each route of the API and the
console (for every method, signed in or not, success or error), static assets, /docs,
/openapi.json, /health, /metrics and unknown paths. Personal data is never cacheable."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from tests.api.conftest import World

PARAMS = {"resident_id": "{r}", "alert_id": "{a}", "home_id": "h1", "device_id": "d-h1",
          "key": "heat_c", "username": "w2"}


def _check(r: Any, where: str) -> None:
    h = r.headers
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("referrer-policy") in ("same-origin", "no-referrer"), where
    assert h.get("x-frame-options") == "DENY", where
    csp = h.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, (where, csp)
    assert "unsafe-inline" not in re.sub(r"style-src[^;]*", "", csp), (where, csp)
    assert "default-src" in csp and "*" not in csp, (where, csp)
    static = where.rsplit(maxsplit=1)[-1].startswith(("/static/", "/docs/assets/"))
    cache = h.get("cache-control", "")
    assert ("no-cache" in cache or "no-store" in cache) if static else "no-store" in cache, \
        (where, cache)


def all_routes(routes: list[Any], prefix: str = "") -> list[Any]:
    """Every route of the app, through included routers (FastAPI includes them lazily)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out += all_routes(inner.routes, prefix + route.include_context.prefix)
        elif not isinstance(route, Mount):
            out.append((prefix, route))
    return out


def _routes(w: World) -> list[tuple[str, str]]:
    out = []
    for prefix, route in all_routes(w.client.app.routes):  # type: ignore[attr-defined]
        path = getattr(route, "path", None)
        path = prefix + path if path is not None else None
        if path is None or path == "/api/v1/alerts/stream":
            continue
        for name in re.findall(r"{(\w+)}", path):
            path = path.replace(f"{{{name}}}", PARAMS.get(name, "x"))
        path = path.replace("{r}", str(w.residents["h1"])).replace("{a}", str(w.alerts["h1"]))
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                out.append((method, path))
    return out


@pytest.mark.parametrize("who", ["admin", "w1", None])
def test_every_route_answers_with_the_security_headers(world: World, who: str | None) -> None:
    """Each route and method: the headers are there whatever the status (200, 401, 404,
    422, 303...), so no answer with personal data can be cached, framed or sniffed."""
    routes = _routes(world)
    assert len(routes) > 40
    assert any(isinstance(r, APIRoute) for _, r in all_routes(world.client.app.routes))  # type: ignore[attr-defined]
    headers = world.h(who) if who else {}
    for method, path in routes:
        kw: dict[str, Any] = {"headers": headers, "follow_redirects": False}
        if method in ("POST", "PUT", "PATCH"):
            kw["json"] = {}
        r = world.client.request(method, path, **kw)
        assert r.status_code < 500, f"{method} {path}: {r.status_code}"
        _check(r, f"{who} {method} {path}")


def test_other_answers_carry_them_too(world: World) -> None:
    """Static assets, the OpenAPI document and UI, health, metrics and unknown paths."""
    for path in ("/static/console.css", "/openapi.json", "/docs", "/health", "/metrics",
                 "/nowhere", "/api/v1/nowhere", "/console/nowhere", "/"):
        r = world.client.get(path, follow_redirects=False)
        _check(r, f"GET {path}")


def test_resident_data_is_no_store_in_api_and_console(world: World) -> None:
    r = world.get("w1", f"/api/v1/residents/{world.residents['h1']}")
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    assert r.headers["content-type"].startswith("application/json")
    world.client.cookies.set("dolbom_access", world.token("w1"))
    try:
        r = world.client.get(f"/console/residents/{world.residents['h1']}")
        assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    finally:
        world.client.cookies.clear()


def test_hsts_only_over_https(world: World) -> None:
    """An HTTPS request gets Strict-Transport-Security; plain HTTP does not (a browser would
    otherwise pin a loopback trial to HTTPS). Via a trusted proxy: tests/api/test_proxy.py
    makes the scheme the proxy's X-Forwarded-Proto."""
    w = world
    plain = w.client.get("/health")
    assert "strict-transport-security" not in plain.headers
    tls = w.client.get("https://testserver/health")
    assert tls.headers["strict-transport-security"].startswith("max-age=")
