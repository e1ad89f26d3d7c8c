"""A care registry with every role, an API app on it, and a client per person.

Each home has one resident, one device and one alert, so "may see the resident" and "may
see the home / device / alert" are the same question (tests/api/test_access.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.api import auth
from dolbom.api.app import create_app
from dolbom.api.settings import ApiSettings
from dolbom.registry import service as registry
from dolbom.registry.db import make_engine, migrate
from dolbom.registry.models import Assignment, User, UserRole
from dolbom.settings import InfluxSettings
from dolbom.stack.proc import free_port

PASSWORD = "a long enough password"
SECRET = "k" * 40


class Clock:
    """An injected clock: tests move it, they do not sleep."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# home → (site, resident name, device, alert rule)
HOMES: dict[str, tuple[str, str, str, Rule]] = {
    "h1": ("s1", "김영희", "d-h1", Rule.FALL),
    "h2": ("s1", "박철수", "d-h2", Rule.INACTIVITY),
    "h3": ("s1", "이순자", "d-h3", Rule.BUTTON),
    "h4": ("s2", "최민수", "d-h4", Rule.DEVICE_LOST),
}
PRIORITY = {Rule.FALL: Priority.HIGH, Rule.BUTTON: Priority.HIGH,
            Rule.INACTIVITY: Priority.MEDIUM, Rule.DEVICE_LOST: Priority.LOW}
# username → (role, site)
PEOPLE: dict[str, tuple[UserRole, str | None]] = {
    "admin": (UserRole.ADMIN, None),
    "sup1": (UserRole.SUPERVISOR, "s1"),
    "sup2": (UserRole.SUPERVISOR, "s2"),
    "w1": (UserRole.CARE_WORKER, "s1"),
    "w2": (UserRole.CARE_WORKER, "s1"),
    "w3": (UserRole.CARE_WORKER, None),
    "resp1": (UserRole.RESPONDER, "s1"),
}
ASSIGNED = {("w1", "h1"), ("w2", "h2"), ("w3", "h4")}


@dataclass
class World:
    url: str
    clock: Clock
    sessions: sessionmaker[Session]
    client: TestClient
    settings: ApiSettings
    residents: dict[str, int] = field(default_factory=dict)  # home → resident id
    alerts: dict[str, int] = field(default_factory=dict)  # home → alert id
    users: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        if username not in self.tokens:
            r = self.client.post("/api/v1/auth/token",
                                 data={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["access_token"]
        return self.tokens[username]

    def h(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def get(self, username: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.h(username), **kw)

    def post(self, username: str, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self.h(username), **kw)

    def set_assigned(self, username: str, home: str, assigned: bool) -> None:
        """Change an assignment from outside the API (as the CLI would)."""
        with self.sessions.begin() as s:
            key = (self.users[username], self.residents[home])
            row = s.get(Assignment, key)
            if assigned and row is None:
                s.add(Assignment(user_id=key[0], resident_id=key[1]))
            elif not assigned and row is not None:
                s.delete(row)


def seed(s: Session, clock: Clock) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    residents, alerts, users = {}, {}, {}
    registry.add_site(s, "s1", "Site one")
    registry.add_site(s, "s2", "Site two")
    table = EscalationTable()
    for home, (site, name, dev, rule) in HOMES.items():
        registry.add_home(s, home, site)
        r = registry.add_resident(s, home, name, phone="010-0000-0000", address=f"{home} street")
        residents[home] = r.id
        registry.add_device(s, dev, site, home, "multisensor")
        alerts[home] = lifecycle.raise_alert(
            s, site=site, home=home, rule=rule, priority=PRIORITY[rule],
            at=clock() - timedelta(seconds=30), table=table, device=dev).alert_id
    for username, (role, user_site) in PEOPLE.items():
        u = User(username=username, display_name=username, role=role, site_id=user_site,
                 active=True)
        s.add(u)
        s.flush()
        auth.set_password(s, u, PASSWORD, clock())
        users[username] = u.id
    for username, home in ASSIGNED:
        s.add(Assignment(user_id=users[username], resident_id=residents[home]))
    s.flush()
    return residents, alerts, users


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still argon2id, with test-sized costs: the suite hashes hundreds of times."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=64,
                                                        parallelism=1))
    monkeypatch.setattr(auth, "_dummy_hash", None)


def make_settings(url: str, **kw: Any) -> ApiSettings:
    base: dict[str, Any] = dict(
        database_url=url, jwt_secret=SECRET, cookie_secure=False, sse_poll_s=0.05,
        # No InfluxDB here: a closed port (views answer 503; tests/api/test_views.py has one).
        influx=InfluxSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5))
    base.update(kw)
    return ApiSettings(**base)


@pytest.fixture()
def make_world() -> Iterator[Any]:
    """Factory: a seeded, migrated database at ``url`` and an app (TestClient) on it."""
    opened: list[tuple[TestClient, Any]] = []

    def make(url: str, **settings_kw: Any) -> World:
        migrate(url)
        clock = Clock()
        engine = make_engine(url)
        sessions = sessionmaker(bind=engine, expire_on_commit=False)
        with sessions.begin() as s:
            residents, alerts, users = seed(s, clock)
        settings = make_settings(url, **settings_kw)
        client = TestClient(create_app(settings, clock=clock))
        client.__enter__()
        opened.append((client, engine))
        return World(url, clock, sessions, client, settings, residents, alerts, users)

    yield make
    for client, engine in opened:
        client.__exit__(None, None, None)
        engine.dispose()


@pytest.fixture()
def world(make_world: Any, sqlite_url: str) -> World:
    """The world on SQLite (tests about the API, not the store)."""
    w: World = make_world(sqlite_url)
    return w


@pytest.fixture()
def store_world(make_world: Any, db_url: str) -> World:
    """The world on SQLite and on the real PostgreSQL (store-sensitive tests)."""
    w: World = make_world(db_url)
    return w
