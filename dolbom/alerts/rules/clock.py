"""Local-time windows for the welfare rules (DESIGN.md §5: sleep window, night window).

All times are ms UTC ints; a window is "HH:MM"-"HH:MM" in the resident's time zone
and wraps midnight when its end is not after its start ("22:00"-"07:00"). A window
whose start equals its end is empty. Each day's window is converted to UTC on its
own local date, so a daylight-saving change moves it with the wall clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MIN = 24 * 60


@lru_cache(maxsize=64)
def zone(key: str) -> ZoneInfo:
    """The time zone ``key`` (``ZoneInfoNotFoundError``, a ``KeyError``, if there is none)."""
    return ZoneInfo(key)


@lru_cache(maxsize=256)
def hhmm(text: str) -> int:
    """Minutes since local midnight of ``"HH:MM"``; ``ValueError`` for anything else."""
    hh, sep, mm = text.partition(":")
    if sep != ":" or len(hh) != 2 or len(mm) != 2 or not (hh + mm).isdigit():
        raise ValueError(f"time of day {text!r} is not HH:MM")
    h, m = int(hh), int(mm)
    if h > 23 or m > 59:
        raise ValueError(f"time of day {text!r} is not HH:MM")
    return h * 60 + m


def local_minute(ms: int, tz: str) -> int:
    """Minute of the local day (0-1439) at ``ms``."""
    t = datetime.fromtimestamp(ms / 1000, zone(tz))
    return t.hour * 60 + t.minute


def in_window(ms: int, tz: str, start: str, end: str) -> bool:
    """Whether ``ms`` falls inside the daily local window [start, end)."""
    s, e = hhmm(start), hhmm(end)
    if s == e:
        return False
    m = local_minute(ms, tz)
    return s <= m < e if s < e else (m >= s or m < e)


def _utc_ms(day: date, minute: int, z: ZoneInfo) -> int:
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=z)
    return round(local.timestamp() * 1000)


def _window_on(day: date, s: int, e: int, z: ZoneInfo) -> tuple[int, int]:
    """The window that starts on local date ``day``, in UTC ms."""
    end_day = day + timedelta(days=1) if e <= s else day
    return _utc_ms(day, s, z), _utc_ms(end_day, e, z)


def awake_crossing(since_ms: int, need_ms: int, tz: str, start: str, end: str) -> int:
    """The first time at which ``need_ms`` of time outside the window has passed since
    ``since_ms``: when a resident silent since ``since_ms`` has been silent for
    ``need_ms`` of awake time. Time inside the sleep window does not count."""
    s, e = hhmm(start), hhmm(end)
    if s == e or need_ms <= 0:
        return since_ms + max(need_ms, 0)
    z = zone(tz)
    # Start one local day early: yesterday's window may still be running at since_ms.
    day = datetime.fromtimestamp(since_ms / 1000, z).date() - timedelta(days=1)
    t, remaining = since_ms, need_ms
    while True:
        ws, we = _window_on(day, s, e, z)
        day += timedelta(days=1)
        if we <= t:
            continue
        if ws > t:
            if remaining <= ws - t:
                return t + remaining
            remaining -= ws - t
        t = we


def awake_between(a_ms: int, b_ms: int, tz: str, start: str, end: str) -> int:
    """Time outside the window between ``a_ms`` and ``b_ms`` (0 if b is not after a)."""
    if b_ms <= a_ms:
        return 0
    s, e = hhmm(start), hhmm(end)
    if s == e:
        return b_ms - a_ms
    z = zone(tz)
    day = datetime.fromtimestamp(a_ms / 1000, z).date() - timedelta(days=1)
    asleep = 0
    while True:
        ws, we = _window_on(day, s, e, z)
        day += timedelta(days=1)
        if ws >= b_ms:
            return b_ms - a_ms - asleep
        asleep += max(0, min(we, b_ms) - max(ws, a_ms))
