"""Sign-in, tokens and their negatives: every bad token is a 401 with WWW-Authenticate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest

from dolbom.api import auth
from dolbom.api.auth import LoginLimiter, RateLimited
from tests.api.conftest import PASSWORD, SECRET, World

ME = "/api/v1/me"


def _claims(w: World, username: str, **over: Any) -> dict[str, Any]:
    """Claims of a token for ``username``, of the sign-in session of a real login."""
    real = jwt.decode(w.token(username), SECRET, algorithms=["HS256"],
                      options={"verify_exp": False, "verify_iat": False})
    iat = int(w.clock().timestamp())
    c: dict[str, Any] = {"sub": str(w.users[username]), "typ": "access", "iat": iat,
                         "exp": iat + 300, "ver": 1, "sid": real["sid"], "jti": "crafted"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def _me(w: World, token: str) -> Any:
    return w.client.get(ME, headers={"Authorization": f"Bearer {token}"})


def _is_401(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert isinstance(r.json()["detail"], str)


def test_login_gives_short_lived_tokens_that_work(world: World) -> None:
    """The password flow returns an access token ≤ 15 min with exp/iat/sub/typ, and /me works."""
    r = world.client.post("/api/v1/auth/token", data={"username": "w1", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 900
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert {"exp", "iat", "sub", "typ"} <= claims.keys() and claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] <= 900
    assert _me(world, body["access_token"]).json()["username"] == "w1"


def test_wrong_password_and_unknown_user_get_the_same_answer(world: World) -> None:
    """No telling which usernames exist."""
    a = world.client.post("/api/v1/auth/token", data={"username": "w1", "password": "nope"})
    b = world.client.post("/api/v1/auth/token", data={"username": "ghost", "password": "nope"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_expired_token_is_refused(world: World) -> None:
    """An access token stops working at its exp (injected clock, no sleeping)."""
    token = world.token("w1")
    assert _me(world, token).status_code == 200
    world.clock.advance(world.settings.access_ttl_s)
    _is_401(_me(world, token))


@pytest.mark.parametrize("case", ["alg_none", "wrong_key", "missing_exp", "missing_sub",
                                  "missing_typ", "refresh_as_access", "garbage", "hs512",
                                  "too_long_lifetime", "missing_sid", "foreign_sid"])
def test_bad_tokens_are_refused(world: World, case: str) -> None:
    """alg none, a wrong key, missing claims, a refresh token, another alg: all 401."""
    world.token("w1")  # the user exists and has signed in
    claims = _claims(world, "w1")
    if case == "alg_none":
        token = jwt.encode(claims, None, algorithm="none")
    elif case == "wrong_key":
        token = jwt.encode(claims, "z" * 40, algorithm="HS256")
    elif case == "missing_exp":
        token = jwt.encode(_claims(world, "w1", exp=None), SECRET, algorithm="HS256")
    elif case == "missing_sub":
        token = jwt.encode(_claims(world, "w1", sub=None), SECRET, algorithm="HS256")
    elif case == "missing_typ":
        token = jwt.encode(_claims(world, "w1", typ=None), SECRET, algorithm="HS256")
    elif case == "refresh_as_access":
        r = world.client.post("/api/v1/auth/token", data={"username": "w1",
                                                          "password": PASSWORD})
        token = r.json()["refresh_token"]
    elif case == "hs512":
        token = jwt.encode(claims, SECRET, algorithm="HS512")
    elif case == "missing_sid":
        token = jwt.encode(_claims(world, "w1", sid=None), SECRET, algorithm="HS256")
    elif case == "foreign_sid":  # another person's session does not make w1's token valid
        token = jwt.encode(_claims(world, "w1", sid=_claims(world, "w2")["sid"]), SECRET,
                           algorithm="HS256")
    elif case == "too_long_lifetime":
        token = jwt.encode(_claims(world, "w1", exp=claims["iat"] + 86_400), SECRET,
                           algorithm="HS256")
    else:
        token = "not.a.jwt"
    _is_401(_me(world, token))


def test_a_correctly_signed_token_is_accepted(world: World) -> None:
    """The negative cases above fail for their defect, not for the token shape."""
    token = jwt.encode(_claims(world, "w1"), SECRET, algorithm="HS256")
    assert _me(world, token).status_code == 200


def test_no_token_and_other_schemes_are_refused(world: World) -> None:
    _is_401(world.client.get(ME))
    _is_401(world.client.get(ME, headers={"Authorization": "Basic dzE6eA=="}))


def test_deactivated_user_is_refused_at_the_next_request(world: World) -> None:
    """Deactivation stops the person's current token and their next sign-in."""
    token = world.token("w1")
    r = world.post("admin", "/api/v1/users/w1/deactivate")
    assert r.status_code == 200 and r.json()["active"] is False
    _is_401(_me(world, token))
    r = world.client.post("/api/v1/auth/token", data={"username": "w1", "password": PASSWORD})
    assert r.status_code == 401


def test_deactivated_in_the_database_is_refused(world: World) -> None:
    """users.active = false set by anyone (CLI, SQL) is honoured at the next request."""
    from dolbom.registry.models import User

    token = world.token("w2")
    with world.sessions.begin() as s:
        u = s.get(User, world.users["w2"])
        assert u is not None
        u.active = False
    _is_401(_me(world, token))


def test_password_change_revokes_old_tokens(world: World) -> None:
    """After a password change every earlier access and refresh token stops working."""
    r = world.client.post("/api/v1/auth/token", data={"username": "w1", "password": PASSWORD})
    old = r.json()
    headers = {"Authorization": f"Bearer {old['access_token']}"}
    r = world.client.post("/api/v1/me/password", headers=headers,
                          json={"current_password": PASSWORD,
                                "new_password": "another long password"})
    assert r.status_code == 204, r.text
    _is_401(_me(world, old["access_token"]))
    r = world.client.post("/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]})
    assert r.status_code == 401
    r = world.client.post("/api/v1/auth/token", data={"username": "w1",
                                                      "password": "another long password"})
    assert r.status_code == 200


def test_refresh_gives_a_new_pair_and_access_tokens_are_not_refresh_tokens(
        world: World) -> None:
    r = world.client.post("/api/v1/auth/token", data={"username": "w1", "password": PASSWORD})
    pair = r.json()
    world.clock.advance(world.settings.access_ttl_s + 1)  # access expired, refresh not
    _is_401(_me(world, pair["access_token"]))
    r = world.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 200
    assert _me(world, r.json()["access_token"]).status_code == 200
    r = world.client.post("/api/v1/auth/refresh",
                          json={"refresh_token": r.json()["access_token"]})
    assert r.status_code == 401
    world.clock.advance(world.settings.refresh_ttl_s + 1)
    r = world.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401


def test_cookie_authenticates_safe_methods_only(world: World) -> None:
    """The console cookie works for GET, never for a change (CSRF is impossible)."""
    token = world.token("w1")
    world.client.cookies.set("dolbom_access", token)
    try:
        assert world.client.get(ME).status_code == 200
        r = world.client.post(f"/api/v1/alerts/{world.alerts['h1']}/ack")
        _is_401(r)
    finally:
        world.client.cookies.clear()


def test_login_rate_limit_per_username_and_ip(world: World) -> None:
    """After N failures the pair is refused (even with the right password) until the window
    passes; other usernames are unaffected."""
    n = world.settings.login_max_failures
    for _ in range(n):
        r = world.client.post("/api/v1/auth/token", data={"username": "w2", "password": "x"})
        assert r.status_code == 401
    r = world.client.post("/api/v1/auth/token", data={"username": "w2", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert world.client.post("/api/v1/auth/token",
                             data={"username": "w1", "password": PASSWORD}).status_code == 200
    world.clock.advance(world.settings.login_window_s)
    r = world.client.post("/api/v1/auth/token", data={"username": "w2", "password": PASSWORD})
    assert r.status_code == 200
    metrics = world.client.get("/metrics").text
    assert 'dolbom_api_login_failures_total{reason="rate_limited"} 1.0' in metrics
    assert f'dolbom_api_login_failures_total{{reason="bad_credentials"}} {float(n)}' in metrics


def test_limiter_sliding_window_and_bounded_memory() -> None:
    """The limiter forgets old failures and never holds more than max_keys pairs."""
    lim = LoginLimiter(max_failures=2, window_s=10, max_keys=3)
    k = ("a", "1.2.3.4")
    lim.failed(k, 0)
    lim.failed(k, 5)
    with pytest.raises(RateLimited) as e:
        lim.check(k, 6)
    assert e.value.retry_after_s == 4
    lim.check(k, 10.5)  # the first failure left the window
    for i in range(10):
        lim.failed((f"u{i}", "ip"), 1)
    assert len(lim._fails) <= 3


def test_passwords_are_argon2_hashes() -> None:
    h = auth.hash_password("a long enough password")
    assert h.startswith("$argon2id$")
    assert auth.verify_password(h, "a long enough password")
    assert not auth.verify_password(h, "wrong")
    assert not auth.verify_password(None, "x") and not auth.verify_password("garbage", "x")


def test_expired_is_checked_against_the_injected_clock(world: World) -> None:
    """A token is valid until exp by the app's clock, not the wall clock."""
    token = world.token("w3")
    world.clock.advance(world.settings.access_ttl_s - 1)
    assert _me(world, token).status_code == 200
    world.clock.now += timedelta(seconds=1)
    _is_401(_me(world, token))
