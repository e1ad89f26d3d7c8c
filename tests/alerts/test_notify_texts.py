"""Notification texts: every rule × kind × locale renders, in the right language, ids only."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from dolbom.alerts.model import Rule
from dolbom.alerts.notify import KINDS, Notice, delivery_id, render, webhook_body
from dolbom.alerts.notify.base import iso_utc
from dolbom.alerts.notify.texts import format_time

T0 = datetime(2025, 11, 21, 3, 0, 5, 123000, tzinfo=UTC)
HANGUL = re.compile(r"[\uac00-\ud7a3]")

# Personal data a careless caller might put where only ids belong (DESIGN.md §6).
PII = ("김영희", "Kim Young-hee", "010-1234-5678", "+82-10-1234-5678", "1234",
       "서울시 종로구", "kim@example.org")
PLANTED: dict[str, object] = {
    "name": "김영희", "resident": "Kim Young-hee", "phone": "010-1234-5678",
    "address": "서울시 종로구 1-2", "email": "kim@example.org",
    # allow-listed keys holding something that is not an id or a number (ids themselves
    # are opaque by design, DESIGN.md §3: the registry validates them)
    "device": "김영희", "gateway": "+82-10-1234-5678", "service": "010-1234-5678",
    "tier": "01012345678", "hours": "Kim Young-hee", "battery_pct": 1e12,
    "quiet_h": "010-1234-5678", "temperature_c": "서울시 종로구",
}
# What the rules put in ``detail`` (documented keys of texts._label).
DETAIL: dict[str, dict[str, object]] = {
    "inactivity": {"tier": 2}, "no_door_use": {"days": 3}, "heat": {"temperature_c": 33.5},
    "cold": {"temperature_c": 8}, "out_of_bed_at_night": {"minutes": 45},
    "no_power_use": {"hours": 24}, "device_lost": {"device": "pir-h003"},
    "battery_low": {"device": "pir-h003", "battery_pct": 15}, "tamper": {"device": "pir-h003"},
    "gateway_lost": {"gateway": "gw-01"}, "service_unreachable": {"service": "notify:ntfy"},
    "welfare_concern": {"quiet_h": 3.5}, "sensor_blind": {"device": "pir-h003"},
    "sensor_disagrees": {"device": "pir-h003", "temperature_c": 35.0},
    "outbox_fault": {"device": "btn-h003"}, "acl_denied": {"device": "pir-h003", "denied": 5},
}
PRIORITY = {"button": "high", "fall": "high", "smoke": "high", "gas": "high",
            "sos_voice": "high", "device_lost": "low", "battery_low": "low", "tamper": "low",
            "gateway_lost": "low", "service_unreachable": "low"}


def notice(**kw: Any) -> Notice:
    base: dict[str, Any] = dict(
        alert_id=42, rule="fall", priority="high", status="open", site="demo", home="h003",
        device="pir-h003", raised_at=T0, event_ts=T0, kind="raised", tier=1, detail={},
        console_url="https://care.example.org/alerts/42")
    base.update(kw)
    return Notice(**base)


def every_notice() -> list[tuple[str, str, str]]:
    return [(r.value, k, loc) for r in Rule for k in sorted(KINDS) for loc in ("ko", "en")]


@pytest.mark.parametrize(("rule", "kind", "locale"), every_notice())
def test_every_rule_kind_locale_renders_ids_only(rule: str, kind: str, locale: str) -> None:
    """Each rule × kind × locale renders a headline and body built from the Notice alone."""
    status = "resolved" if kind == "resolved" else "open"
    n = notice(rule=rule, kind=kind, status=status, tier=2,
               priority=PRIORITY.get(rule, "medium"), detail=DETAIL.get(rule, {}))
    title, body = render(n, locale)
    assert title and body.split("\n")[0] == title
    assert "h003" in title and "demo" in title
    # Planted personal data changes nothing and appears nowhere.
    polluted = dataclasses.replace(n, detail={**PLANTED, **DETAIL.get(rule, {})})
    assert render(polluted, locale) == (title, body)
    junk_only = dataclasses.replace(n, detail=PLANTED)
    for text in (*render(junk_only, locale), title, body):
        for pii in PII:
            assert pii not in text
    # The right language throughout.
    if locale == "en":
        assert not HANGUL.search(body)
    else:
        assert HANGUL.search(title)


@pytest.mark.parametrize(("locale", "expected"), [
    ("ko", "[긴급] 낙상 감지 — 가구 h003 (센터 demo)"),
    ("en", "[URGENT] Fall detected — home h003 (site demo)"),
])
def test_fall_title(locale: str, expected: str) -> None:
    """A fall reads as in the brief, in both languages."""
    assert render(notice(), locale)[0] == expected


@pytest.mark.parametrize(("tier", "ko", "en"), [
    (1, "활동 없음 12시간 (주의)", "No activity for 12 h (caution)"),
    (2, "활동 없음 24시간 (경보)", "No activity for 24 h (alarm)"),
    (3, "활동 없음 36시간 (위험)", "No activity for 36 h (danger)"),
])
def test_inactivity_names_its_tier(tier: int, ko: str, en: str) -> None:
    """Inactivity shows the tier's name and its default hours."""
    n = notice(rule="inactivity", priority="medium", detail={"tier": tier})
    assert ko in render(n, "ko")[0]
    assert en in render(n, "en")[0]


def test_inactivity_uses_the_residents_hours() -> None:
    """Per-resident hours in detail win over the defaults."""
    n = notice(rule="inactivity", priority="medium", detail={"tier": 1, "hours": 8})
    assert "활동 없음 8시간 (주의)" in render(n, "ko")[0]


def test_device_lost_names_the_device() -> None:
    """device_lost names the device id from detail, or the notice's device."""
    n = notice(rule="device_lost", priority="low", device=None, detail={"device": "pir-h003"})
    assert "기기 신호 없음 (pir-h003)" in render(n, "ko")[0]
    assert "Device lost (pir-h003)" in render(n, "en")[0]
    n2 = notice(rule="device_lost", priority="low", device="door-h003", detail={})
    assert "(door-h003)" in render(n2, "en")[0]


@pytest.mark.parametrize("rule", ["device_lost", "gateway_lost"])
def test_a_blind_home_told_again_says_how_long_nobody_has_seen_the_resident(
        rule: str) -> None:
    """The lost alert of a home with no working activity sensor, told again, says for how
    long nobody has seen the resident and what to do; a plain loss says neither."""
    n = notice(rule=rule, priority="medium", kind="repeat",
               detail={"device": "pir-h003", "unwatched_h": 40, "tier": 5})
    assert "40시간 동안 거주자 확인 불가, 전화 또는 방문 필요" in render(n, "ko")[0]
    assert "nobody has seen the resident for 40 h, call or visit" in render(n, "en")[0]
    plain = notice(rule=rule, priority="medium", detail={"device": "pir-h003"})
    assert "call or visit" not in render(plain, "en")[0]


@pytest.mark.parametrize(("kind", "ko", "en"), [
    ("renotify", "[긴급] (재알림) 낙상 감지", "[URGENT] (reminder) Fall detected"),
    ("escalated", "[긴급] (상향 2단계) 낙상 감지", "[URGENT] (escalated, tier 2) Fall detected"),
    ("repeat", "[긴급] (반복) 낙상 감지", "[URGENT] (again) Fall detected"),
    ("resolved", "[해제] 낙상 감지", "[RESOLVED] Fall detected"),
])
def test_kind_variants(kind: str, ko: str, en: str) -> None:
    """Re-notify, escalation (with its tier), repeat and resolution read differently."""
    n = notice(kind=kind, tier=2)
    assert render(n, "ko")[0].startswith(ko)
    assert render(n, "en")[0].startswith(en)


def test_body_has_times_device_and_link() -> None:
    """The body gives the alert number, local times, the device and the console link."""
    body = render(notice(), "ko")[1]
    assert "알림 번호: 42" in body
    assert "발생: 2025-11-21 12:00:05 KST" in body
    assert "기기: pir-h003" in body
    assert "콘솔: https://care.example.org/alerts/42" in body
    body_en = render(notice(console_url=None, event_ts=None), "en")[1]
    assert "Console" not in body_en and "Detected" not in body_en


def test_bad_ids_and_links_are_not_rendered() -> None:
    """A name where an id belongs, or a non-http link, is left out rather than sent."""
    n = notice(home="김영희", device="Kim Young-hee", console_url="javascript:alert(1)")
    title, body = render(n, "ko")
    assert "김영희" not in body and "Kim" not in body and "javascript" not in body
    assert title == "[긴급] 낙상 감지 — 센터 demo"


def test_unknown_locale_and_rule_fall_back() -> None:
    """An unknown locale renders Korean; a rule added later still renders, id only."""
    assert render(notice(), "ja") == render(notice(), "ko")
    assert render(notice(rule="new_rule", priority="medium"), "en")[0].startswith(
        "[WARNING] Alert (new_rule)")


def test_times_are_local_and_naive_means_utc() -> None:
    """Display times are KST; a naive datetime (SQLite) is read as UTC."""
    assert format_time(T0) == "2025-11-21 12:00:05 KST"
    assert format_time(T0.replace(tzinfo=None)) == "2025-11-21 12:00:05 KST"
    assert iso_utc(T0.replace(tzinfo=None)) == "2025-11-21T03:00:05.123Z"


def test_webhook_body_is_the_design_json() -> None:
    """webhook_body has exactly DESIGN.md §5's keys, UTC ISO times and the localized text."""
    doc = orjson.loads(webhook_body(notice(event_ts=None), "en"))
    assert list(doc) == ["id", "rule", "priority", "status", "site", "home", "device",
                         "raised_at", "event_ts", "text"]
    assert doc["id"] == 42 and doc["raised_at"] == "2025-11-21T03:00:05.123Z"
    assert doc["event_ts"] is None
    assert doc["text"] == render(notice(event_ts=None), "en")[1]


def test_service_unreachable_names_the_service() -> None:
    """The outbox's channel-down alert names the channel ("notify:webhook")."""
    n = notice(rule="service_unreachable", priority="low", home=None, device=None,
               detail={"service": "notify:webhook"})
    assert render(n, "en")[0] == "[NOTICE] Service unreachable (notify:webhook) — site demo"


def test_delivery_id_tells_notices_apart() -> None:
    """Retries of one notice share a delivery id; a later repeat at the same tier does not."""
    assert delivery_id(notice(kind="escalated", tier=2)) == "42-escalated-2"
    first = notice(kind="repeat", tier=1, step=2, detail={"tier": 2})
    later = notice(kind="repeat", tier=1, step=3, detail={"tier": 3})
    assert delivery_id(first) == "42-repeat-1-2"
    assert delivery_id(first) != delivery_id(later)


@pytest.mark.parametrize(("rule", "detail", "en", "ko"), [
    ("welfare_concern", {"quiet_h": 3.5}, "No movement for 3.5 h, far beyond", "3.5시간"),
    ("heat", {"temperature_c": 35.5, "tier": 2}, "35.5 °C (level 2)", "(2단계)"),
    ("heat", {"temperature_c": 32.5, "tier": 1}, "32.5 °C", "32.5°C"),
    ("sensor_disagrees", {"device": "t-1", "temperature_c": 36}, "doubtful (t-1, 36°C)",
     "온도 센서 값 의심"),
    ("sensor_blind", {"device": "pir-1"}, "Motion sensor sees nothing (pir-1)", "움직임"),
    ("sensor_blind", {"device": "pir-1", "unseen_h": 2.5},
     "Nobody seen for 2.5 h after the door or a plug was used: motion sensor blind, or "
     "resident unable to move; call", "거주자가 움직이지 못함, 연락 필요"),
    ("outbox_fault", {"device": "btn-1"}, "Device outbox fault (btn-1)", "저장 오류"),
    ("heat", {"n": 12, "temperature_c": 36.5}, "Heat in 12 homes at once", "폭염: 12가구"),
    ("acl_denied", {"device": "pir-9", "denied": 7}, "denied by the broker (pir-9, 7×)",
     "접근 거부 반복"),
])
def test_the_newer_rules_say_what_happened(rule: str, detail: dict[str, object], en: str,
                                           ko: str) -> None:
    """The quiet concern, heat levels and the sensor faults name what was seen, in both
    languages, from numbers and ids only."""
    n = notice(rule=rule, priority="medium", detail=detail)
    assert en in render(n, "en")[0]
    assert ko in render(n, "ko")[0]
