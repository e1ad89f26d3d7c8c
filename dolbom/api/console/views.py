"""The console's view models (pure): alerts, devices and the home mode → what a tile says.

No database, no HTTP, no clock of their own: every function takes plain facts and
``now`` and returns frozen values, so the state rules live in one small table of tests
(``tests/api/test_console_views.py``).

Tile states, worst first (DESIGN.md §5):

=========  ==============================================================  =======
state      when                                                            colour
=========  ==============================================================  =======
alert      an unresolved life-safety (high-priority) alert                 red
attention  an unresolved welfare alert                                     amber
device     an unresolved technical alert, or a device whose last word      violet
           was ``lost`` (its Last Will)
away       the home is in away or hospital mode (welfare rules are off)    grey
ok         none of the above                                               green
=========  ==============================================================  =======

A device's silence is judged by the alerts service (``device_lost`` knows each
device's promised interval and a battery device's announced ``next``); the console
does not guess it again from ``last_seen_at``: one rule, one place.
Life-safety beats away: a fall in a home marked away is still a fall.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

RESOLVED = "resolved"
OUTCOMES = ("false_alarm", "visited_ok", "needs_care", "emergency_dispatched", "hospitalised",
            "deceased")  # what a person may choose (auto_cleared is the system's)
ACTIVITY_TYPES = ("motion", "door", "bed", "presence")  # DESIGN.md §3 activity events
_PRIORITY_RANK = {"high": 2, "medium": 1, "low": 0}


class TileState(enum.StrEnum):
    ALERT = "alert"
    ATTENTION = "attention"
    DEVICE = "device"
    AWAY = "away"
    OK = "ok"


_STATE_RANK = {TileState.ALERT: 4, TileState.ATTENTION: 3, TileState.DEVICE: 2,
               TileState.AWAY: 1, TileState.OK: 0}


@dataclass(frozen=True, slots=True)
class AlertFacts:
    id: int
    rule: str
    klass: str  # life_safety | welfare | technical
    priority: str  # high | medium | low
    status: str  # open | acknowledged | resolved
    raised_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    id: str
    kind: str
    last_state: str | None
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Tile:
    state: TileState
    state_key: str  # the catalogue key of the words ("state.hospital" for hospital mode)
    open_alerts: int
    worst: AlertFacts | None  # the alert that decided the state, for its headline


def _alert_state(a: AlertFacts) -> TileState:
    if a.klass == "life_safety" or a.priority == "high":
        return TileState.ALERT
    if a.klass == "welfare":
        return TileState.ATTENTION
    return TileState.DEVICE


def worst_first(alerts: Iterable[AlertFacts]) -> list[AlertFacts]:
    """Unresolved alerts, the most urgent first, then the oldest (longest waiting) first."""
    return sorted((a for a in alerts if a.status != RESOLVED),
                  key=lambda a: (-_STATE_RANK[_alert_state(a)],
                                 -_PRIORITY_RANK.get(a.priority, 0),
                                 a.status != "open", a.raised_at, a.id))


def tile(alerts: Iterable[AlertFacts], devices: Iterable[DeviceFacts], mode: str) -> Tile:
    """The state of one resident's tile (the table in this module's docstring)."""
    pending = worst_first(alerts)
    if pending:
        state = _alert_state(pending[0])
        if state is not TileState.DEVICE:
            return Tile(state, f"state.{state.value}", len(pending), pending[0])
        return Tile(state, "state.device", len(pending), pending[0])
    if any(d.last_state == "lost" and not d.revoked for d in devices):
        return Tile(TileState.DEVICE, "state.device", 0, None)
    if mode in ("away", "hospital"):
        key = "state.hospital" if mode == "hospital" else "state.away"
        return Tile(TileState.AWAY, key, 0, None)
    return Tile(TileState.OK, "state.ok", 0, None)


def tile_order(state: TileState) -> int:
    """Sort key: the worst tiles first on the board."""
    return -_STATE_RANK[state]


# -- the escalation clock ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EscalationClock:
    since_s: float  # since raised
    next_in_s: float | None  # until the next escalation step; negative when overdue
    phase: str  # "counting" | "due" | "stopped" (acknowledged) | "none" | "resolved"


def escalation_clock(status: str, raised_at: datetime, next_escalation_at: datetime | None,
                     now: datetime) -> EscalationClock:
    """Time since the alert was raised and until its next escalation step, from the
    alert's own fields (the alerts service keeps ``next_escalation_at`` current)."""
    since = (now - raised_at).total_seconds()
    if status == RESOLVED:
        return EscalationClock(since, None, "resolved")
    if status == "acknowledged":
        return EscalationClock(since, None, "stopped")
    if next_escalation_at is None:
        return EscalationClock(since, None, "none")
    left = (next_escalation_at - now).total_seconds()
    return EscalationClock(since, left, "counting" if left > 0 else "due")


# -- activity: today by hour, the last 7 days by day --------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # shown under the bar ("09", "11/21")
    title: str  # the full label, for the accessible name ("11/21 (Fri)")
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    baseline: float
    bars: tuple[Bar, ...]
    max_value: int


def bar_chart(points: Sequence[tuple[str, str, int]], *, width: int = 336, height: int = 140,
              label_h: int = 20, gap: float = 0.2) -> BarChart:
    """Geometry of a bar chart drawn as inline SVG: ``points`` are (label, title, value).

    Bars share the width evenly; the tallest bar fills the plot; a zero is a 1 px
    line so that "no activity" is visible as a value and not as a gap in the data.
    """
    n = max(1, len(points))
    plot_h = height - label_h
    top = max((v for _, _, v in points), default=0)
    slot = width / n
    bw = slot * (1 - gap)
    bars = []
    for i, (label, title, v) in enumerate(points):
        h = plot_h * v / top if top else 0.0
        h = max(h, 1.0)
        bars.append(Bar(label, title, v, round(i * slot + (slot - bw) / 2, 1),
                        round(plot_h - h, 1), round(bw, 1), round(h, 1)))
    return BarChart(width, height, float(plot_h), tuple(bars), top)


def local_midnight(now: datetime, tz: tzinfo) -> datetime:
    """The start of today in the care centre's time zone, as an aware datetime."""
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def hourly(times: Iterable[datetime], now: datetime, tz: tzinfo) -> list[int]:
    """Activity events per local hour of today (24 counts; hours still to come are 0)."""
    start = local_midnight(now, tz)
    counts = [0] * 24
    for ts in times:
        local = ts.astimezone(tz)
        if start <= local <= now:
            counts[local.hour] += 1
    return counts


def week_days(now: datetime, tz: tzinfo, days: int = 7) -> list[date]:
    """The last ``days`` local dates, oldest first, today last."""
    today = now.astimezone(tz).date()
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


def daily(counts: dict[date, int], now: datetime, tz: tzinfo, days: int = 7
          ) -> list[tuple[date, int]]:
    """Counts for each of the last ``days`` local dates, 0 where nothing was recorded."""
    return [(d, counts.get(d, 0)) for d in week_days(now, tz, days)]


def activity_words(kind: str, val: object) -> str:
    """The catalogue key for one activity event ("activity.door.open")."""
    if kind in ("door", "bed") and isinstance(val, str) and val in (
            "open", "closed", "in", "out"):
        return f"activity.{kind}.{val}"
    return f"activity.{kind}" if kind in ACTIVITY_TYPES else "activity.motion"


def device_state_key(last_state: str | None, revoked: bool) -> str:
    if revoked:
        return "device.state.revoked"
    if last_state in ("ready", "sleeping", "disconnected", "lost"):
        return f"device.state.{last_state}"
    return "device.state.unknown"


def device_ok(last_state: str | None, revoked: bool) -> bool:
    return not revoked and last_state in ("ready", "sleeping")
