"""The console in a real browser (headless Debian Chromium, driven by Playwright) against
the real stack: Mosquitto, InfluxDB, the alerts service, ingest, and the API app served by
uvicorn on a free loopback port. A device publishes a fall exactly as the wire contract
says; the care worker sees it arrive in the inbox without reloading, acknowledges it and
resolves it with an outcome, and the alert's timeline shows each step.

Every console page, at phone width (390 px) and desktop width (1280 px), for a care worker
and a supervisor: a screenshot each (``DOLBOM_SCREENSHOTS``, default a temporary
directory, named in the output), no horizontal overflow, Korean text drawn with a Korean
font (not missing-glyph boxes), axe-core with no serious or critical violation, and every
link, button and field reachable with the Tab key; an alert is acknowledged and resolved
with the keyboard alone."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright, expect

from dolbom.alerts import lifecycle
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.api import auth
from dolbom.api.app import create_app
from dolbom.api.settings import ApiSettings
from dolbom.protocol import Envelope, encode_event
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert, WatchItem
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


# -- every page: widths, fonts, accessibility, keyboard ---------------------------------------

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
HANGUL = "돌봄 알림함 담당 대상자"
# Draws each string on a canvas in the page's own font and returns the pixels' fingerprint:
# with no Korean font, every Hangul syllable is the same missing-glyph box.
GLYPHS_JS = """([font, texts]) => texts.map(t => {
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const g = c.getContext('2d'); g.font = font; g.fillStyle = '#000';
  g.fillText(t, 4, 48);
  const d = g.getImageData(0, 0, 64, 64).data; let h = 0, ink = 0;
  for (let i = 3; i < d.length; i += 4) { h = (h * 31 + d[i]) >>> 0; if (d[i]) ink++; }
  return [h, ink, g.measureText(t).width];
})"""
OVERFLOW_JS = """() => {
  // Measured with every <details> open too: the resolve form must fit when it is opened.
  const shut = [...document.querySelectorAll('details:not([open])')];
  shut.forEach(d => { d.open = true; });
  const w = document.documentElement.clientWidth, out = [];
  const clipped = e => {
    const h = e.closest('thead'); return h && h.getBoundingClientRect().width <= 1; };
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width && r.right > w + 1 && !e.closest('.visually-hidden, .skip, [data-scroll]')
        && !clipped(e))
      out.push(`${e.tagName.toLowerCase()}.${e.className} right=${Math.round(r.right)}`);
  }
  // A table squeezed into columns a few characters wide is unreadable, though it fits.
  const narrow = [...document.querySelectorAll('td, th')].filter(c => {
    if (clipped(c)) return false;  // a header row hidden on phones (stacked table)
    const r = c.getBoundingClientRect(); return r.width > 0 && r.width < 56 && c.textContent.trim();
  }).map(c => c.textContent.trim().slice(0, 20));
  const scroll = document.documentElement.scrollWidth;
  shut.forEach(d => { d.open = false; });
  return {scroll: scroll, width: w, over: out.slice(0, 5), narrow: narrow.slice(0, 5)};
}"""
FOCUSABLE_JS = """() => [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]')]
  .filter(e => e.tabIndex >= 0 && !e.disabled && e.getClientRects().length
               && !(e.closest('details') && !e.closest('details').open && e.tagName !== 'SUMMARY')
               && getComputedStyle(e).visibility !== 'hidden')
  .map((e, i) => (e.dataset.kbd = String(i), i))"""


def seed_pages(stack: Stack) -> dict[str, int]:
    """A shared home (홍길동 assigned to the workers, 김순자 not), alerts of every priority
    (one resolved), a watch item; care workers (Korean, English), a supervisor and a
    responder who can sign in."""
    now = datetime.now(UTC)
    table = EscalationTable()
    ids: dict[str, int] = {}
    with session_factory(stack.database_url).begin() as s:
        registry.add_site(s, "pg1", "돌봄 센터")
        registry.add_home(s, "pg1-h1", "pg1", label="행복아파트 101동")
        mine = registry.add_resident(
            s, "pg1-h1", "홍길동", phone="010-1234-5678", birth_year=1938,
            address="서울특별시 종로구 세종대로 175 행복아파트 101동 1203호")
        registry.add_resident(s, "pg1-h1", "김순자", phone="010-8765-4321")
        for dev, kind in (("pg1-ms1", "multisensor"), ("pg1-door1", "door"),
                          ("pg1-btn1", "button")):
            registry.add_device(s, dev, "pg1", "pg1-h1", kind,
                                power="battery" if kind != "multisensor" else "mains")
        for rule, prio, dev in ((Rule.FALL, Priority.HIGH, "pg1-ms1"),
                                (Rule.INACTIVITY, Priority.MEDIUM, None),
                                (Rule.DEVICE_LOST, Priority.LOW, "pg1-door1"),
                                (Rule.BUTTON, Priority.HIGH, "pg1-btn1")):
            ids[rule.value] = lifecycle.raise_alert(
                s, site="pg1", home="pg1-h1", rule=rule, priority=prio,
                at=now - timedelta(minutes=7), table=table, device=dev).alert_id
        worker = registry.add_user(s, "w-pg1", "care_worker", site_id="pg1", locale="ko",
                                   display_name="이복지")
        sup = registry.add_user(s, "s-pg1", "supervisor", site_id="pg1", locale="ko",
                                display_name="박팀장")
        en = registry.add_user(s, "e-pg1", "care_worker", site_id="pg1", locale="en",
                               display_name="Alex Kim")
        resp = registry.add_user(s, "r-pg1", "responder", site_id="pg1", locale="ko",
                                 display_name="최응급")
        registry.assign(s, "w-pg1", mine.id)
        registry.assign(s, "e-pg1", mine.id)
        lifecycle.acknowledge(s, ids[Rule.BUTTON.value], worker, now - timedelta(minutes=5))
        lifecycle.resolve(s, ids[Rule.BUTTON.value], lifecycle.Outcome.FALSE_ALARM, worker,
                          now - timedelta(minutes=4), note="버튼을 잘못 눌렀다고 하심")
        s.add(WatchItem(site_id="pg1", home_id="pg1-h1", rule="no_door_use",
                        at=now - timedelta(hours=2),
                        reasons={"ko": ["현관문을 평소보다 오래 쓰지 않음"],
                                 "en": ["the door unused longer than usual"]},
                        device_id="pg1-door1"))
        for u in (worker, sup, en, resp):
            auth.set_password(s, u, PASSWORD, now)
        ids["resident"] = mine.id
    return ids


async def hangul_renders(page: Page) -> bool:
    """Two different syllables, in the page's body font, draw different ink, and not the
    ink of an unassigned code point (the missing-glyph box); and a Hangul string is as wide
    as Korean glyphs are (about 1 em each), not as narrow boxes."""
    font = await page.evaluate("getComputedStyle(document.body).font")
    (a, b, box) = await page.evaluate(GLYPHS_JS, [font, ["돌", "봄", "\u0378"]])
    size = float(await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
    (text,) = await page.evaluate(GLYPHS_JS, [font, [HANGUL]])
    return bool(a[1] and a[0] != b[0] and a[0] != box[0]
                and text[2] >= 0.8 * size * len(HANGUL.replace(" ", "")))


def shots_dir() -> Path:
    d = Path(os.environ.get("DOLBOM_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-shots-"))
    d.mkdir(parents=True, exist_ok=True)
    return d


async def check_page(page: Page, name: str, out: Path, problems: list[str]) -> None:
    """Screenshot, overflow, Korean glyphs, axe, keyboard reach of the page shown now."""
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    layout = await page.evaluate(OVERFLOW_JS)
    if layout["scroll"] > layout["width"] or layout["over"] or layout["narrow"]:
        problems.append(f"{name}: wider than the screen: {layout}")
    if not await hangul_renders(page):
        problems.append(f"{name}: Hangul drawn as missing-glyph boxes")
    results = await Axe().run(page, options={"runOnly": ["wcag2a", "wcag2aa", "wcag21a",
                                                         "wcag21aa", "best-practice"]})
    bad = [v for v in results.response["violations"]
           if v.get("impact") in ("serious", "critical")]
    for v in bad:
        nodes = [n["target"] for n in v["nodes"][:3]]
        problems.append(f"{name}: axe {v['impact']} {v['id']}: {v['help']} {nodes}")
    wanted = set(await page.evaluate(FOCUSABLE_JS))
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    reached: set[int] = set()
    for _ in range(len(wanted) + 5):
        await page.keyboard.press("Tab")
        k = await page.evaluate("document.activeElement && document.activeElement.dataset.kbd")
        if k is not None:
            reached.add(int(k))
        if reached >= wanted:
            break
    missing = wanted - reached
    if missing:
        names = await page.evaluate(
            "ks => ks.map(k => document.querySelector(`[data-kbd='${k}']`).outerHTML"
            ".slice(0, 80))", sorted(missing))
        problems.append(f"{name}: not reachable with Tab: {names}")


async def visit_all(browser: Browser, base: str, who: str, ids: dict[str, int], out: Path,
                    problems: list[str]) -> None:
    for label, viewport in WIDTHS.items():
        page = await browser.new_page(locale="ko-KR", viewport=viewport)
        try:
            await page.goto(f"{base}/console/login")
            await check_page(page, f"{label}-login", out, problems)
            await log_in(page, base, who)
            pages = {"board": "/console/board", "inbox": "/console/alerts",
                     "watch": "/console/watch", "alert": f"/console/alerts/{ids['fall']}",
                     "resolved-alert": f"/console/alerts/{ids['button']}",
                     "resident": f"/console/residents/{ids['resident']}",
                     "not-found": "/console/alerts/999999"}
            for pname, path in pages.items():
                await page.goto(base + path)
                await expect(page.locator("h1").first).to_be_visible()
                await check_page(page, f"{label}-{who}-{pname}", out, problems)
        finally:
            await page.close()


async def docs_work_offline(browser: Browser, base: str) -> None:
    """/docs renders the API's operations with every request refused but to this server
    (a closed network) and nothing refused by its Content-Security-Policy."""
    page = await browser.new_page()
    elsewhere: list[str] = []
    csp: list[str] = []

    async def only_here(route: Any) -> None:
        if route.request.url.startswith(base):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text
            else None)
    await page.route("**/*", only_here)
    await page.goto(f"{base}/docs")
    await expect(page.locator(".opblock").first).to_be_visible(timeout=WAIT_MS)
    assert await page.locator(".opblock").count() > 25
    assert elsewhere == [] and csp == [], (elsewhere, csp)
    await page.close()


async def checks_catch_what_they_look_for(p: Any, browser: Browser, base: str) -> None:
    """The checks are not blind: a page with a nameless button, a row wider than the phone
    and an unreachable control fails them; without a Korean font, Hangul is boxes."""
    page = await browser.new_page(locale="ko-KR", viewport=WIDTHS["phone"])
    await page.goto(f"{base}/console/login")
    await page.evaluate("""() => {
      const m = document.querySelector('main');
      m.insertAdjacentHTML('beforeend', '<button id=x1></button>'
        + '<div id=x3>wide</div><span id=x2 tabindex="0" hidden></span>');
      document.getElementById('x3').style.width = '600px';  // (CSP: no style attributes)
      document.getElementById('x2').hidden = false;
      document.getElementById('x2').tabIndex = 0;
      document.getElementById('x2').addEventListener('focus', e => e.target.blur());
    }""")
    found: list[str] = []
    await check_page(page, "control", Path(tempfile.mkdtemp(prefix="control-")), found)
    text = " ".join(found)
    assert "button-name" in text and "wider than the screen" in text, found
    assert "not reachable with Tab" in text, found
    await page.close()
    conf = Path(tempfile.mkdtemp(prefix="fontconfig-")) / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><fontconfig><dir>/usr/share/fonts/truetype/dejavu'
                    '</dir><cachedir>' + str(conf.parent) + '</cachedir></fontconfig>')
    bare = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"],
                                   env={**os.environ, "FONTCONFIG_FILE": str(conf)})
    try:
        page = await bare.new_page(locale="ko-KR")
        await page.goto(f"{base}/console/login")
        assert not await hangul_renders(page)
    finally:
        await bare.close()


async def test_every_console_page_fits_reads_korean_passes_axe_and_works_by_keyboard(
        stack: Stack) -> None:
    """Each page at 390 px and 1280 px, for care workers (Korean, English), a supervisor and
    a responder: screenshots;
    no horizontal overflow; Hangul drawn with a Korean font; axe-core: 0 serious or
    critical violations; every link, button and field reachable with Tab. Then, with the
    keyboard alone, an alert is acknowledged and resolved."""
    ids = seed_pages(stack)
    out = shots_dir()
    print(f"console screenshots: {out}")
    problems: list[str] = []
    async with running_api(stack, ApiClock()) as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # A care worker (Korean and English), a supervisor, a responder.
            for who in ("w-pg1", "e-pg1", "s-pg1", "r-pg1"):
                await visit_all(browser, base, who, ids, out, problems)
            assert not problems, json.dumps(problems, ensure_ascii=False, indent=1)
            await checks_catch_what_they_look_for(p, browser, base)
            await docs_work_offline(browser, base)

            # The keyboard alone: sign in, open the fall, acknowledge, resolve with an outcome.
            page = await browser.new_page(locale="ko-KR", viewport=WIDTHS["phone"])
            await page.goto(f"{base}/console/login")
            await page.keyboard.press("Tab")  # the skip link
            for _ in range(12):
                await page.keyboard.press("Tab")
                if await page.evaluate("document.activeElement.name") == "username":
                    break
            await page.keyboard.type("w-pg1")
            await page.keyboard.press("Tab")
            await page.keyboard.type(PASSWORD)
            await page.keyboard.press("Enter")
            await expect(page).to_have_url(f"{base}/console/board", timeout=WAIT_MS)
            await page.goto(f"{base}/console/alerts/{ids['fall']}")
            ack = page.get_by_role("button", name="확인")
            for _ in range(40):
                await page.keyboard.press("Tab")
                if await ack.evaluate("e => e === document.activeElement"):
                    break
            await page.keyboard.press("Enter")
            row = page.locator(".alert-row").first
            await expect(row).to_have_attribute("data-status", "acknowledged", timeout=WAIT_MS)
            summary = row.locator("details summary")
            for _ in range(40):
                await page.keyboard.press("Tab")
                if await summary.evaluate("e => e === document.activeElement"):
                    break
            await page.keyboard.press("Enter")
            outcome = page.get_by_role("button", name="방문 확인: 이상 없음")
            for _ in range(20):
                await page.keyboard.press("Tab")
                if await outcome.evaluate("e => e === document.activeElement"):
                    break
            await page.keyboard.press("Enter")
            await expect(page.locator(".alert-row").first).to_have_attribute(
                "data-status", "resolved", timeout=WAIT_MS)
            await page.reload()
            kinds = await page.locator("#timeline li").evaluate_all(
                "els => els.map(e => e.dataset.kind)")
            assert kinds == ["raised", "acknowledged", "resolved"], kinds
        finally:
            await browser.close()
