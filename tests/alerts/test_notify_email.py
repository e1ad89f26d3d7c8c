"""E-mail channel against a real SMTP server (aiosmtpd) on a free loopback port."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from dolbom.alerts.notify import DeliveryError, Notice, render
from dolbom.alerts.notify.email import EmailChannel

SENDER = "alerts@dolbom.example.org"
T0 = datetime(2025, 11, 21, 3, 0, 5, tzinfo=UTC)


def notice(**kw: Any) -> Notice:
    base: dict[str, Any] = dict(
        alert_id=7, rule="inactivity", priority="medium", status="open", site="demo",
        home="h003", device=None, raised_at=T0, event_ts=None, kind="raised", tier=1,
        detail={"tier": 2}, console_url="https://care.example.org/alerts/7")
    base.update(kw)
    return Notice(**base)


@dataclass
class Mailbox:
    """Accepts mail except for the refused addresses (550 or 450, as their names say)."""

    received: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.startswith("refused@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"dolbom"
          and auth_data.password == b"right-password")
    return AuthResult(success=ok, handled=False)


@pytest.fixture()
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (no TLS; AUTH allowed in clear on loopback), stopped after the test."""
    box = Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port, authenticator=authenticate,
                     auth_require_tls=False, ready_timeout=5)
    ctl.start()
    yield box, port
    ctl.stop()


def channel(port: int, **kw: Any) -> EmailChannel:
    args: dict[str, Any] = dict(host="127.0.0.1", port=port, username=None, password=None,
                                sender=SENDER, starttls=False, timeout_s=5)
    args.update(kw)
    return EmailChannel(**args)


def parse(envelope: Envelope) -> EmailMessage:
    assert isinstance(envelope.content, bytes)
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_korean_subject_and_body_arrive_intact(smtp: tuple[Mailbox, int]) -> None:
    """The received message decodes to exactly the Korean title and body."""
    box, port = smtp
    n = notice()
    await channel(port).send("worker@care.example.org", n, "ko")
    (env,) = box.received
    assert env.mail_from == SENDER and env.rcpt_tos == ["worker@care.example.org"]
    assert isinstance(env.content, bytes) and env.content.isascii()  # safe through any relay
    msg = parse(env)
    title, body = render(n, "ko")
    assert msg["Subject"] == title == "[경고] 활동 없음 24시간 (경보) — 가구 h003 (센터 demo)"
    assert msg.get_content().rstrip("\n") == body
    assert msg["X-Dolbom-Delivery"] == "7-raised-1"
    assert msg["Auto-Submitted"] == "auto-generated"


async def test_smtp_auth(smtp: tuple[Mailbox, int]) -> None:
    """With credentials the channel logs in; a wrong password is not retried."""
    box, port = smtp
    await channel(port, username="dolbom", password="right-password").send(
        "worker@care.example.org", notice(), "en")
    assert len(box.received) == 1
    with pytest.raises(DeliveryError) as ei:
        await channel(port, username="dolbom", password="wrong").send(
            "worker@care.example.org", notice(), "en")
    assert not ei.value.retryable


async def test_refused_recipient_is_not_retryable(smtp: tuple[Mailbox, int]) -> None:
    """550 for the recipient will not change: give up on this address; no address in reason."""
    _, port = smtp
    with pytest.raises(DeliveryError) as ei:
        await channel(port).send("refused@care.example.org", notice(), "en")
    assert not ei.value.retryable
    assert "550" in ei.value.reason and "refused@" not in ei.value.reason


async def test_temporarily_refused_recipient_is_retryable(smtp: tuple[Mailbox, int]) -> None:
    """450 (mailbox busy, greylisting) is retried later."""
    _, port = smtp
    with pytest.raises(DeliveryError) as ei:
        await channel(port).send("busy@care.example.org", notice(), "en")
    assert ei.value.retryable


async def test_server_down_is_retryable() -> None:
    """Nobody listening on the SMTP port: retry later."""
    with pytest.raises(DeliveryError) as ei:
        await channel(free_port(), timeout_s=2).send("worker@care.example.org", notice(), "en")
    assert ei.value.retryable
    assert not ei.value.silent  # refused: an answer, not silence


async def test_starttls_required_but_missing_is_not_retryable(
        smtp: tuple[Mailbox, int]) -> None:
    """smtp_starttls on a server without STARTTLS is a configuration error, not a retry."""
    _, port = smtp
    with pytest.raises(DeliveryError) as ei:
        await channel(port, starttls=True).send("worker@care.example.org", notice(), "en")
    assert not ei.value.retryable


@pytest.mark.parametrize("address", ["", "no-at-sign", "a@b\r\nBcc: x@y", "Kim <k@x.org>",
                                     "a@b@c"])
async def test_bad_address_is_not_retryable(address: str) -> None:
    """An address that is not a plain name@domain is never sent (no header injection)."""
    with pytest.raises(DeliveryError) as ei:
        await channel(9).send(address, notice(), "en")
    assert not ei.value.retryable


def test_sender_must_be_an_address() -> None:
    """A missing or malformed sender stops start-up."""
    with pytest.raises(ValueError, match="smtp_sender"):
        channel(25, sender="")
