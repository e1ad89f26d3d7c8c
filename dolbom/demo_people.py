"""The demo's people and a terminal "pager": who gets the alerts, and what they see.

A care worker assigned to some of the simulated residents (every other one, and always
the resident of the home where the demo's scripted fall happens) and a responder, both
reachable by webhook at a small receiver inside the demo that checks each notice's
signature and prints it, so a newcomer watches alerts flow. One resident gets a short
inactivity threshold so a welfare alert can be seen within minutes
(`dolbom sim inject silence`).

For the console, an admin (who sees every resident) and the care worker (who sees only
theirs) get a random password each, generated here and shown once by the demo: there
are no default passwords (README, "Security by default").
"""

from __future__ import annotations

import contextlib
import secrets
from collections import deque
from datetime import UTC, datetime

import orjson
from aiohttp import web
from sqlalchemy import select

from dolbom.alerts.notify.base import verify
from dolbom.alerts.recipients import contacts_of
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.errors import AlreadyExists
from dolbom.registry.models import Assignment, Resident
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack

WORKER, RESPONDER, ADMIN = "demo-worker", "demo-responder", "demo-admin"


def demo_people(stack: Stack, quick_home: str, hook_url: str) -> None:
    """Create (once) the demo's care worker and responder, reachable at ``hook_url``."""
    with session_factory(stack.database_url).begin() as s:
        for username, role in ((WORKER, "care_worker"), (RESPONDER, "responder")):
            try:
                registry.add_user(s, username, role, display_name=username, locale="en")
            except AlreadyExists:
                continue  # a second run: the people are there
            registry.add_contact(s, username, "webhook", hook_url)
            if role == "care_worker":
                for i, r in enumerate(s.scalars(select(Resident).order_by(Resident.id))):
                    # Some residents, not all: the console shows a care worker only theirs.
                    if i % 2 == 0 or r.home_id == quick_home:
                        registry.assign(s, username, r.id)
                    if r.home_id == quick_home:
                        registry.set_resident_setting(s, r.id, "inactivity_caution_h", 0.1)
        # The receiver's port is new on every run: point the contacts at this run's.
        for username in (WORKER, RESPONDER):
            for c in contacts_of(s, registry.get_user(s, username).id):
                c.address = f"{hook_url}?to={username}"


def console_logins(database_url: str) -> dict[str, str]:
    """Give the demo admin and care worker a console password, the first time only.

    Returns {username: password} for the passwords set now (empty on later runs): the
    caller prints them once; they are stored only as argon2 hashes.
    """
    from dolbom.api.auth import set_password  # the api extra: only when the demo runs

    created: dict[str, str] = {}
    with session_factory(database_url).begin() as s:
        with contextlib.suppress(AlreadyExists):  # a second run: the admin is there
            registry.add_user(s, ADMIN, "admin", display_name="Demo admin", locale="en")
        for username in (ADMIN, WORKER):
            user = registry.get_user(s, username)
            if user.password_hash is None:
                password = secrets.token_urlsafe(12)
                set_password(s, user, password, datetime.now(UTC))
                created[username] = password
    return created


def assigned_count(database_url: str) -> tuple[int, int]:
    """(residents assigned to the demo care worker, all residents)."""
    with session_factory(database_url)() as s:
        user = registry.get_user(s, WORKER)
        mine = len(list(s.scalars(select(Assignment.resident_id)
                                  .where(Assignment.user_id == user.id))))
        return mine, len(list(s.scalars(select(Resident.id))))


class NoticePrinter:
    """A webhook receiver on loopback that verifies signatures and keeps lines to print."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.lines: deque[str] = deque(maxlen=100)
        self.count = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/notify", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/notify"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(body, self.secret, request.headers.get("X-Dolbom-Signature", "")):
            return web.Response(status=401, text="bad signature")
        notice = orjson.loads(body)
        self.count += 1
        who = request.query.get("to", "?")
        self.lines.append(f"notice to {who}: {notice.get('text', '').splitlines()[0]}")
        return web.Response(status=204)

    def take(self) -> list[str]:
        out = list(self.lines)
        self.lines.clear()
        return out
