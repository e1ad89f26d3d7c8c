"""What a notification says, in Korean and English (DESIGN.md §5, §6).

Notifications leave Dolbom through third-party infrastructure (SMS gateways,
ntfy, Telegram, mail relays), so a text is built only from the opaque ids and
numbers of a ``Notice`` plus fixed wording: never a resident's name, phone
number or address (DESIGN.md §6). ``detail`` is read through an allow-list of
keys, and a value is used only if it is a number in a plausible range or an
opaque id (``protocol.ID_PATTERN``); anything else in it is ignored, so a
caller that put personal data there by mistake still leaks nothing.

``render`` is pure: the same notice and locale always give the same text.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo

from dolbom.alerts.model import InactivityTier, Thresholds
from dolbom.alerts.notify.notice import Notice
from dolbom.protocol import LIFE_SAFETY, is_valid_id

LOCALES = ("ko", "en")
DEFAULT_LOCALE = "ko"  # the registry's default (registry.models.Locale)

# Centres are in Korea (Thresholds.timezone); times in texts are shown in
# their local time with the zone's abbreviation, so nobody converts from UTC
# at 3 a.m. The machine-readable times (webhook JSON) stay UTC.
try:
    DISPLAY_TZ: tzinfo = zoneinfo.ZoneInfo(Thresholds().timezone)
except zoneinfo.ZoneInfoNotFoundError:  # no tz database: UTC, labelled as such
    DISPLAY_TZ = UTC

_DEFAULTS = Thresholds()
_INACTIVITY_HOURS = {
    InactivityTier.CAUTION: _DEFAULTS.inactivity_caution_h,
    InactivityTier.ALARM: _DEFAULTS.inactivity_alarm_h,
    InactivityTier.DANGER: _DEFAULTS.inactivity_danger_h,
}
_URL_RE = re.compile(r"^https?://[^\s<>\"]+$")
# A service name: "influxdb", "mqtt", "notify:webhook" (the outbox's channel-down alert).
_SERVICE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}(:[a-z][a-z0-9_-]{0,31})?$")

_PRIORITY_TAG = {
    "ko": {"high": "긴급", "medium": "경고", "low": "알림", "resolved": "해제"},
    "en": {"high": "URGENT", "medium": "WARNING", "low": "NOTICE", "resolved": "RESOLVED"},
}
_TIER_NAME = {
    "ko": {1: "주의", 2: "경보", 3: "위험"},
    "en": {1: "caution", 2: "alarm", 3: "danger"},
}
_STATUS = {
    "ko": {"open": "미확인", "acknowledged": "확인됨", "resolved": "해제됨"},
    "en": {"open": "open", "acknowledged": "acknowledged", "resolved": "resolved"},
}
# What the people told should do, by priority.
_ACTION = {
    "ko": {"high": "즉시 확인하고 대응해 주세요.", "medium": "대상자의 안부를 확인해 주세요.",
           "low": "기기나 서비스를 점검해 주세요."},
    "en": {"high": "Please check and respond now.", "medium": "Please check on the resident.",
           "low": "Please check the device or service."},
}
_FIELD = {
    "ko": {"alert": "알림 번호", "status": "상태", "raised": "발생", "event": "감지",
           "device": "기기", "console": "콘솔"},
    "en": {"alert": "Alert", "status": "status", "raised": "Raised", "event": "Detected",
           "device": "Device", "console": "Console"},
}


def _num(detail: Mapping[str, object], key: str, lo: float, hi: float) -> str | None:
    """A number from ``detail`` formatted for text, or None if absent or implausible."""
    v = detail.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    if not math.isfinite(f) or not lo <= f <= hi:
        return None
    return _fmt(f)


def _fmt(f: float) -> str:
    return str(int(f)) if f == int(f) else f"{f:.1f}"


def _id(detail: Mapping[str, object], key: str, fallback: str | None = None) -> str | None:
    """An opaque id from ``detail`` (else ``fallback``); anything that is not an id is dropped."""
    v = detail.get(key, fallback)
    if isinstance(v, str) and is_valid_id(v):
        return v
    return fallback if fallback is not None and is_valid_id(fallback) else None


def _paren(s: str | None) -> str:
    return f" ({s})" if s else ""


def label(notice: Notice, loc: str) -> str:
    """The rule's headline, e.g. "낙상 감지" / "No activity for 24 h (alarm)"."""
    d = notice.detail
    ko = loc == "ko"
    dev = _id(d, "device", notice.device)
    match notice.rule:
        # life-safety
        case "button":
            return "비상 버튼 호출" if ko else "Emergency button pressed"
        case "fall":
            return "낙상 감지" if ko else "Fall detected"
        case "smoke":
            return "화재(연기) 감지" if ko else "Smoke detected (possible fire)"
        case "gas":
            return "가스 누출 감지" if ko else "Gas leak detected"
        case "sos_voice":
            return "음성 구조 요청" if ko else "Voice call for help"
        # welfare
        case "inactivity":
            tier_s = _num(d, "tier", 1, 3)
            tier = int(tier_s) if tier_s is not None and tier_s.isdigit() else None
            hours = _num(d, "hours", 0.1, 24 * 365)
            if hours is None and tier is not None:
                hours = _fmt(_INACTIVITY_HOURS[InactivityTier(tier)])
            tier_name = _TIER_NAME[loc][tier] if tier is not None else None
            if hours is None:
                return ("활동 없음" if ko else "No activity") + _paren(tier_name)
            return (f"활동 없음 {hours}시간" if ko else f"No activity for {hours} h") + _paren(
                tier_name)
        case "no_door_use":
            days = _num(d, "days", 0.1, 365) or _fmt(_DEFAULTS.no_door_days)
            return f"문 사용 없음 {days}일" if ko else f"No door use for {days} days"
        case "heat" | "cold" if _num(d, "n", 2, 1e6) is not None:
            n = _num(d, "n", 2, 1e6)
            if notice.rule == "heat":
                return f"폭염: {n}가구 고온 (위험 순 목록)" if ko else (
                    f"Heat in {n} homes at once (list by risk)")
            return f"한파: {n}가구 저온 (위험 순 목록)" if ko else (
                f"Cold in {n} homes at once (list by risk)")
        case "heat":
            t = _num(d, "temperature_c", -60, 100)
            level = _level(d, ko)
            if t is None:
                return ("실내 고온" if ko else "Indoor temperature too high") + level
            return (f"실내 고온 {t}°C" if ko else f"Indoor temperature high: {t} °C") + level
        case "cold":
            t = _num(d, "temperature_c", -60, 100)
            level = _level(d, ko)
            if t is None:
                return ("실내 저온" if ko else "Indoor temperature too low") + level
            return (f"실내 저온 {t}°C" if ko else f"Indoor temperature low: {t} °C") + level
        case "out_of_bed_at_night":
            m = _num(d, "minutes", 1, 24 * 60) or _fmt(_DEFAULTS.out_of_bed_minutes)
            return f"야간 침대 이탈 {m}분" if ko else f"Out of bed at night for {m} min"
        case "night_exit":
            return "야간 외출 감지" if ko else "Night-time exit detected"
        case "no_power_use":
            h = _num(d, "hours", 0.1, 24 * 365) or _fmt(_DEFAULTS.no_power_h)
            return f"전력 사용 없음 {h}시간" if ko else f"No power use for {h} h"
        case "welfare_concern":
            quiet_h = _num(d, "quiet_h", 0.1, 24 * 365)
            if quiet_h is None:
                return "평소와 다른 상황" if ko else "Unusual for this person"
            return (f"평소보다 훨씬 긴 정적 {quiet_h}시간" if ko
                    else f"No movement for {quiet_h} h, far beyond this person's usual")
        # technical
        case "sensor_blind":
            unseen = _num(d, "unseen_h", 0.1, 24 * 365)
            if unseen is not None:  # one unseen sign: the sensor, or a resident who cannot move
                return (f"문·전력 사용 뒤 {unseen}시간 움직임 없음: 감지기 이상 또는 거주자가 "
                        "움직이지 못함, 연락 필요" if ko
                        else f"Nobody seen for {unseen} h after the door or a plug was used: "
                        "motion sensor blind, or resident unable to move; call")
            return ("움직임 감지기가 감지하지 못함" if ko
                    else "Motion sensor sees nothing") + _paren(dev)
        case "sensor_disagrees":
            t = _num(d, "temperature_c", -60, 100)
            what = ", ".join(x for x in (dev, f"{t}°C" if t is not None else None) if x)
            return ("온도 센서 값 의심" if ko
                    else "Temperature reading doubtful") + _paren(what)
        case "acl_denied":
            n = _num(d, "denied", 1, 1e9)
            what = ", ".join(x for x in (dev, f"{n}×" if n is not None else None) if x)
            return ("접근 거부 반복" if ko
                    else "Device repeatedly denied by the broker") + _paren(what)
        case "broker_backlog":
            # the cell's broker and the messages it holds for absent clients
            cell = _id(d, "cell")
            n = _num(d, "held", 0, 1e12)
            held = (f"{n}건" if ko else f"{n} messages") if n is not None else None
            what = ", ".join(x for x in (cell, held) if x)
            return ("브로커 메시지 적체" if ko
                    else "Messages piling up in the broker") + _paren(what)
        case "outbox_fault":
            return ("기기 비상 이벤트 저장 오류" if ko
                    else "Device outbox fault") + _paren(dev)
        case "device_lost":
            return ("기기 신호 없음" if ko else "Device lost") + _paren(dev) + _unseen(d, ko)
        case "battery_low":
            pct = _num(d, "battery_pct", 0, 100)
            what = ", ".join(x for x in (dev, f"{pct}%" if pct is not None else None) if x)
            return ("배터리 부족" if ko else "Low battery") + _paren(what)
        case "tamper":
            return ("기기 훼손·분리 감지" if ko else "Device tampering") + _paren(dev)
        case "gateway_lost":
            gw = _id(d, "gateway", notice.device)
            return ("게이트웨이 신호 없음" if ko else "Gateway lost") + _paren(gw) + _unseen(d, ko)
        case "service_unreachable":
            v = d.get("service")
            svc = v if isinstance(v, str) and _SERVICE_RE.match(v) else None
            return ("서비스 연결 불가" if ko else "Service unreachable") + _paren(svc)
        case _:  # a rule added after this file: still a useful, id-only text
            rule = notice.rule if is_valid_id(notice.rule) else None
            return ("알림" if ko else "Alert") + _paren(rule)


def _homeless_device(notice: Notice) -> str | None:
    """The device of a life-safety alert that has no home (a device not assigned to one:
    docs/alerts.md), else None."""
    if notice.home is not None or notice.rule not in LIFE_SAFETY:
        return None
    return _id(notice.detail, "device", notice.device)


def _unseen(d: Mapping[str, object], ko: bool) -> str:
    """A home left with no working activity sensor, told again (``devices.unwatched``)."""
    h = _num(d, "unwatched_h", 1, 24 * 365)
    if h is None:
        return ""
    return (f": {h}시간 동안 거주자 확인 불가, 전화 또는 방문 필요" if ko
            else f": nobody has seen the resident for {h} h, call or visit")


def _level(d: Mapping[str, object], ko: bool) -> str:
    """Heat and cold levels 2 and 3 (a worse level is told again)."""
    level = _num(d, "tier", 1, 3)
    if level is None or level == "1":
        return ""
    return f" ({level}단계)" if ko else f" (level {level})"


def _where(notice: Notice, loc: str) -> str:
    site = notice.site if is_valid_id(notice.site) else "?"
    if notice.home is not None and is_valid_id(notice.home):
        return f"가구 {notice.home} (센터 {site})" if loc == "ko" else (
            f"home {notice.home} (site {site})")
    dev = _homeless_device(notice)
    if dev is not None:
        return f"기기 {dev}, 가구 미지정 (센터 {site})" if loc == "ko" else (
            f"device {dev}, not assigned to a home (site {site})")
    return f"센터 {site}" if loc == "ko" else f"site {site}"


def _alarm_lines(notice: Notice, loc: str) -> list[str]:
    """What else a person must know about a life-safety alarm: a device with no home
    (where is it?), a message that could not be read (only its type is known)."""
    ko = loc == "ko"
    lines = []
    if notice.rule in LIFE_SAFETY and notice.detail.get("undecodable") is True:
        lines.append("기기 메시지를 읽을 수 없어 경보 종류만 확인되었습니다." if ko else
                     "The device's message could not be read: only the kind of alarm is "
                     "known.")
    if _homeless_device(notice) is not None:
        lines.append("가구에 배정되지 않은 기기입니다. 설치 위치를 확인해 주세요." if ko else
                     "This device is not assigned to a home: check where it is installed.")
    return lines


def _marker(notice: Notice, loc: str) -> str:
    """What kind of message this is, between the tag and the headline."""
    tier = notice.tier if isinstance(notice.tier, int) and 0 < notice.tier < 100 else None
    if loc == "ko":
        return {"renotify": "(재알림) ", "repeat": "(반복) ",
                "escalated": f"(상향{f' {tier}단계' if tier else ''}) "}.get(notice.kind, "")
    return {"renotify": "(reminder) ", "repeat": "(again) ",
            "escalated": f"(escalated{f', tier {tier}' if tier else ''}) "}.get(notice.kind, "")


def _kind_line(notice: Notice, loc: str) -> str:
    ko = loc == "ko"
    action = _ACTION[loc].get(notice.priority, _ACTION[loc]["medium"])
    match notice.kind:
        case "resolved":
            return "이 알림은 해제되었습니다." if ko else "This alert has been resolved."
        case "renotify":
            return ("아직 아무도 확인하지 않았습니다. " if ko
                    else "Nobody has acknowledged this yet. ") + action
        case "escalated":
            return ("확인되지 않아 상위 담당자에게 전달되었습니다. " if ko
                    else "Not acknowledged in time: escalated to you. ") + action
        case "repeat":
            return ("같은 상황이 다시 감지되었습니다. " if ko
                    else "The same condition was detected again. ") + action
        case _:
            return action


def format_time(ts: datetime) -> str:
    """Local display time, e.g. "2025-11-21 21:00:05 KST"; naive datetimes are taken as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    local = ts.astimezone(DISPLAY_TZ)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "UTC")


def title_of(notice: Notice, locale: str) -> str:
    loc = locale if locale in LOCALES else DEFAULT_LOCALE
    tags = _PRIORITY_TAG[loc]
    tag = tags["resolved"] if notice.kind == "resolved" else tags.get(notice.priority, tags["low"])
    return f"[{tag}] {_marker(notice, loc)}{label(notice, loc)} — {_where(notice, loc)}"


def detail_lines(notice: Notice, locale: str) -> list[str]:
    """The body after its headline: what to do, which alert, when, which device, the link."""
    loc = locale if locale in LOCALES else DEFAULT_LOCALE
    f = _FIELD[loc]
    status = _STATUS[loc].get(notice.status, "?")
    lines = [
        _kind_line(notice, loc),
        *_alarm_lines(notice, loc),
        f"{f['alert']} {notice.alert_id} · {f['status']}: {status}" if loc == "en"
        else f"{f['alert']}: {notice.alert_id} · {f['status']}: {status}",
        f"{f['raised']}: {format_time(notice.raised_at)}",
    ]
    if notice.event_ts is not None:
        lines.append(f"{f['event']}: {format_time(notice.event_ts)}")
    if notice.device is not None and is_valid_id(notice.device):
        lines.append(f"{f['device']}: {notice.device}")
    if notice.console_url and _URL_RE.match(notice.console_url):
        lines.append(f"{f['console']}: {notice.console_url}")
    return lines


def render(notice: Notice, locale: str) -> tuple[str, str]:
    """(title, body) in ``locale`` ("ko" or "en"; anything else falls back to Korean).

    The body's first line is the title, so the body alone (webhook ``text``, an
    SMS) is complete; channels with a title field of their own send
    ``detail_lines`` instead.
    """
    title = title_of(notice, locale)
    return title, "\n".join([title, *detail_lines(notice, locale)])
