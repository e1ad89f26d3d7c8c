"""The console's pages through the real app (FastAPI TestClient) on a SQLite registry.

InfluxDB is not running here (its URL points at a closed port): the pages must still
work and say that the history is unavailable. The browser test
(tests/integration/test_console_browser.py) runs them against the real servers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.api import auth
from dolbom.api.app import create_app
from dolbom.api.console.pages import STATIC, TEMPLATES
from dolbom.api.settings import ApiSettings
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import Alert, AuditEntry, User
from dolbom.settings import InfluxSettings
from dolbom.stack.proc import free_port

PASSWORD = "correct horse battery staple"
HTML_URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}  # an XML namespace name, never fetched


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    client: TestClient
    url: str
    clock: Clock
    mine: int  # resident assigned to the worker
    other: int  # resident of another home, not assigned
    my_alert: int
    other_alert: int

    def login(self, username: str = "kim", password: str = PASSWORD) -> None:
        token = csrf_of(self.client.get("/console/login").text)
        r = self.client.post("/console/login", data={
            "username": username, "password": password, "csrf_token": token,
            "next": "/console/board"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/console/board"

    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.url)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'dolbom.db'}"
    migrate(url)
    clock = Clock()
    table = EscalationTable()
    with session_factory(url).begin() as s:
        registry.add_site(s, "s1", "Site one")
        registry.add_home(s, "h1", "s1")
        registry.add_home(s, "h2", "s1")
        mine = registry.add_resident(s, "h1", "김순자", phone="010-1234-5678").id
        other = registry.add_resident(s, "h2", "박영호").id
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
        registry.add_device(s, "btn-h2", "s1", "h2", "button", power="battery")
        kim = registry.add_user(s, "kim", "care_worker", display_name="Kim", locale="ko")
        auth.set_password(s, kim, PASSWORD, clock())
        lee = registry.add_user(s, "lee", "care_worker", display_name="Lee", locale="en")
        auth.set_password(s, lee, PASSWORD, clock())
        ryu = registry.add_user(s, "ryu", "responder", site_id="s1", locale="en")
        auth.set_password(s, ryu, PASSWORD, clock())
        registry.assign(s, "kim", mine)
        registry.assign(s, "lee", other)
        my_alert = lifecycle.raise_alert(
            s, site="s1", home="h1", rule=Rule.FALL, priority=Priority.HIGH,
            at=clock() - timedelta(seconds=20), table=table, device="ms-h1").alert_id
        other_alert = lifecycle.raise_alert(
            s, site="s1", home="h2", rule=Rule.BUTTON, priority=Priority.HIGH,
            at=clock() - timedelta(seconds=20), table=table, device="btn-h2").alert_id
    settings = ApiSettings(
        database_url=url, jwt_secret="x" * 40, cookie_secure=False,
        influx=InfluxSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5))
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        yield World(client, url, clock, mine, other, my_alert, other_alert)


def audit_count(w: World) -> int:
    with w.sessions()() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def alert_status(w: World, alert_id: int) -> str:
    with w.sessions()() as s:
        a = s.get(Alert, alert_id)
        assert a is not None
        return str(a.status)


def test_login_page_in_korean_then_english(world: World) -> None:
    """Before login the page is Korean by default and English after the switch."""
    r = world.client.get("/console/login")
    assert r.status_code == 200 and '<html lang="ko">' in r.text and "로그인" in r.text
    r = world.client.post("/console/locale", data={"locale": "en", "csrf_token": csrf_of(r.text),
                                                   "next": "/console/login"})
    assert r.status_code == 200 and '<html lang="en">' in r.text and "Sign in" in r.text


def test_login_sets_strict_httponly_cookies_and_logout_clears_them(world: World) -> None:
    """Login sets the access and refresh cookies HttpOnly and SameSite=Strict; logout ends it."""
    token = csrf_of(world.client.get("/console/login").text)
    r = world.client.post("/console/login", data={"username": "kim", "password": PASSWORD,
                                                  "csrf_token": token},
                          follow_redirects=False)
    assert r.status_code == 303
    cookies = r.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("dolbom_access="))
    refresh = next(c for c in cookies if c.startswith("dolbom_refresh="))
    for c in (access, refresh):
        assert "HttpOnly" in c and "SameSite=strict" in c.replace("Strict", "strict")
    assert "Path=/console" in refresh
    page = world.client.get("/console/board")
    assert page.status_code == 200
    r = world.client.post("/console/logout", data={"csrf_token": csrf_of(page.text)},
                          follow_redirects=False)
    assert r.status_code == 303 and "/console/login" in r.headers["location"]
    assert world.client.get("/console/board", follow_redirects=False).status_code == 303


def test_wrong_password_is_refused_without_saying_why(world: World) -> None:
    """A wrong password re-shows the form with one message and no session; repeated
    failures are rate-limited."""
    token = csrf_of(world.client.get("/console/login").text)
    r = world.client.post("/console/login", data={"username": "kim", "password": "nope",
                                                  "csrf_token": token})
    assert r.status_code == 401 and "아이디 또는 비밀번호" in r.text
    assert "dolbom_access" not in world.client.cookies
    for _ in range(10):  # the API's login limiter applies to the form too
        r = world.client.post("/console/login", data={"username": "kim", "password": "nope",
                                                      "csrf_token": token})
        if r.status_code == 429:
            break
    assert r.status_code == 429 and "잠시 후 다시" in r.text and r.headers["retry-after"]


@pytest.mark.parametrize("locale", ["ko", "en"])
def test_every_page_renders_in_both_languages(world: World, locale: str) -> None:
    """Board, inbox, alert and resident pages render in the person's language."""
    world.login()
    board = world.client.get("/console/board")
    if locale == "en":
        r = world.client.post("/console/locale", data={
            "locale": "en", "csrf_token": csrf_of(board.text), "next": "/console/board"})
        assert r.status_code == 200
        with world.sessions()() as s:  # the person's own setting changed
            assert registry.get_user(s, "kim").locale.value == "en"
    words = {"ko": ("담당 대상자", "알림함", "낙상 감지", "오늘의 활동"),
             "en": ("My residents", "Alert inbox", "Fall detected", "Indoor temperature")}[locale]
    pages = {"/console/board": words[0], "/console/alerts": words[1],
             f"/console/alerts/{world.my_alert}": words[2],
             f"/console/residents/{world.mine}": words[3]}
    for path, word in pages.items():
        r = world.client.get(path)
        assert r.status_code == 200, path
        assert f'<html lang="{locale}">' in r.text and word in r.text, path
        assert "{" not in re.sub(r"<script[^>]*>.*?</script>", "", r.text, flags=re.S), path


def test_care_worker_sees_only_assigned_residents(world: World) -> None:
    """The board lists assigned residents only; anything else is 404, not 403."""
    world.login()
    board = world.client.get("/console/board").text
    assert "김순자" in board and "박영호" not in board
    assert 'class="tile tile-alert"' in board  # the open fall makes the tile an alert
    inbox = world.client.get("/console/alerts").text
    assert f'id="alert-{world.my_alert}"' in inbox
    assert f'id="alert-{world.other_alert}"' not in inbox
    for path in (f"/console/residents/{world.other}", f"/console/alerts/{world.other_alert}",
                 f"/console/alerts/{world.other_alert}/row"):
        assert world.client.get(path).status_code == 404, path
    token = csrf_of(board)
    r = world.client.post(f"/console/alerts/{world.other_alert}/ack",
                          data={"csrf_token": token})
    assert r.status_code == 404 and alert_status(world, world.other_alert) == "open"


def test_posts_without_the_right_csrf_token_are_refused(world: World) -> None:
    """A POST with no token, a wrong one, or another session's is refused (403)."""
    world.login()
    good = csrf_of(world.client.get("/console/board").text)
    path = f"/console/alerts/{world.my_alert}/ack"
    assert world.client.post(path, data={}).status_code == 403
    assert world.client.post(path, data={"csrf_token": "0" * 64}).status_code == 403
    # another browser's valid token does not work with this browser's cookie
    other = TestClient(world.client.app)  # no second lifespan: the app is already running
    stranger = csrf_of(other.get("/console/login").text)
    assert stranger != good
    assert world.client.post(path, data={"csrf_token": stranger}).status_code == 403
    assert world.client.post(f"/console/alerts/{world.my_alert}/resolve",
                             data={"outcome": "visited_ok"}).status_code == 403
    assert world.client.post("/console/logout", data={}).status_code == 403
    assert alert_status(world, world.my_alert) == "open"
    # without the CSRF cookie at all (a cross-site request carries no cookies)
    fresh = TestClient(world.client.app)
    assert fresh.post("/console/login", data={"username": "kim", "password": PASSWORD,
                                              "csrf_token": good}).status_code == 403
    r = world.client.post(path, data={"csrf_token": good}, follow_redirects=False)
    assert r.status_code == 303 and alert_status(world, world.my_alert) == "acknowledged"


def test_acknowledge_and_resolve_in_two_taps_update_the_timeline(world: World) -> None:
    """The inbox row's buttons acknowledge, then resolve with an outcome; the timeline shows
    raised, acknowledged and resolved (the lifecycle's own events)."""
    world.login()
    inbox = world.client.get("/console/alerts").text
    token = csrf_of(inbox)
    fetch = {"X-Requested-With": "fetch"}
    r = world.client.post(f"/console/alerts/{world.my_alert}/ack", headers=fetch,
                          data={"csrf_token": token, "next": "/console/alerts"})
    assert r.status_code == 200 and 'data-status="acknowledged"' in r.text
    assert "확인" in r.headers["x-console-message"] or r.headers["x-console-message"]
    world.clock.now += timedelta(seconds=30)
    r = world.client.post(f"/console/alerts/{world.my_alert}/resolve", headers=fetch,
                          data={"csrf_token": token, "outcome": "visited_ok"})
    assert r.status_code == 200 and 'data-status="resolved"' in r.text
    r = world.client.post(f"/console/alerts/{world.my_alert}/resolve", headers=fetch,
                          data={"csrf_token": token, "outcome": "visited_ok"})
    assert r.status_code == 409  # already resolved: said, not crashed
    page = world.client.get(f"/console/alerts/{world.my_alert}").text
    kinds = re.findall(r'data-kind="(\w+)"', page)
    assert kinds == ["raised", "acknowledged", "resolved"]
    assert "방문 확인" in page  # the outcome, in words
    with world.sessions()() as s:
        a = s.get(Alert, world.my_alert)
        assert a is not None and a.outcome == "visited_ok"
        kim = registry.get_user(s, "kim")
        assert a.acknowledged_by == kim.id and a.resolved_by == kim.id


def test_resolve_refuses_the_systems_outcome(world: World) -> None:
    """auto_cleared (and any unknown word) is not a person's outcome."""
    world.login()
    token = csrf_of(world.client.get("/console/alerts").text)
    for outcome in ("auto_cleared", "bogus", ""):
        r = world.client.post(f"/console/alerts/{world.my_alert}/resolve",
                              data={"csrf_token": token, "outcome": outcome})
        assert r.status_code == 409, outcome
    assert alert_status(world, world.my_alert) == "open"


def test_every_resident_data_page_writes_an_audit_entry(world: World) -> None:
    """Board, inbox, alert, row, resident page, and each change: one entry or more, by kim."""
    world.login()
    token = csrf_of(world.client.get("/console/login", follow_redirects=True).text)
    steps = [
        ("GET", "/console/board", {}), ("GET", "/console/alerts", {}),
        ("GET", f"/console/alerts/{world.my_alert}", {}),
        ("GET", f"/console/alerts/{world.my_alert}/row", {}),
        ("GET", f"/console/residents/{world.mine}", {}),
        ("POST", f"/console/alerts/{world.my_alert}/note", {"text": "called the family"}),
        ("POST", f"/console/alerts/{world.my_alert}/ack", {}),
        ("POST", f"/console/alerts/{world.my_alert}/resolve", {"outcome": "false_alarm"}),
    ]
    for method, path, form in steps:
        before = audit_count(world)
        if method == "GET":
            r = world.client.get(path)
        else:
            r = world.client.post(path, data={**form, "csrf_token": token},
                                  follow_redirects=False)
        assert r.status_code in (200, 303), (path, r.status_code)
        assert audit_count(world) > before, path
        with world.sessions()() as s:
            last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
            assert last is not None and last.actor == "kim", path
            if "/residents/" in path or "/alerts/" in path:
                assert last.resident_id == world.mine, path
    # a page outside the scope is not audited as a read of that resident
    before = audit_count(world)
    assert world.client.get(f"/console/residents/{world.other}").status_code == 404
    assert audit_count(world) == before


def test_expired_access_token_is_refreshed_or_sends_to_login(world: World) -> None:
    """After the access token expires the page still loads (refreshed cookie); without a
    valid refresh token the browser goes to the login page and comes back after it."""
    world.login()
    world.clock.now += timedelta(seconds=ApiSettings.model_fields["access_ttl_s"].default + 5)
    r = world.client.get("/console/board", follow_redirects=False)
    assert r.status_code == 200
    assert any(c.startswith("dolbom_access=") for c in r.headers.get_list("set-cookie"))
    token = csrf_of(r.text)
    world.clock.now += timedelta(days=40)  # past the refresh token's life too
    r = world.client.get(f"/console/residents/{world.mine}", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=%2Fconsole%2Fresidents")
    # a form sent after the session ended: nothing changes, back to where it was after login
    r = world.client.post(f"/console/alerts/{world.my_alert}/ack", follow_redirects=False,
                          data={"csrf_token": token, "next": "/console/alerts"})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Falerts&msg=expired"
    assert alert_status(world, world.my_alert) == "open"
    assert "세션이 끝났습니다" in world.client.get(r.headers["location"]).text
    r = world.client.get(f"/console/alerts/{world.my_alert}/row",
                         headers={"X-Requested-With": "fetch"})
    assert r.status_code == 401  # the page's script is told, not redirected


def test_pages_send_security_headers_and_work_without_influxdb(world: World) -> None:
    """CSP allows this origin only; with InfluxDB down the resident page says so."""
    world.login()
    r = world.client.get(f"/console/residents/{world.mine}")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert r.headers["cache-control"] == "no-store"
    assert "기록 서버에 연결할 수 없어" in r.text
    assert "010-1234-5678" in r.text  # the care worker sees the phone number to call


def test_no_page_or_asset_references_another_host(world: World) -> None:
    """Templates, static files and rendered pages load nothing from another host."""
    for p in [*TEMPLATES.glob("*"), *STATIC.glob("*")]:
        urls = set(HTML_URL.findall(p.read_text())) - ALLOWED_URLS
        assert not urls, (p.name, urls)
    world.login()
    for path in ("/console/login", "/console/board", "/console/alerts",
                 f"/console/alerts/{world.my_alert}", f"/console/residents/{world.mine}"):
        html = world.client.get(path).text
        assert not set(HTML_URL.findall(html)) - ALLOWED_URLS, path
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert ref.startswith(("/", "#", "tel:")), (path, ref)
    for asset in ("/static/console.css", "/static/console.js", "/static/favicon.svg"):
        assert world.client.get(asset).status_code == 200, asset


def test_touch_targets_and_labels(world: World) -> None:
    """Controls are at least 44 px and every form field has a label."""
    css = (STATIC / "console.css").read_text()
    assert "--tap: 44px" in css and "min-height: var(--tap)" in css
    html = world.client.get("/console/login").text
    for field_id in re.findall(r'<input id="(\w+)"', html):
        assert f'<label for="{field_id}">' in html


def test_other_users_cannot_be_seen_by_count(world: World) -> None:
    """The open-alerts count in the menu counts only what the person may see."""
    world.login()
    html = world.client.get("/console/board").text
    m = re.search(r'id="nav-open-count" data-count="(\d+)"', html)
    assert m and m.group(1) == "1"
    with world.sessions()() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 2
        assert s.scalar(select(func.count()).select_from(User)) == 3


def test_responder_sees_life_safety_alerts_with_whom_to_reach(world: World) -> None:
    """A responder works life-safety alerts with the name and phone needed to respond,
    and has no resident pages (their names are not links)."""
    world.login("ryu")
    inbox = world.client.get("/console/alerts").text
    assert f'id="alert-{world.my_alert}"' in inbox and f'id="alert-{world.other_alert}"' in inbox
    assert "김순자" in inbox and "/console/residents/" not in inbox
    page = world.client.get(f"/console/alerts/{world.my_alert}").text
    assert 'href="tel:010-1234-5678"' in page
    assert world.client.get(f"/console/residents/{world.mine}").status_code == 404
    assert "No residents are assigned to you." in world.client.get("/console/board").text


def test_session_refresh_endpoint_for_the_live_stream(world: World) -> None:
    """The page's script renews an expired access cookie (CSRF header required); without a
    valid refresh token it is told 401 and sends the person to the login page."""
    world.login()
    token = csrf_of(world.client.get("/console/board").text)
    url = "/console/session/refresh"
    assert world.client.post(url).status_code == 403  # no X-CSRF-Token
    assert world.client.post(url, headers={"X-CSRF-Token": token}).status_code == 204
    world.clock.now += timedelta(seconds=ApiSettings.model_fields["access_ttl_s"].default + 5)
    r = world.client.post(url, headers={"X-CSRF-Token": token})
    assert r.status_code == 204
    assert any(c.startswith("dolbom_access=") for c in r.headers.get_list("set-cookie"))
    world.clock.now += timedelta(days=40)
    assert world.client.post(url, headers={"X-CSRF-Token": token}).status_code == 401


def test_the_watch_list_shows_todays_weak_signals_of_my_residents_only(world: World) -> None:
    """A worker's watch list has the last day's items of their residents' homes, in their
    language; another home's items and yesterday's are not there; responders get 404."""
    from dolbom.registry.models import WatchItem

    now = world.clock()
    with world.sessions().begin() as s:
        for home, at, en in (("h1", now - timedelta(hours=2), "plug not used for 30 h"),
                             ("h2", now - timedelta(hours=1), "door not used for 4 days"),
                             ("h1", now - timedelta(hours=30), "up at night")):
            s.add(WatchItem(site_id="s1", home_id=home, rule="no_power_use", at=at,
                            reasons={"en": [en], "ko": [en + " (ko)"]}))
    world.login()
    page = world.client.get("/console/watch")
    assert page.status_code == 200
    assert "오늘의 관찰 목록" in page.text and "plug not used for 30 h (ko)" in page.text
    assert "김순자" in page.text and "박영호" not in page.text
    assert "door not used" not in page.text and "up at night" not in page.text
    with world.sessions()() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.action == "console.watch"
    assert 'href="/console/watch"' in world.client.get("/console/board").text
    world.client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    world.login("ryu")
    assert world.client.get("/console/watch").status_code == 404
