"""What the console's pages show, read from the registry, the alert journal and InfluxDB.

Thin: who may see what is ``dolbom.api.access``; alert transitions are
``dolbom.alerts.lifecycle``; a tile's state is ``views.tile`` and the board's tiles are
``tiles``. This module only gathers the facts for one page in a few queries and shapes
them for the templates.

InfluxDB is optional for every page (DESIGN.md §2: an InfluxDB outage delays charts,
never an alarm): when it does not answer, the page says so and shows the rest.
InfluxQL text here is constant; the home ids go in as bound parameters
(``$h0``, ``$h1`` …), like in ``dolbom.influx.query``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.alerts.notify import texts
from dolbom.alerts.notify.notice import Notice
from dolbom.api.access import Scope
from dolbom.api.console import views
from dolbom.api.console.i18n import ago, duration, translator
from dolbom.influx.query import InfluxUnavailable
from dolbom.registry.models import Alert, AlertEvent, Device, Home, Resident, User, WatchItem

TZ: tzinfo = texts.DISPLAY_TZ  # the care centre's zone (Asia/Seoul), as in the notices
# ``{homes}`` becomes '"home" = $h0 OR "home" = $h1 ...': parameter names, never values.
Q_LAST_ACTIVITY = ('SELECT last("seq") FROM "event" WHERE ({homes}) AND '
                   '"type" =~ /^(motion|door|bed|presence)$/ AND time >= $since GROUP BY "home"')
Q_ACTIVITY_HOURLY = ('SELECT count("seq") AS "n" FROM "event" WHERE "home" = $home AND '
                     '"type" =~ /^(motion|door|bed|presence)$/ AND time >= $since '
                     "AND time < $until GROUP BY time(1h) fill(0)")
Q_BATTERY = ('SELECT last("battery_pct") AS "v" FROM "reading" WHERE "home" = $home '
             'AND time >= $since GROUP BY "device"')
HOMES_PER_QUERY = 100
LAST_ACTIVITY_DAYS = 30
TODAY_EVENTS_SHOWN = 50


class InfluxRow(Protocol):
    @property
    def time_ms(self) -> int: ...
    @property
    def tags(self) -> dict[str, str]: ...
    @property
    def values(self) -> dict[str, Any]: ...


class Reader(Protocol):
    """The read side of InfluxDB the console needs (``dolbom.influx.query.InfluxReader``)."""

    def query(self, q: str, params: dict[str, Any]) -> Sequence[InfluxRow]: ...

    def activity(self, home: str, since: datetime, until: datetime,
                 limit: int) -> Sequence[InfluxRow]: ...

    def readings(self, home: str, field: str, interval: str, since: datetime,
                 until: datetime) -> Sequence[InfluxRow]: ...


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def local_time(t: datetime, with_date: bool = True) -> str:
    local = t.astimezone(TZ)
    return local.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M:%S")


# -- alerts ------------------------------------------------------------------------


def headline(alert: Alert, locale: str) -> str:
    """The alert's words, exactly as its notifications put them ("낙상 감지")."""
    notice = Notice(alert_id=alert.id, rule=alert.rule, priority=alert.priority,
                    status=alert.status, site=alert.site_id, home=alert.home_id,
                    device=alert.device_id, raised_at=alert.raised_at, event_ts=alert.event_ts,
                    kind="raised", tier=alert.tier, detail=dict(alert.detail or {}))
    # One wording for notices and the console: texts' headline builder (its title adds
    # the priority tag and the place, which the console shows in its own fields).
    return texts.label(notice, locale)


@dataclass(frozen=True, slots=True)
class ResidentRef:
    id: int
    name: str
    link: bool  # the viewer may open the resident's page


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    rule: str
    klass: str
    priority: str
    status: str
    headline: str
    home: str | None
    device: str | None
    residents: tuple[ResidentRef, ...]
    count: int
    tier: int
    outcome: str | None
    assignee: str | None
    raised_iso: str
    raised_ms: int
    raised_local: str
    next_ms: int | None
    clock: views.EscalationClock
    since_text: str
    left_text: str


def residents_by_home(session: Session, homes: Iterable[str | None]) -> dict[str, list[Resident]]:
    ids = sorted({h for h in homes if h})
    out: dict[str, list[Resident]] = defaultdict(list)
    if not ids:
        return out
    for r in session.scalars(select(Resident).where(Resident.home_id.in_(ids))
                             .order_by(Resident.id)):
        out[r.home_id].append(r)
    return out


def alert_rows(session: Session, scope: Scope, alerts: Sequence[Alert], locale: str,
               now: datetime) -> list[AlertRow]:
    by_home = residents_by_home(session, (a.home_id for a in alerts))
    people = {u.id: u.display_name for u in session.scalars(
        select(User).where(User.id.in_(sorted({a.assignee_id for a in alerts
                                               if a.assignee_id is not None}))))}
    rows = []
    for a in alerts:
        clock = views.escalation_clock(a.status, a.raised_at, a.next_escalation_at, now)
        # Only the residents this person may see: a housemate's name stays hidden.
        refs = tuple(ResidentRef(r.id, r.name, scope.sees_registry and (
            scope.resident_ids is None or r.id in scope.resident_ids))
            for r in by_home.get(a.home_id or "", []) if scope.sees_person(r.id))
        rows.append(AlertRow(
            id=a.id, rule=a.rule, klass=a.klass, priority=a.priority, status=a.status,
            headline=headline(a, locale), home=a.home_id, device=a.device_id, residents=refs,
            count=a.count, tier=a.tier, outcome=a.outcome,
            assignee=people.get(a.assignee_id) if a.assignee_id is not None else None,
            raised_iso=a.raised_at.isoformat(), raised_ms=_ms(a.raised_at),
            raised_local=local_time(a.raised_at),
            next_ms=_ms(a.next_escalation_at) if a.next_escalation_at is not None else None,
            clock=clock, since_text=duration(clock.since_s, locale),
            left_text=duration(clock.next_in_s or 0, locale)))
    return rows


def inbox_order(alerts: Sequence[Alert]) -> list[Alert]:
    """Unresolved alerts, the most urgent and longest-waiting first (``views.worst_first``)."""
    facts = {a.id: a for a in alerts}
    ordered = views.worst_first(views.AlertFacts(a.id, a.rule, a.klass, a.priority, a.status,
                                                 a.raised_at) for a in alerts)
    return [facts[f.id] for f in ordered]


@dataclass(frozen=True, slots=True)
class Contact:
    """Who an alert is about and how to reach them (responders need this to respond)."""

    id: int
    name: str
    phone: str | None
    address: str | None
    link: bool


def contacts(session: Session, scope: Scope, alert: Alert) -> list[Contact]:
    return [Contact(r.id, r.name, r.phone, r.address, scope.sees_registry and (
        scope.resident_ids is None or r.id in scope.resident_ids))
        for r in residents_by_home(session, [alert.home_id]).get(alert.home_id or "", [])
        if scope.sees_person(r.id)]


@dataclass(frozen=True, slots=True)
class TimelineItem:
    kind: str
    iso: str
    local: str
    actor: str
    text: str


def timeline_items(events: Sequence[AlertEvent], locale: str) -> list[TimelineItem]:
    t = translator(locale)
    out = []
    for e in events:
        d = e.detail if isinstance(e.detail, dict) else {}
        bits: list[str] = []
        if e.kind == "note" and isinstance(d.get("text"), str):
            bits.append(d["text"])
        if isinstance(d.get("outcome"), str):
            bits.append(t(f"outcome.{d['outcome']}"))
        if e.kind == "escalated" and isinstance(d.get("tier"), int):
            bits.append(t("alert.tier", tier=d["tier"]))
        if e.kind == "assigned" and isinstance(d.get("assignee"), str):
            bits.append(d["assignee"])
        if e.kind == "repeated" and isinstance(d.get("count"), int):
            bits.append(t("alert.count", n=d["count"]))
        actor = t("alert.system") if e.actor == "system" else e.actor
        out.append(TimelineItem(e.kind, e.at.isoformat(), local_time(e.at), actor,
                                " · ".join(bits)))
    return out


# -- InfluxDB: the last activity of many homes -------------------------------------------


def chunks(items: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def last_activity(reader: Reader | None, homes: Sequence[str], now: datetime
                  ) -> dict[str, datetime] | None:
    """The last activity event per home in the last 30 days; None if InfluxDB is down."""
    if reader is None:
        return None
    out: dict[str, datetime] = {}
    try:
        for chunk in chunks(sorted(homes), HOMES_PER_QUERY):
            params: dict[str, Any] = {f"h{i}": h for i, h in enumerate(chunk)}
            params["since"] = _rfc3339(now - timedelta(days=LAST_ACTIVITY_DAYS))
            cond = " OR ".join(f'"home" = $h{i}' for i in range(len(chunk)))
            for row in reader.query(Q_LAST_ACTIVITY.format(homes=cond), params):
                home = row.tags.get("home")
                if home:
                    out[home] = datetime.fromtimestamp(row.time_ms / 1000, UTC)
    except InfluxUnavailable:
        return None
    return out


Groups = Sequence[tuple[Reader, Sequence[str]]]
CELLS_AT_ONCE = 8  # InfluxDBs asked at the same time for one board


def last_activity_in_cells(groups: Groups, now: datetime
                           ) -> tuple[dict[str, datetime], set[str]]:
    """The last activity per home, each group's homes from its own InfluxDB (a cell's):
    the found times, and the homes whose InfluxDB did not answer.

    Each InfluxDB gets the same queries as one alone (``last_activity``: one per
    ``HOMES_PER_QUERY`` of its homes), and the InfluxDBs are asked at the same time, so a
    cell whose InfluxDB hangs costs the board one timeout, not one per cell, and blanks
    only its own homes' tiles.
    """
    found: dict[str, datetime] = {}
    down: set[str] = set()
    if not groups:
        return found, down
    with ThreadPoolExecutor(max_workers=min(len(groups), CELLS_AT_ONCE),
                            thread_name_prefix="console-influx") as pool:
        answers = list(pool.map(lambda g: last_activity(g[0], g[1], now), groups))
    for (_, homes), got in zip(groups, answers, strict=True):
        if got is None:
            down.update(homes)
        else:
            found.update(got)
    return found, down


# -- the resident page ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResidentView:
    id: int
    name: str
    home: str
    mode: str
    mode_reason: str | None
    phone: str | None
    address: str | None
    birth_year: int | None
    wandering: bool


@dataclass(frozen=True, slots=True)
class DeviceView:
    id: str
    kind: str
    power: str
    state_key: str
    ok: bool
    last_seen: str
    last_seen_iso: str | None
    battery: int | None


@dataclass(frozen=True, slots=True)
class EventView:
    iso: str
    local: str
    words: str
    device: str


@dataclass(frozen=True, slots=True)
class Temperature:
    now: str
    lo: str
    hi: str


@dataclass(frozen=True, slots=True)
class History:
    """Everything the resident page takes from InfluxDB (``down``: it did not answer)."""

    down: bool
    today_chart: views.BarChart | None = None
    week_chart: views.BarChart | None = None
    today_events: tuple[EventView, ...] = ()
    temperature: Temperature | None = None
    battery: dict[str, int] | None = None


def _fmt_c(v: float) -> str:
    return f"{v:.1f}"


def history(reader: Reader | None, home: str, now: datetime, locale: str) -> History:
    if reader is None:
        return History(down=True)
    midnight = views.local_midnight(now, TZ)
    week_start = views.local_midnight(now - timedelta(days=6), TZ)
    try:
        hourly_rows = reader.query(Q_ACTIVITY_HOURLY, {
            "home": home, "since": _rfc3339(week_start), "until": _rfc3339(now)})
        events = reader.activity(home, midnight, now + timedelta(seconds=1), 500)
        temps = reader.readings(home, "temperature_c", "5m", midnight, now)
        batt = reader.query(Q_BATTERY, {"home": home,
                                        "since": _rfc3339(now - timedelta(days=7))})
    except InfluxUnavailable:
        return History(down=True)
    # 7 days by local date, today by local hour (from the same hourly counts).
    per_day: dict[date, int] = defaultdict(int)
    per_hour = [0] * 24
    for row in hourly_rows:
        n = row.values.get("n")
        if not isinstance(n, int | float) or not n:
            continue
        local = datetime.fromtimestamp(row.time_ms / 1000, UTC).astimezone(TZ)
        per_day[local.date()] += int(n)
        if local >= midnight:
            per_hour[local.hour] += int(n)
    week = views.daily(per_day, now, TZ)
    week_chart = views.bar_chart([(d.strftime("%m/%d"), d.strftime("%Y-%m-%d"), n)
                                  for d, n in week])
    today_chart = views.bar_chart([(f"{h:02d}" if h % 3 == 0 else "", f"{h:02d}:00", n)
                                   for h, n in enumerate(per_hour)])
    shown: list[EventView] = []
    for row in events:  # newest first
        kind = row.values.get("type") or row.tags.get("type") or ""
        if kind not in views.ACTIVITY_TYPES:
            continue
        at = datetime.fromtimestamp(row.time_ms / 1000, UTC)
        if len(shown) < TODAY_EVENTS_SHOWN:
            shown.append(EventView(at.isoformat(), local_time(at, with_date=False),
                                   views.activity_words(kind, row.values.get("val")),
                                   str(row.values.get("device") or row.tags.get("device")
                                       or "")))
    temperature = None
    points = sorted((r.time_ms, float(r.values["v"])) for r in temps
                    if isinstance(r.values.get("v"), int | float))
    if points:
        vals = [v for _, v in points]
        temperature = Temperature(_fmt_c(points[-1][1]), _fmt_c(min(vals)), _fmt_c(max(vals)))
    battery = {r.tags.get("device", ""): round(float(r.values["v"])) for r in batt
               if isinstance(r.values.get("v"), int | float)}
    return History(False, today_chart, week_chart, tuple(shown), temperature, battery)


def resident_view(r: Resident, home: Home) -> ResidentView:
    return ResidentView(r.id, r.name, r.home_id, home.mode.value, home.mode_reason, r.phone,
                        r.address, r.birth_year, r.wandering)


def device_views(devices: Sequence[Device], battery: dict[str, int] | None, now: datetime,
                 locale: str) -> list[DeviceView]:
    out = []
    for d in devices:
        revoked = d.revoked_at is not None
        seen = d.last_seen_at
        out.append(DeviceView(
            d.id, d.kind, d.power.value, views.device_state_key(d.last_state, revoked),
            views.device_ok(d.last_state, revoked),
            ago((now - seen).total_seconds(), locale) if seen else "",
            seen.isoformat() if seen else None, (battery or {}).get(d.id)))
    return out


def home_alerts(session: Session, scope: Scope, home: str, limit: int = 20) -> list[Alert]:
    """The home's unresolved alerts (most urgent first), then its latest resolved ones."""
    mine = select(Alert).where(Alert.home_id == home, scope.alert_filter())
    pending = list(session.scalars(mine.where(Alert.status != views.RESOLVED)))
    done = list(session.scalars(mine.where(Alert.status == views.RESOLVED)
                                .order_by(Alert.resolved_at.desc(), Alert.id.desc())
                                .limit(limit)))
    return inbox_order(pending) + done


# -- the watch list ----------------------------------------------------------------------

WATCH_HOURS = 24
WATCH_LIMIT = 200


@dataclass(frozen=True)
class WatchRow:
    id: int
    when: str
    residents: list[Resident]
    label: str
    reasons: list[str]


def watch_rows(session: Session, residents: Sequence[Resident], locale: str, now: datetime,
               t: Callable[..., str]) -> list[WatchRow]:
    """Watch items of the homes of ``residents`` (the person's scope) in the last day."""
    by_home: dict[str, list[Resident]] = defaultdict(list)
    for r in residents:
        by_home[r.home_id].append(r)
    if not by_home:
        return []
    rows = session.scalars(
        select(WatchItem).where(WatchItem.home_id.in_(sorted(by_home)),
                                WatchItem.at >= now - timedelta(hours=WATCH_HOURS))
        .order_by(WatchItem.at.desc(), WatchItem.id.desc()).limit(WATCH_LIMIT))
    out = []
    for w in rows:
        reasons = w.reasons if isinstance(w.reasons, dict) else {"en": w.reasons}
        words = reasons.get(locale) or reasons.get("en") or []
        key = f"watch.rule.{w.rule}"
        label = t(key)
        out.append(WatchRow(w.id, local_time(w.at), by_home[w.home_id],
                            label if label != key else w.rule, [str(x) for x in words]))
    return out
