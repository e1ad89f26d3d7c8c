"""What people read about an alarm with no home or with a broken payload: which device,
that it has no home, in Korean and English, ids only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from dolbom.alerts.notify import Notice, render

T0 = datetime(2025, 11, 21, 3, 0, 5, tzinfo=UTC)
HANGUL = re.compile(r"[\uac00-\ud7a3]")
PII = ("김영희", "010-1234-5678", "서울시 종로구")


def notice(**kw: Any) -> Notice:
    base: dict[str, Any] = dict(
        alert_id=7, rule="smoke", priority="high", status="open", site="s1", home=None,
        device="smk-c1", raised_at=T0, event_ts=T0, kind="raised", tier=1,
        detail={"device": "smk-c1", "no_home": True})
    base.update(kw)
    return Notice(**base)


@pytest.mark.parametrize(("locale", "title"), [
    ("en", "[URGENT] Smoke detected (possible fire) — device smk-c1, not assigned to a home "
           "(site s1)"),
    ("ko", "[긴급] 화재(연기) 감지 — 기기 smk-c1, 가구 미지정 (센터 s1)"),
])
def test_homeless_alarm_names_the_device_and_says_it_has_no_home(locale: str,
                                                                 title: str) -> None:
    """The headline says what, at which device, that it has no home, and which site."""
    got_title, body = render(notice(), locale)
    assert got_title == title
    hint = ("This device is not assigned to a home" if locale == "en"
            else "가구에 배정되지 않은 기기입니다")
    assert hint in body
    assert bool(HANGUL.search(body)) is (locale == "ko")


@pytest.mark.parametrize("locale", ["en", "ko"])
def test_broken_payload_alarm_says_only_the_type_is_known(locale: str) -> None:
    """A broken payload's alarm says the message could not be read, and never quotes it."""
    raw = '{"name":"김영희","phone":"010-1234-5678","addr":"서울시 종로구"}'
    n = notice(rule="button", home="h1", device="btn-h1", event_ts=None,
               detail={"device": "btn-h1", "undecodable": True, "reason": "bad_field",
                       "payload": raw})
    title, body = render(n, locale)
    assert ("could not be read" in body) if locale == "en" else ("읽을 수 없" in body)
    for pii in PII:
        assert pii not in body
    assert "btn-h1" in body and "h1" in title


def test_home_alarm_text_is_unchanged() -> None:
    """An alarm of a home still reads as before: home and site, no 'no home' wording."""
    title, body = render(notice(rule="fall", home="h003", device="pir-h003",
                                detail={"device": "pir-h003"}), "en")
    assert title == "[URGENT] Fall detected — home h003 (site s1)"
    assert "not assigned" not in body and "could not be read" not in body
