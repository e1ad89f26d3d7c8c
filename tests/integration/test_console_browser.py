"""The console in a real browser (headless Debian Chromium, driven by Playwright) against
the real stack: Mosquitto, InfluxDB, the alerts service, ingest, and the API app served by
uvicorn on a free loopback port. A device publishes a fall exactly as the wire contract
says; the care worker sees it arrive in the inbox without reloading, acknowledges it and
resolves it with an outcome, and the alert's timeline shows each step."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Page, async_playwright, expect

from dolbom.api import auth
from dolbom.api.app import create_app
from dolbom.api.settings import ApiSettings
from dolbom.protocol import Envelope, encode_event
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import (
    TOPICS,
    device_client,
    eventually,
    ingest_settings,
    running_ingest,
    unique_now_ms,
)

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
PASSWORD = secrets.token_urlsafe(18)
WAIT_MS = 15_000  # every browser wait is bounded
ACCESS_TTL_S = 120


class ApiClock:
    """The API's clock: wall time plus an offset the test moves (token expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@asynccontextmanager
async def running_api(stack: Stack, clock: ApiClock) -> AsyncIterator[str]:
    """The API app (with the console) served by uvicorn in this event loop."""
    settings = ApiSettings(database_url=stack.database_url, jwt_secret=secrets.token_hex(32),
                           cookie_secure=False, influx=stack.influx_settings("dashboard"),
                           sse_poll_s=0.1, host="127.0.0.1", port=free_port(),
                           access_ttl_s=ACCESS_TTL_S)
    app = create_app(settings, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host,
                                           port=settings.port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve(), name="api")
    try:
        await eventually(lambda: server.started or task.done(), 15, "the API to start")
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def log_in(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/console/login")
    await page.get_by_label("아이디").fill(username)
    await page.get_by_label("비밀번호").fill(PASSWORD)
    await page.get_by_role("button", name="로그인").click()
    await expect(page).to_have_url(f"{base}/console/board", timeout=WAIT_MS)


async def test_care_worker_sees_a_fall_live_acknowledges_and_resolves_it(
        stack: Stack, runtime_dir: Path) -> None:
    """A fall published by the device appears in the open inbox without a reload (announced
    in the live region); two taps resolve it; the timeline shows raised, acknowledged,
    resolved; after the access token expires a second fall still arrives live and the
    session is renewed without a reload; the resident page shows the day's activity from
    the real InfluxDB."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "cb1", "hcb1", {"ms-hcb1": "multisensor"}, rec.url)
        with session_factory(stack.database_url).begin() as s:
            worker = registry.get_user(s, "w-cb1")  # Korean locale, assigned to 홍길동
            auth.set_password(s, worker, PASSWORD, datetime.now(UTC))
        spool = Path(tempfile.mkdtemp(prefix="spool-", dir=runtime_dir))
        api_clock = ApiClock()
        async with running_ingest(ingest_settings(stack, spool)), \
                running_alerts(alerts_settings(stack), Clock()), \
                running_api(stack, api_clock) as base, \
                device_client(stack, "ms-hcb1", pw["ms-hcb1"]) as dev, \
                async_playwright() as p:
            # A sign of life first, so the resident page has today's activity to show.
            await dev.publish(TOPICS.event("cb1", "ms-hcb1", "motion"),
                              encode_event(Envelope(1, 1, unique_now_ms(), 2)), qos=1)
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page(locale="ko-KR", viewport={"width": 390,
                                                                        "height": 844})
                await log_in(page, base, "w-cb1")
                await expect(page.locator(".tile")).to_have_count(1)
                await expect(page.locator(".tile .name")).to_have_text("홍길동")

                await page.get_by_role("link", name="알림함").click()
                await expect(page.locator("#live-status")).to_have_attribute(
                    "data-state", "on", timeout=WAIT_MS)
                await expect(page.locator("#inbox .alert-row")).to_have_count(0)
                await page.evaluate("window.__sameDocument = 'yes'")  # lost on any reload

                # The device reports a fall, exactly as the wire contract says (QoS 1).
                await dev.subscribe([(TOPICS.ack("cb1", "ms-hcb1"), 1)])
                await dev.publish(TOPICS.event("cb1", "ms-hcb1", "fall"),
                                  encode_event(Envelope(1, 2, unique_now_ms(), 2)), qos=1)

                row = page.locator("#inbox .alert-row")
                await expect(row).to_have_count(1, timeout=WAIT_MS)
                await expect(row).to_have_attribute("data-status", "open")
                await expect(row.locator("h3")).to_have_text("낙상 감지")
                await expect(row.locator(".where")).to_contain_text("홍길동")
                await expect(row.locator("[data-until]")).to_contain_text("후 상향")
                await expect(page.locator("#live")).to_contain_text("새 알림: 낙상 감지",
                                                                    timeout=WAIT_MS)
                assert await page.evaluate("window.__sameDocument") == "yes"

                # Touch targets are at least 44 px (measured in the real layout, phone width).
                for target in (row.get_by_role("button", name="확인"), row.locator("summary"),
                               page.get_by_role("link", name="담당 대상자")):
                    box = await target.bounding_box()
                    assert box is not None and box["height"] >= 44 and box["width"] >= 44

                # Tap 1: acknowledge.
                await row.get_by_role("button", name="확인").click()
                await expect(row).to_have_attribute("data-status", "acknowledged",
                                                    timeout=WAIT_MS)
                await expect(row.locator(".esc-stopped")).to_be_visible()
                # Taps 2 and 3: resolve, then what happened.
                await row.locator("summary").click()
                await row.get_by_role("button", name="방문 확인: 이상 없음").click()
                resolved = page.locator("#recent .alert-row[data-status='resolved']")
                await expect(resolved).to_have_count(1, timeout=WAIT_MS)
                await expect(page.locator("#inbox .alert-row")).to_have_count(0)
                assert await page.evaluate("window.__sameDocument") == "yes"

                # The access token expires. The open stream carries on (the API checks the
                # token when a stream opens), and the console renews the session with the
                # refresh cookie on its next request: the next fall still arrives, without
                # a reload, and the browser now holds a new access cookie.
                async def access_cookie() -> str:
                    jar = await page.context.cookies()
                    return next(c["value"] for c in jar if c["name"] == "dolbom_access")

                before = await access_cookie()
                api_clock.offset = timedelta(seconds=ACCESS_TTL_S + 30)
                await dev.publish(TOPICS.event("cb1", "ms-hcb1", "fall"),
                                  encode_event(Envelope(1, 3, unique_now_ms(), 2)), qos=1)
                await expect(page.locator("#inbox .alert-row")).to_have_count(
                    1, timeout=WAIT_MS)
                await expect(page.locator("#inbox .alert-row h3")).to_have_text("낙상 감지")
                assert await access_cookie() != before
                assert await page.evaluate("window.__sameDocument") == "yes"

                alert_id = int(await resolved.get_attribute("data-alert-id") or 0)
                with session_factory(stack.database_url)() as s:
                    alert = s.get(Alert, alert_id)
                    assert alert is not None and alert.home_id == "hcb1"
                    assert (alert.status, alert.outcome) == ("resolved", "visited_ok")
                await page.goto(f"{base}/console/alerts/{alert_id}")
                kinds = await page.locator("#timeline li").evaluate_all(
                    "els => els.map(e => e.dataset.kind)")
                assert kinds == ["raised", "acknowledged", "resolved"], kinds
                await expect(page.locator("#timeline")).to_contain_text("방문 확인")

                # The resident page: activity from the real InfluxDB (ingest wrote it).
                influx = stack.influx_admin()
                await eventually(lambda: influx.count(
                    "SELECT count(seq) FROM event WHERE home = 'hcb1' AND type = 'motion'",
                    "care") >= 1, 15, "the motion event in InfluxDB")
                await page.locator(".where a").first.click()
                await expect(page.locator("h1")).to_have_text("홍길동")
                await expect(page.locator("svg.bars")).to_have_count(2)
                await expect(page.locator("table.events")).to_contain_text("움직임",
                                                                           timeout=WAIT_MS)
                await expect(page.locator("table.devices")).to_contain_text("ms-hcb1")
            finally:
                await browser.close()
