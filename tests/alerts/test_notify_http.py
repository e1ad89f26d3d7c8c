"""Webhook, ntfy and Apprise channels against a real HTTP receiver on loopback.

There is no ntfy server in Debian (``apt-cache policy ntfy``: none), so the ntfy
tests check the request against ntfy's documented publish API
(https://docs.ntfy.sh/publish/): POST /<topic>, body = message, headers
Title / Priority / Tags / Click / Authorization.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from typing import Any

import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from dolbom.alerts.notify import DeliveryError, Notice, render, sign, verify, webhook_body
from dolbom.alerts.notify.apprise_channel import AppriseChannel
from dolbom.alerts.notify.ntfy import NtfyChannel, header_text
from dolbom.alerts.notify.texts import detail_lines, title_of
from dolbom.alerts.notify.webhook import WebhookChannel

SECRET = b"s3cret-for-tests-0123456789"
KEYS = ["id", "rule", "priority", "status", "site", "home", "device", "raised_at",
        "event_ts", "text"]
T0 = datetime(2025, 11, 21, 3, 0, 5, tzinfo=UTC)


def notice(**kw: Any) -> Notice:
    base: dict[str, Any] = dict(
        alert_id=42, rule="fall", priority="high", status="open", site="demo", home="h003",
        device="pir-h003", raised_at=T0, event_ts=T0, kind="raised", tier=1, detail={},
        console_url="https://care.example.org/alerts/42")
    base.update(kw)
    return Notice(**base)


@dataclass
class Request:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    peer: Any


@dataclass
class Receiver:
    """Records every request and answers ``status``; ``hang`` holds the answer back."""

    url: str = ""
    status: int = 200
    hang: bool = False
    requests: list[Request] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(Request(request.method, request.path, request.headers, body, peer))
        if self.hang:
            await self.release.wait()
        return web.json_response({"ok": self.status < 300}, status=self.status)


@pytest.fixture()
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}"
    yield rec
    rec.release.set()  # let a hanging handler finish so cleanup does not wait
    await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- signatures --------------------------------------------------------------------

def test_sign_and_verify() -> None:
    """A signature verifies for its body and secret only."""
    body = webhook_body(notice(), "ko")
    header = sign(body, SECRET)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify(body, SECRET, header)
    assert verify(body, SECRET, f" {header} ")
    assert not verify(body, b"another-secret-0123456789", header)
    assert not verify(body + b" ", SECRET, header)
    assert not verify(body, SECRET, header.removeprefix("sha256="))
    assert not verify(body, SECRET, "")


# --- webhook -----------------------------------------------------------------------

async def test_webhook_delivers_signed_design_json(receiver: Receiver) -> None:
    """The receiver gets exactly the DESIGN.md §5 keys, signed, with a dedup id, in Korean."""
    ch = WebhookChannel(SECRET, timeout_s=5)
    try:
        await ch.send(f"{receiver.url}/hook", notice(kind="escalated", tier=2), "ko")
    finally:
        await ch.aclose()
    (req,) = receiver.requests
    assert req.method == "POST" and req.path == "/hook"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Dolbom-Delivery"] == "42-escalated-2"
    doc = orjson.loads(req.body)
    assert list(doc) == KEYS
    assert doc["raised_at"] == "2025-11-21T03:00:05.000Z" and doc["home"] == "h003"
    assert doc["text"] == render(notice(kind="escalated", tier=2), "ko")[1]
    assert "낙상 감지" in doc["text"]
    sig = req.headers["X-Dolbom-Signature"]
    assert verify(req.body, SECRET, sig)
    assert not verify(req.body, b"wrong-secret-0123456789", sig)
    assert not verify(req.body.replace(b"h003", b"h004"), SECRET, sig)


async def test_webhook_reuses_its_connection(receiver: Receiver) -> None:
    """Consecutive sends share one keep-alive connection (no handshake per alert)."""
    ch = WebhookChannel(SECRET, timeout_s=5)
    try:
        for _ in range(3):
            await ch.send(f"{receiver.url}/hook", notice(), "en")
    finally:
        await ch.aclose()
    assert len({r.peer for r in receiver.requests}) == 1


@pytest.mark.parametrize(("status", "retryable"), [
    (503, True), (500, True), (429, True), (408, True),
    (400, False), (401, False), (404, False), (410, False), (301, False),
])
async def test_webhook_status_classes(receiver: Receiver, status: int, retryable: bool) -> None:
    """5xx, 408 and 429 are retried; other 4xx and redirects are not."""
    receiver.status = status
    ch = WebhookChannel(SECRET, timeout_s=5)
    try:
        with pytest.raises(DeliveryError) as ei:
            await ch.send(f"{receiver.url}/hook", notice(), "en")
    finally:
        await ch.aclose()
    assert ei.value.retryable is retryable
    assert not ei.value.silent  # an answer, however bad
    assert str(status) in ei.value.reason and "127.0.0.1" not in ei.value.reason


async def test_webhook_hanging_receiver_times_out(receiver: Receiver) -> None:
    """A receiver that never answers costs at most the timeout, and is retried; the
    error says the link was silent (the outbox then sends one attempt at a time)."""
    receiver.hang = True
    ch = WebhookChannel(SECRET, timeout_s=0.3)
    t = time.monotonic()
    try:
        with pytest.raises(DeliveryError) as ei:
            await ch.send(f"{receiver.url}/hook", notice(), "en")
    finally:
        await ch.aclose()
    assert ei.value.retryable and ei.value.silent
    assert time.monotonic() - t < 2.0


async def test_webhook_connection_refused_is_retryable() -> None:
    """Nobody listening: retry later."""
    ch = WebhookChannel(SECRET, timeout_s=2)
    try:
        with pytest.raises(DeliveryError) as ei:
            await ch.send(f"http://127.0.0.1:{closed_port()}/hook", notice(), "en")
    finally:
        await ch.aclose()
    assert ei.value.retryable
    assert not ei.value.silent  # refused: an answer, not silence


@pytest.mark.parametrize("address", ["ftp://example.org/x", "not a url", "http:///nohost", ""])
async def test_webhook_bad_address_is_not_retryable(address: str) -> None:
    """An address that is not an http(s) URL will never work."""
    ch = WebhookChannel(SECRET)
    with pytest.raises(DeliveryError) as ei:
        await ch.send(address, notice(), "en")
    assert not ei.value.retryable


def test_webhook_refuses_to_be_unsigned() -> None:
    """No secret (or a short one), no webhook channel."""
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        WebhookChannel(b"")
    with pytest.raises(ValueError, match="signing secret"):
        WebhookChannel(b"short")


# --- ntfy --------------------------------------------------------------------------

async def test_ntfy_publishes_per_the_ntfy_api(receiver: Receiver) -> None:
    """POST /<topic>: body is the message; Title (Korean intact), Priority, Tags, Click, auth."""
    ch = NtfyChannel(receiver.url, "tk_testtoken", timeout_s=5)
    n = notice()
    try:
        await ch.send("dolbom-demo-h003", n, "ko")
    finally:
        await ch.aclose()
    (req,) = receiver.requests
    assert req.method == "POST" and req.path == "/dolbom-demo-h003"
    title = str(make_header(decode_header(req.headers["Title"])))
    assert title == title_of(n, "ko") == "[긴급] 낙상 감지 — 가구 h003 (센터 demo)"
    assert req.headers["Priority"] == "5"
    assert req.headers["Tags"] == "rotating_light,fall"
    assert req.headers["Click"] == "https://care.example.org/alerts/42"
    assert req.headers["Authorization"] == "Bearer tk_testtoken"
    assert req.body.decode("utf-8") == "\n".join(detail_lines(n, "ko"))
    assert "즉시 확인" in req.body.decode("utf-8")


@pytest.mark.parametrize(("priority", "kind", "expected"), [
    ("high", "raised", "5"), ("medium", "raised", "4"), ("low", "raised", "3"),
    ("high", "resolved", "3"),
])
async def test_ntfy_priority_mapping(receiver: Receiver, priority: str, kind: str,
                                     expected: str) -> None:
    """high → 5 (urgent), medium → 4, low → 3; an all-clear never rings as urgent."""
    ch = NtfyChannel(receiver.url + "/ntfy/", None, timeout_s=5)
    try:
        await ch.send("topic_1", notice(priority=priority, kind=kind), "en")
    finally:
        await ch.aclose()
    (req,) = receiver.requests
    assert req.path == "/ntfy/topic_1"
    assert req.headers["Priority"] == expected
    assert "Authorization" not in req.headers
    assert str(make_header(decode_header(req.headers["Title"]))).startswith("[")


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (507, True), (403, False),
                                                   (400, False)])
async def test_ntfy_status_classes(receiver: Receiver, status: int, retryable: bool) -> None:
    """Rate limits and server errors are retried; auth and request errors are not."""
    receiver.status = status
    ch = NtfyChannel(receiver.url, "tk_x", timeout_s=5)
    try:
        with pytest.raises(DeliveryError) as ei:
            await ch.send("topic", notice(), "en")
    finally:
        await ch.aclose()
    assert ei.value.retryable is retryable


@pytest.mark.parametrize("topic", ["", "a/b", "../x", "x" * 65, "주제"])
async def test_ntfy_bad_topic_is_not_retryable(topic: str) -> None:
    """A topic ntfy would refuse is not sent at all."""
    with pytest.raises(DeliveryError) as ei:
        await NtfyChannel("http://127.0.0.1:9").send(topic, notice(), "en")
    assert not ei.value.retryable


def test_ntfy_header_text_round_trips() -> None:
    """Long Korean titles become valid RFC 2047 words (≤ 75 chars) that decode back."""
    title = "[긴급] (상향 3단계) 가스 누출 감지 — 가구 h003-long-home-id (센터 demo-centre)"
    enc = header_text(title)
    assert enc.isascii() and "\n" not in enc
    assert all(len(w) <= 75 for w in enc.split(" "))
    assert str(make_header(decode_header(enc))) == title
    assert header_text("plain\r\nInjected: 1") == "plain Injected: 1"


def test_ntfy_needs_an_http_url() -> None:
    """A base URL that is not http(s) is refused at start-up."""
    with pytest.raises(ValueError, match="ntfy_url"):
        NtfyChannel("ntfy.sh")


# --- Apprise -----------------------------------------------------------------------

async def test_apprise_json_url_delivered(receiver: Receiver) -> None:
    """An Apprise json:// URL reaches the receiver with the title and the message."""
    port = receiver.url.rsplit(":", 1)[1]
    n = notice()
    await AppriseChannel(timeout_s=5).send(f"json://127.0.0.1:{port}/apprise", n, "ko")
    (req,) = receiver.requests
    assert req.method == "POST" and req.path == "/apprise"
    doc = orjson.loads(req.body)
    assert doc["title"] == title_of(n, "ko")
    assert doc["message"] == "\n".join(detail_lines(n, "ko"))
    assert doc["type"] == "failure"  # high priority


async def test_apprise_failure_is_retryable(receiver: Receiver) -> None:
    """The service refusing the notification is retried later."""
    receiver.status = 500
    port = receiver.url.rsplit(":", 1)[1]
    with pytest.raises(DeliveryError) as ei:
        await AppriseChannel(timeout_s=5).send(f"json://127.0.0.1:{port}/x", notice(), "en")
    assert ei.value.retryable


async def test_apprise_unusable_url_is_not_retryable() -> None:
    """A URL Apprise cannot parse will never work, and its text is not echoed."""
    with pytest.raises(DeliveryError) as ei:
        await AppriseChannel().send("nosuchservice://token-abc@host", notice(), "en")
    assert not ei.value.retryable and "token-abc" not in ei.value.reason


async def test_apprise_logs_carry_no_url(caplog: pytest.LogCaptureFixture) -> None:
    """Apprise's own log lines lose the URL (tokens, phone numbers) and keep the scheme."""
    caplog.set_level(logging.DEBUG, logger="apprise")
    with pytest.raises(DeliveryError):
        await AppriseChannel().send("nosuchservice://token-abc@host", notice(), "en")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "nosuchservice://…" in text and "token-abc" not in text
