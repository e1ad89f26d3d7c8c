"""The console's pure parts: tile states, the escalation clock, charts, the catalogue."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dolbom.api.console import csrf, views
from dolbom.api.console.i18n import CATALOGUE, JS_KEYS, duration, pick_locale, translator
from dolbom.api.console.pages import safe_next

NOW = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
SEOUL = ZoneInfo("Asia/Seoul")


def a(klass: str, priority: str, status: str = "open", id_: int = 1,
      raised: datetime = NOW) -> views.AlertFacts:
    rule = {"life_safety": "fall", "welfare": "inactivity", "technical": "device_lost"}[klass]
    return views.AlertFacts(id_, rule, klass, priority, status, raised)


def d(state: str | None, revoked: bool = False) -> views.DeviceFacts:
    return views.DeviceFacts("dev-1", "multisensor", state, revoked)


@pytest.mark.parametrize(("alerts", "devices", "mode", "state", "key"), [
    ([], [d("ready")], "normal", "ok", "state.ok"),
    ([], [d("sleeping"), d(None)], "normal", "ok", "state.ok"),
    ([a("life_safety", "high")], [d("ready")], "normal", "alert", "state.alert"),
    ([a("life_safety", "high", "acknowledged")], [], "normal", "alert", "state.alert"),
    ([a("life_safety", "high", "resolved")], [], "normal", "ok", "state.ok"),
    ([a("welfare", "medium")], [], "normal", "attention", "state.attention"),
    ([a("technical", "low")], [], "normal", "device", "state.device"),
    # a home that lost its activity sensors: technical at medium, still a device problem
    ([a("technical", "medium")], [], "normal", "device", "state.device"),
    ([], [d("lost")], "normal", "device", "state.device"),
    ([], [d("lost", revoked=True)], "normal", "ok", "state.ok"),
    ([], [], "away", "away", "state.away"),
    ([], [], "hospital", "away", "state.hospital"),
    # life-safety beats away: a fall in a home marked away is still a fall
    ([a("life_safety", "high")], [], "away", "alert", "state.alert"),
    ([a("welfare", "medium"), a("life_safety", "high", id_=2)], [], "normal", "alert",
     "state.alert"),
    ([a("technical", "low"), a("welfare", "medium", id_=2)], [d("lost")], "normal",
     "attention", "state.attention"),
    ([], [d("lost")], "away", "device", "state.device"),
])
def test_tile_state(alerts: list[views.AlertFacts], devices: list[views.DeviceFacts], mode: str,
                    state: str, key: str) -> None:
    """Each combination of alerts, devices and home mode gives the documented state."""
    tl = views.tile(alerts, devices, mode)
    assert (tl.state.value, tl.state_key) == (state, key)
    assert tl.open_alerts == sum(1 for x in alerts if x.status != "resolved")


def test_worst_first_orders_by_urgency_then_waiting_time() -> None:
    """The inbox puts life-safety first, then the longest-waiting, open before acknowledged."""
    old = NOW - timedelta(minutes=5)
    items = [a("technical", "low", id_=1, raised=old), a("welfare", "medium", id_=2),
             a("life_safety", "high", "acknowledged", id_=3, raised=old),
             a("life_safety", "high", id_=4), a("life_safety", "high", "resolved", id_=5)]
    assert [x.id for x in views.worst_first(items)] == [4, 3, 2, 1]


@pytest.mark.parametrize(("status", "next_at", "phase", "left"), [
    ("open", NOW + timedelta(seconds=45), "counting", 45.0),
    ("open", NOW - timedelta(seconds=5), "due", -5.0),
    ("open", None, "none", None),
    ("acknowledged", NOW + timedelta(seconds=45), "stopped", None),
    ("resolved", None, "resolved", None),
])
def test_escalation_clock(status: str, next_at: datetime | None, phase: str,
                          left: float | None) -> None:
    """Time since raised and until the next escalation come from the alert's own fields."""
    c = views.escalation_clock(status, NOW - timedelta(seconds=15), next_at, NOW)
    assert (c.since_s, c.phase, c.next_in_s) == (15.0, phase, left)


def test_bar_chart_geometry() -> None:
    """The tallest bar fills the plot; a zero is still drawn (1 px) so it reads as a value."""
    ch = views.bar_chart([("a", "A", 0), ("b", "B", 5), ("c", "C", 10)], width=300, height=120,
                         label_h=20)
    assert ch.max_value == 10 and ch.baseline == 100
    zero, half, full = ch.bars
    assert full.height == 100 and full.y == 0
    assert half.height == 50 and half.y == 50
    assert zero.height == 1
    assert all(b.x + b.width <= 300 for b in ch.bars)
    assert views.bar_chart([]).bars == ()


def test_hourly_and_daily_use_local_days() -> None:
    """Activity is binned by the care centre's local hour and date, not UTC."""
    times = [datetime(2026, 11, 20, 15, 30, tzinfo=UTC),  # 00:30 KST on the 21st
             datetime(2026, 11, 21, 2, 59, tzinfo=UTC),  # 11:59 KST
             datetime(2026, 11, 20, 14, 59, tzinfo=UTC)]  # 23:59 KST on the 20th: yesterday
    counts = views.hourly(times, NOW, SEOUL)
    assert counts[0] == 1 and counts[11] == 1 and sum(counts) == 2
    days = views.daily({date(2026, 11, 21): 4, date(2026, 11, 10): 9}, NOW, SEOUL)
    assert days[0][0] == date(2026, 11, 15) and days[-1] == (date(2026, 11, 21), 4)
    assert sum(n for _, n in days) == 4


@pytest.mark.parametrize(("kind", "val", "key"), [
    ("door", "open", "activity.door.open"), ("bed", "out", "activity.bed.out"),
    ("motion", None, "activity.motion"), ("door", "<script>", "activity.door"),
])
def test_activity_words(kind: str, val: object, key: str) -> None:
    """Device values pick a catalogue key; anything unexpected falls back to the type."""
    assert views.activity_words(kind, val) == key
    assert key in CATALOGUE["ko"]


def test_catalogue_locales_match() -> None:
    """Korean and English have the same keys and the same placeholders."""
    ko, en = CATALOGUE["ko"], CATALOGUE["en"]
    assert set(ko) == set(en)
    for k in ko:
        assert set(re.findall(r"{(\w+)}", ko[k])) == set(re.findall(r"{(\w+)}", en[k])), k
    assert set(JS_KEYS) <= set(ko)


def test_every_template_key_is_in_the_catalogue() -> None:
    """Every t('…') a template uses exists (a missing key would show as the key itself)."""
    from dolbom.api.console.pages import TEMPLATES

    used: set[str] = set()
    for p in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""t\(\s*'([a-z_.]+[a-z_])'\s*[,)]""", p.read_text()))
    assert used and used <= set(CATALOGUE["en"]), used - set(CATALOGUE["en"])
    for o in views.OUTCOMES:
        assert f"outcome.{o}" in CATALOGUE["en"]


@pytest.mark.parametrize(("seconds", "ko", "en"), [
    (5, "5초", "5 s"), (125, "2분", "2 min"), (3600 * 2 + 300, "2시간 5분", "2 h 5 min"),
    (3600 * 50, "2일 2시간", "2 d 2 h"),
])
def test_duration(seconds: float, ko: str, en: str) -> None:
    """Durations read naturally in both languages."""
    assert (duration(seconds, "ko"), duration(seconds, "en")) == (ko, en)


def test_locale_pick_and_fallback() -> None:
    """Unknown locales fall back to Korean; a header like en-US picks English."""
    assert pick_locale(None, "en-US,en;q=0.9") == "en"
    assert pick_locale("fr") == "ko"
    assert translator("xx")("nav.board") == "담당 대상자"


def test_csrf_tokens() -> None:
    """A token is bound to its nonce and the server secret; anything else is refused."""
    secret = "s" * 32
    n = csrf.new_nonce()
    tok = csrf.token_for(n, secret)
    assert csrf.valid(n, tok, secret)
    assert not csrf.valid(n, tok, "t" * 32)
    assert not csrf.valid(csrf.new_nonce(), tok, secret)
    assert not csrf.valid(n, "", secret) and not csrf.valid(None, tok, secret)


@pytest.mark.parametrize(("value", "ok"), [
    ("/console/alerts", True), ("/console/residents/3?x=1", True),
    ("https://evil.example/console/", False), ("//evil.example/console/", False),
    ("/console/..\\evil", False), ("/api/v1/x", False), ("", False),
    ("/console//evil.example", False),
])
def test_safe_next(value: str, ok: bool) -> None:
    """After login or an action the console only ever redirects inside itself."""
    assert (safe_next(value) == value) is ok
