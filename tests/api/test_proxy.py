"""The API behind an HTTPS reverse proxy: the real app served by uvicorn exactly as
``dolbom api serve`` configures it, on loopback. The trusted proxy is a client bound to
127.0.0.2; anyone else (127.0.0.1) is an untrusted peer whose X-Forwarded-* headers
must change nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from dolbom.api.app import create_app
from dolbom.api.cli import server_config
from dolbom.api.proxy import forwarded_client, parse_networks
from dolbom.api.settings import load_settings
from dolbom.cli import main
from dolbom.registry.models import AuditEntry
from dolbom.stack.proc import free_port
from tests.api.conftest import PASSWORD, World

WAIT_S = 10.0
PROXY = "127.0.0.2"  # the trusted reverse proxy's address
PEER = "127.0.0.1"  # a client connecting directly
MAX_FAILURES = 3


@pytest.fixture()
def proxied(make_world: object, sqlite_url: str) -> World:
    """A seeded world whose settings trust only the proxy; cookies not forced Secure."""
    w: World = make_world(sqlite_url, trusted_proxies=PROXY,  # type: ignore[operator]
                          login_max_failures=MAX_FAILURES, cookie_secure=False)
    return w


@asynccontextmanager
async def serving(w: World) -> AsyncIterator[str]:
    """The app on w's database under uvicorn, configured as `dolbom api serve` does."""
    port = free_port()
    app = create_app(w.settings, clock=w.clock)
    server = uvicorn.Server(server_config(app, w.settings, host=PEER, port=port,
                                          log_level="warning", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(), name="uvicorn")
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.02)
        yield f"http://{PEER}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


def client_from(source: str, base: str) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``source`` (a loopback address)."""
    return httpx.AsyncClient(base_url=base, timeout=WAIT_S,
                             transport=httpx.AsyncHTTPTransport(local_address=source))


async def sign_in(c: httpx.AsyncClient, username: str, password: str,
                  forwarded_for: str) -> httpx.Response:
    return await c.post("/api/v1/auth/token", data={"username": username, "password": password},
                        headers={"X-Forwarded-For": forwarded_for})


def audit_ips(w: World) -> list[str]:
    with w.sessions() as s:
        return list(s.scalars(select(AuditEntry.client_ip).order_by(AuditEntry.id)))


async def test_forged_forwarded_for_from_an_untrusted_peer_changes_nothing(
        proxied: World) -> None:
    """A direct client rotating X-Forwarded-For is still locked out after the limit, and
    the audit log records its real address, not the forged one."""
    w = proxied
    async with serving(w) as base, client_from(PEER, base) as c:
        for i in range(MAX_FAILURES):
            r = await sign_in(c, "sup1", "wrong", f"198.51.100.{i + 1}")
            assert r.status_code == 401
        r = await sign_in(c, "sup1", PASSWORD, "198.51.100.99")
        assert r.status_code == 429, r.text  # the right password does not help either
        r = await sign_in(c, "w2", PASSWORD, "198.51.100.7")
        assert r.status_code == 200
        token = r.json()["access_token"]
        r = await c.get(f"/api/v1/residents/{w.residents['h2']}",
                        headers={"Authorization": f"Bearer {token}",
                                 "X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 200
    assert audit_ips(w) == [PEER]


async def test_a_trusted_proxy_forwards_the_client_address(proxied: World) -> None:
    """Through the trusted proxy, the limiter counts each forwarded client on its own and
    the audit log records the forwarded client (the rightmost untrusted hop)."""
    w = proxied
    async with serving(w) as base, client_from(PROXY, base) as proxy:
        for _ in range(MAX_FAILURES):
            assert (await sign_in(proxy, "sup1", "wrong", "203.0.113.5")).status_code == 401
        assert (await sign_in(proxy, "sup1", PASSWORD, "203.0.113.5")).status_code == 429
        # Another client behind the same proxy is not locked out by the first one...
        r = await sign_in(proxy, "sup1", PASSWORD, "203.0.113.6")
        assert r.status_code == 200, r.text
        # ...and a client forging a hop in front of itself is still itself.
        assert (await sign_in(proxy, "sup1", PASSWORD, "203.0.113.6, 203.0.113.5")
                ).status_code == 429
        token = r.json()["access_token"]
        r = await proxy.get(f"/api/v1/residents/{w.residents['h2']}",
                            headers={"Authorization": f"Bearer {token}",
                                     "X-Forwarded-For": "192.0.2.1, 203.0.113.6"})
        assert r.status_code == 200
    assert audit_ips(w) == ["203.0.113.6"]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


async def console_login_cookies(c: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    """Sign in on the console; the Set-Cookie headers of the sign-in response."""
    page = await c.get("/console/login", headers=headers)
    assert page.status_code == 200
    # The browser's side of the proxy is HTTPS: it sends back even a Secure cookie.
    nonce = next(x.split(";", 1)[0] for x in page.headers.get_list("set-cookie")
                 if x.startswith("dolbom_csrf="))
    r = await c.post("/console/login", headers={**headers, "Cookie": nonce},
                     data={"username": "w1", "password": PASSWORD,
                           "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    cookies = r.headers.get_list("set-cookie")
    assert {x.split("=", 1)[0] for x in cookies} >= {"dolbom_access", "dolbom_refresh"}
    return cookies


async def test_cookies_are_secure_behind_the_proxy_and_not_on_forged_https(
        proxied: World) -> None:
    """Via the trusted proxy with X-Forwarded-Proto: https every cookie is Secure, HttpOnly
    and SameSite=Strict; the same header from an untrusted peer does not make them Secure."""
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.20"}
    async with serving(proxied) as base:
        async with client_from(PROXY, base) as proxy:
            behind = await console_login_cookies(proxy, https)
        async with client_from(PEER, base) as direct:
            forged = await console_login_cookies(direct, https)
    for cookie in behind + forged:
        attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert "httponly" in attrs and "samesite=strict" in attrs, cookie
    assert all("secure" in {a.strip().lower() for a in c.split(";")[1:]} for c in behind)
    assert not any("secure" in {a.strip().lower() for a in c.split(";")[1:]} for c in forged)


@pytest.mark.parametrize(("env", "said"), [
    ({"DOLBOM_API__HOST": "0.0.0.0"}, "DOLBOM_API__BEHIND_TLS_PROXY=true"),  # noqa: S104
    ({"DOLBOM_API__HOST": "10.0.0.5", "DOLBOM_API__BEHIND_TLS_PROXY": "true"},
     "DOLBOM_API__TRUSTED_PROXIES"),
])
def test_serve_refuses_plain_http_off_loopback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], said: str) -> None:
    """`dolbom api serve` on a non-loopback address without a TLS proxy declared (or with one
    but no trusted proxy address) exits 1 with one line, before listening."""
    monkeypatch.setenv("DOLBOM_API__JWT_SECRET", "s" * 32)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["api", "serve"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err


def test_a_declared_proxy_with_its_address_may_serve_off_loopback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With BEHIND_TLS_PROXY and TRUSTED_PROXIES set, nothing refuses a non-loopback host, and
    uvicorn's own proxy-header trust (127.0.0.1 by default) is off."""
    monkeypatch.setenv("DOLBOM_API__JWT_SECRET", "s" * 32)
    s = load_settings(host="10.0.0.5", behind_tls_proxy=True, trusted_proxies="10.0.0.2")
    assert s.serve_refusal() is None and load_settings().serve_refusal() is None
    assert server_config(object(), s).proxy_headers is False  # type: ignore[arg-type]


def test_a_bad_trusted_proxy_is_one_line() -> None:
    """A trusted-proxy entry that is not an address or network stops start-up naming it."""
    with pytest.raises(SystemExit) as e:
        load_settings(jwt_secret="s" * 32, trusted_proxies="10.0.0.2, nginx")
    assert "DOLBOM_API__TRUSTED_PROXIES" in str(e.value) and "nginx" in str(e.value)


@pytest.mark.parametrize(("chain", "client"), [
    (["203.0.113.5"], "203.0.113.5"),
    (["198.51.100.1, 203.0.113.5"], "203.0.113.5"),  # the forged left part is ignored
    (["198.51.100.1", "203.0.113.5, 10.0.0.3"], "203.0.113.5"),  # inner proxy skipped
    (["10.0.0.3"], "10.0.0.3"),  # only proxies: the outermost one
    (["unknown, 10.0.0.3"], "10.0.0.3"),  # not an address: stop at the last trusted hop
    ([], "10.0.0.2"),  # no header: the proxy itself
])
def test_forwarded_client_is_the_rightmost_untrusted_hop(chain: list[str], client: str) -> None:
    """The client is the rightmost X-Forwarded-For hop that is not a trusted proxy."""
    assert forwarded_client("10.0.0.2", chain, parse_networks("10.0.0.0/24")) == client
