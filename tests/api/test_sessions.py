"""Sign-in sessions: refresh tokens rotate and a reused one revokes its whole family;
signing out (API and console) revokes the session's tokens on the server."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.orm import sessionmaker

from dolbom.api import auth
from dolbom.registry.db import make_engine
from tests.api.conftest import PASSWORD, World
from tests.api.test_console_pages import csrf_of

ME = "/api/v1/me"
REFRESH = "/api/v1/auth/refresh"


def _login(w: World, username: str = "w1") -> dict[str, Any]:
    r = w.client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _me(w: World, access: str) -> int:
    return int(w.client.get(ME, headers={"Authorization": f"Bearer {access}"}).status_code)


def _refresh(w: World, refresh: str) -> Any:
    return w.client.post(REFRESH, json={"refresh_token": refresh})


def test_a_refresh_token_works_once(world: World) -> None:
    """Using a refresh token spends it: the second use is refused."""
    first = _login(world)
    r = _refresh(world, first["refresh_token"])
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"] != first["refresh_token"]
    assert _refresh(world, first["refresh_token"]).status_code == 401


def test_reusing_a_refresh_token_revokes_the_whole_family(world: World) -> None:
    """A replayed refresh token (a stolen copy) revokes every token refreshed from the
    same sign-in: the thief's new pair and the owner's alike; other sessions live on."""
    first = _login(world)
    other = _login(world)  # the same person signed in elsewhere: a separate session
    stolen = first["refresh_token"]
    thief = _refresh(world, stolen).json()
    assert _me(world, thief["access_token"]) == 200
    assert _refresh(world, stolen).status_code == 401  # the owner (or thief) replays it
    assert _me(world, thief["access_token"]) == 401
    assert _me(world, first["access_token"]) == 401
    assert _refresh(world, thief["refresh_token"]).status_code == 401
    assert _me(world, other["access_token"]) == 200
    assert _refresh(world, other["refresh_token"]).status_code == 200


def test_refreshing_does_not_extend_the_sign_in(world: World) -> None:
    """Each refresh hands out a token that ends when the sign-in does, not 12 h later."""
    pair = _login(world)
    for _ in range(3):
        world.clock.advance(world.settings.refresh_ttl_s / 3 - 5)
        r = _refresh(world, pair["refresh_token"])
        assert r.status_code == 200, r.text
        pair = r.json()
    world.clock.advance(30)  # past the login's refresh_ttl_s
    assert _refresh(world, pair["refresh_token"]).status_code == 401
    assert _me(world, pair["access_token"]) == 401


def test_logout_revokes_access_and_refresh_tokens(world: World) -> None:
    """After POST /auth/logout the copied access and refresh tokens no longer work."""
    pair = _login(world)
    other = _login(world)
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    r = world.client.post("/api/v1/auth/logout", headers=h)
    assert r.status_code == 204, r.text
    assert _me(world, pair["access_token"]) == 401
    assert _refresh(world, pair["refresh_token"]).status_code == 401
    assert world.client.post("/api/v1/auth/logout", headers=h).status_code == 401
    assert _me(world, other["access_token"]) == 200  # only that session ended


def test_logout_revokes_a_refreshed_pair_of_the_same_session(world: World) -> None:
    """Tokens refreshed earlier from the same sign-in end with it too."""
    pair = _login(world)
    newer = _refresh(world, pair["refresh_token"]).json()
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    assert world.client.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert _me(world, newer["access_token"]) == 401
    assert _refresh(world, newer["refresh_token"]).status_code == 401


def test_console_logout_revokes_the_copied_cookies(world: World) -> None:
    """Copies of the console's cookies taken before sign-out are refused after it."""
    c = world.client
    page = c.get("/console/login")
    r = c.post("/console/login", data={"username": "w1", "password": PASSWORD,
                                        "csrf_token": csrf_of(page.text)},
               follow_redirects=False)
    assert r.status_code == 303
    access, refresh = c.cookies.get("dolbom_access"), c.cookies.get("dolbom_refresh")
    assert access and refresh
    board = c.get("/console/board")
    assert board.status_code == 200
    r = c.post("/console/logout", data={"csrf_token": csrf_of(board.text)},
               follow_redirects=False)
    assert r.status_code == 303
    c.cookies.clear()
    assert _me(world, access) == 401
    assert _refresh(world, refresh).status_code == 401
    c.cookies.set("dolbom_access", access)
    c.cookies.set("dolbom_refresh", refresh, path="/console")
    try:
        r = c.get("/console/board", follow_redirects=False)
        assert r.status_code == 303 and "/console/login" in r.headers["location"]
    finally:
        c.cookies.clear()


def test_console_scripts_renew_the_session_once_not_per_fetch(world: World) -> None:
    """With an expired access cookie, the page's parallel fetches get 401 without spending
    the refresh token; the one renewal request rotates it; page loads still renew."""
    c = world.client
    page = c.get("/console/login")
    c.post("/console/login", data={"username": "w1", "password": PASSWORD,
                                   "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    board = c.get("/console/board")
    token = csrf_of(board.text)
    world.clock.advance(world.settings.access_ttl_s + 5)
    row = f"/console/alerts/{world.alerts['h1']}/row"
    fetch = {"X-Requested-With": "fetch"}
    try:
        for _ in range(3):  # the parallel fetches of a live inbox
            assert c.get(row, headers=fetch).status_code == 401
        r = c.post("/console/session/refresh", headers={**fetch, "X-CSRF-Token": token})
        assert r.status_code == 204, r.text
        assert c.get(row, headers=fetch).status_code == 200  # the new cookies work
        world.clock.advance(world.settings.access_ttl_s + 5)
        assert c.get("/console/board", follow_redirects=False).status_code == 200
    finally:
        c.cookies.clear()


def test_concurrent_uses_of_one_refresh_token_mint_at_most_one_pair(store_world: World) -> None:
    """Four API instances presented the same refresh token at once (SQLite and PostgreSQL):
    at most one pair is minted, and the replays revoke the session it belongs to."""
    w = store_world
    token = _login(w)["refresh_token"]
    cfg = auth.AuthConfig(w.settings, auth.LoginLimiter(5, 60))
    start = threading.Barrier(4)
    minted: list[auth.TokenPair] = []
    refused: list[str] = []

    def use() -> None:
        engine = make_engine(w.url)
        try:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            start.wait()
            with factory() as s:
                try:
                    minted.append(auth.refresh_tokens(s, token, w.clock(), config=cfg))
                    s.commit()
                except auth.AuthError as e:
                    s.rollback()
                    refused.append(str(e))
        finally:
            engine.dispose()

    pool = [threading.Thread(target=use) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert len(minted) <= 1 and len(minted) + len(refused) == 4, (minted, refused)
    for pair in minted:  # the winner's pair died with the session the replays revoked
        assert _me(w, pair.access_token) == 401
