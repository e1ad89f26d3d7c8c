"""``dolbom api``: serve the HTTP API and console, manage sign-in, verify the audit log.

There are no default accounts: the first admin is made by ``dolbom api create-admin``.
FastAPI and uvicorn are imported inside the commands, so an install without the ``api``
extra (a gateway) still runs ``dolbom``. Every failure prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from dolbom.settings import SettingsError, env_file_parent

if TYPE_CHECKING:  # imported inside the commands: a gateway install has no uvicorn
    import uvicorn
    from starlette.types import ASGIApp

    from dolbom.api.settings import ApiSettings

Handler = Callable[[argparse.Namespace], int]
SHUTDOWN_S = 10


class _DbSettings(BaseSettings):
    """Only the database: managing accounts needs no signing key."""

    model_config = SettingsConfigDict(env_prefix="DOLBOM_API__", env_nested_delimiter="__",
                                      extra="ignore", env_ignore_empty=True)
    database_url: str = "sqlite:///dolbom.db"


def _db_url(env_file: Path | None) -> str:
    try:
        if env_file is not None:
            if not env_file.is_file():
                raise SettingsError(f"config error: env file {env_file} does not exist")
            return _DbSettings(_env_file=env_file).database_url
        return _DbSettings().database_url
    except ValidationError as e:
        raise SettingsError(f"config error: {e.errors()[0]['msg']}") from None


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


class _Refused(Exception):
    """A command cannot do what was asked (one line to stderr, exit 1)."""


def _command(fn: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        # Imported here: a gateway-only install has no SQLAlchemy, and must still run `dolbom`.
        from sqlalchemy.exc import SQLAlchemyError

        from dolbom.registry.errors import RegistryError

        try:
            return fn(args)
        except SettingsError as e:
            _err(str(e))
        except (RegistryError, _Refused) as e:
            _err(f"error: {e}")
        except SQLAlchemyError as e:
            first = str(getattr(e, "orig", e)).strip().splitlines()[:1]
            msg = f"database error: {first[0] if first else type(e).__name__}"
            if "no such table" in msg or "does not exist" in msg:
                msg += " (run `dolbom registry migrate` first)"
            _err(msg)
        except (OSError, EOFError) as e:
            _err(f"error: {e or type(e).__name__}")
        return 1

    return run


def _read_password(args: argparse.Namespace) -> str:
    from dolbom.api.auth import check_password_policy

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != password:
            raise _Refused("the two passwords differ")
    try:
        check_password_policy(password)
    except ValueError as e:
        raise _Refused(str(e)) from None
    return password


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dolbom.api.app import create_app
    from dolbom.api.settings import load_settings

    settings = load_settings(args.env_file)
    refusal = settings.serve_refusal()
    if refusal is not None:
        raise _Refused(refusal)
    app = create_app(settings)
    bus = app.state.ctx.bus

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Alert streams never end by themselves: end them first (clients reconnect to
            # another instance with Last-Event-ID), then requests get SHUTDOWN_S to finish.
            bus.close_streams()
            super().handle_exit(sig, frame)

    Server(server_config(app, settings)).run()
    return 0


def server_config(app: ASGIApp, settings: ApiSettings, **overrides: Any) -> uvicorn.Config:
    """How ``dolbom api serve`` runs the app under uvicorn.

    uvicorn's own proxy-header handling is off (it trusts 127.0.0.1 by default): the app
    honours X-Forwarded-* only from ``DOLBOM_API__TRUSTED_PROXIES`` (dolbom.api.proxy)."""
    import uvicorn

    options: dict[str, Any] = dict(host=settings.host, port=settings.port, log_level="info",
                                   proxy_headers=False, server_header=False,
                                   timeout_graceful_shutdown=SHUTDOWN_S)
    options.update(overrides)
    return uvicorn.Config(app, **options)


def _create_admin(args: argparse.Namespace) -> int:
    from dolbom.api.auth import set_password
    from dolbom.registry import service
    from dolbom.registry.db import session_factory

    url = _db_url(args.env_file)
    password = _read_password(args)
    with session_factory(url).begin() as s:
        user = service.add_user(s, args.username, "admin", display_name=args.name)
        set_password(s, user, password, datetime.now(UTC))
    print(f"admin {args.username} created")
    return 0


def _set_password(args: argparse.Namespace) -> int:
    from dolbom.api.auth import set_password
    from dolbom.registry import service
    from dolbom.registry.db import session_factory

    url = _db_url(args.env_file)
    with session_factory(url)() as s:
        service.get_user(s, args.username)  # fail before asking for a password
    password = _read_password(args)
    with session_factory(url).begin() as s:
        set_password(s, service.get_user(s, args.username), password, datetime.now(UTC))
    print(f"password of {args.username} set; their existing sessions are signed out")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from dolbom.api.audit import load_key, read_checkpoints, verify_chain
    from dolbom.api.settings import load_settings
    from dolbom.registry.db import session_factory

    settings = load_settings(args.env_file)
    try:
        key = load_key(settings)
        path = settings.audit_checkpoint_file
        marks = read_checkpoints(path) if path is not None and path.exists() else []
    except ValueError as e:
        raise SettingsError(f"config error: {e}") from None
    with session_factory(settings.database_url)() as s:
        result = verify_chain(s, key, marks, unkeyed_until=settings.audit_unkeyed_until)
    if result.ok:
        print(f"audit log intact: {result.entries} entries"
              + (f", {len(marks)} checkpoints agree" if marks else ""))
        return 0
    _err(f"audit log BROKEN at entry {result.first_bad_id}: {result.reason}")
    return 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = env_file_parent("read DOLBOM_API__* settings from this file too")
    p = subparsers.add_parser("api", help="the HTTP API and care-worker console")
    sub = p.add_subparsers(dest="api_command", metavar="COMMAND", required=True)

    def leaf(name: str, help_: str, fn: Handler) -> argparse.ArgumentParser:
        q = sub.add_parser(name, parents=[common], help=help_, description=help_)
        q.set_defaults(func=_command(fn))
        return q

    leaf("serve", "serve the API and console (uvicorn; DOLBOM_API__HOST / __PORT)", _serve)
    q = leaf("create-admin", "create an admin who can sign in (there is no default account)",
             _create_admin)
    q.add_argument("username")
    q.add_argument("--name", help="display name")
    q.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin instead of prompting")
    q = leaf("set-password", "set a person's password (signs out their existing sessions)",
             _set_password)
    q.add_argument("username")
    q.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin instead of prompting")
    leaf("audit-verify", "verify the audit log's keyed chain and its checkpoints; exit 2 "
                         "naming the first broken entry", _audit_verify)
