"""`dolbom api` commands and the API's settings: no default account, one-line failures."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dolbom.api.app import create_app
from dolbom.api.settings import ENV_PREFIX, ApiSettings, load_settings
from dolbom.cli import main
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import User
from dolbom.settings import SettingsError
from tests.api.conftest import SECRET, make_settings
from tests.test_settings import _flatten

EXAMPLE = Path(__file__).parent.parent.parent / "dolbom.example.env"
NEW_PW = "the admin's long password"


def _run(monkeypatch: pytest.MonkeyPatch, url: str, *args: str, stdin: str = "") -> int:
    monkeypatch.setenv("DOLBOM_API__DATABASE_URL", url)
    monkeypatch.setenv("DOLBOM_API__JWT_SECRET", SECRET)  # audit-verify needs the chain's key
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return int(main(["api", *args]))


def _login(url: str, username: str, password: str) -> int:
    with TestClient(create_app(make_settings(url))) as c:
        return int(c.post("/api/v1/auth/token",
                          data={"username": username, "password": password}).status_code)


def test_no_default_account_until_create_admin(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh database has no users and nobody can sign in; create-admin makes the first."""
    migrate(sqlite_url)
    with session_factory(sqlite_url)() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0
    for username, password in (("admin", "admin"), ("admin", ""), ("root", "password")):
        assert _login(sqlite_url, username, password) in (401, 422)
    assert _run(monkeypatch, sqlite_url, "create-admin", "boss", "--password-stdin",
                stdin=NEW_PW + "\n") == 0
    assert "admin boss created" in capsys.readouterr().out
    assert _login(sqlite_url, "boss", NEW_PW) == 200
    with session_factory(sqlite_url)() as s:
        boss = s.scalar(select(User).where(User.username == "boss"))
        assert boss is not None and boss.role.value == "admin"
        assert boss.password_hash and boss.password_hash.startswith("$argon2id$")
    # Twice is an error, in one line.
    assert _run(monkeypatch, sqlite_url, "create-admin", "boss", "--password-stdin",
                stdin=NEW_PW + "\n") == 1
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1


def test_create_admin_refuses_a_short_password(sqlite_url: str,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    migrate(sqlite_url)
    assert _run(monkeypatch, sqlite_url, "create-admin", "boss", "--password-stdin",
                stdin="short\n") == 1
    assert "at least 12" in capsys.readouterr().err
    with session_factory(sqlite_url)() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0


def test_set_password_signs_out_and_sets(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    migrate(sqlite_url)
    assert _run(monkeypatch, sqlite_url, "create-admin", "boss", "--password-stdin",
                stdin=NEW_PW + "\n") == 0
    with TestClient(create_app(make_settings(sqlite_url))) as c:
        token = c.post("/api/v1/auth/token",
                       data={"username": "boss", "password": NEW_PW}).json()["access_token"]
        me = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/v1/me", headers=me).status_code == 200
        assert _run(monkeypatch, sqlite_url, "set-password", "boss", "--password-stdin",
                    stdin="a brand new password\n") == 0
        assert c.get("/api/v1/me", headers=me).status_code == 401
    assert _login(sqlite_url, "boss", "a brand new password") == 200
    assert _run(monkeypatch, sqlite_url, "set-password", "nobody", "--password-stdin",
                stdin="a brand new password\n") == 1
    assert "does not exist" in capsys.readouterr().err


def test_commands_before_migrate_say_so(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(monkeypatch, sqlite_url, "audit-verify") == 1
    assert "dolbom registry migrate" in capsys.readouterr().err


@pytest.mark.parametrize(("env", "value", "names"), [
    ("DOLBOM_API__JWT_SECRET", None, "DOLBOM_API__JWT_SECRET"),
    ("DOLBOM_API__JWT_SECRET", "too-short", "DOLBOM_API__JWT_SECRET"),
    ("DOLBOM_API__ACCESS_TTL_S", "3600", "DOLBOM_API__ACCESS_TTL_S"),
    ("DOLBOM_API__PORT", "http", "DOLBOM_API__PORT"),
    ("DOLBOM_API__BROKER_ACL", "broker.acl", "DOLBOM_API__BROKER_PID_FILE"),
    ("DOLBOM_API__INFLUX__TIMEOUT_S", "-1", "DOLBOM_API__INFLUX__TIMEOUT_S"),
])
def test_bad_setting_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, env: str,
                                       value: str | None, names: str) -> None:
    """A missing or short signing key, a too-long token life, …: one line naming the option."""
    monkeypatch.setenv("DOLBOM_API__JWT_SECRET", "s" * 32)
    if value is None:
        monkeypatch.delenv(env)
    else:
        monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as e:
        load_settings()
    text = str(e.value)
    assert text.startswith("config error:") and names in text and "\n" not in text


def test_serve_without_a_secret_exits_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DOLBOM_API__JWT_SECRET", raising=False)
    assert main(["api", "serve"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DOLBOM_API__JWT_SECRET" in err


def test_every_api_option_is_documented_with_its_default() -> None:
    """dolbom.example.env lists every DOLBOM_API__ option with the code's default."""
    lines = [ln for ln in EXAMPLE.read_text().splitlines() if ln and not ln.startswith("#")]
    documented = dict(ln.split("=", 1) for ln in lines)
    for env, default in _flatten(ApiSettings, ENV_PREFIX).items():
        assert env in documented, f"{env} is missing from dolbom.example.env"
        from pydantic_core import PydanticUndefined

        shown = "" if default is None or default is PydanticUndefined else str(default)
        assert documented[env] == shown, f"{env}: example says {documented[env]!r}, code {shown!r}"


def test_example_file_loads_once_a_secret_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOLBOM_API__JWT_SECRET", "s" * 32)
    settings = load_settings(EXAMPLE)
    assert settings.host == "127.0.0.1" and settings.access_ttl_s <= 900


def test_the_cli_runs_without_the_api_extra() -> None:
    """A gateway-only install (no FastAPI, SQLAlchemy, JWT, argon2) still runs `dolbom`."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'jwt',
                                  'argon2', 'jinja2', 'alembic', 'httpx'}:
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
import argparse
from dolbom.api import cli
p = argparse.ArgumentParser(); cli.register(p.add_subparsers())
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.stdout.strip() == "ok", r.stderr
