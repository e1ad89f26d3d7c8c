"""What the alerts service writes to InfluxDB for the dashboards (DESIGN.md §4), as line
protocol, and ``Exporter``, its task, which only reads, calls these and writes.

    alert            every transition of an alert (the journal's ``alert_events``): tags
                     site, home, rule, priority, kind; on ``resolved`` / ``auto_resolved``
                     also ``outcome``; on a person's transition (acknowledged, assigned,
                     note, resolved) also ``worker``, that person's numeric user id.
                     Fields alert_id, count, seconds (acknowledged, resolved) and
                     false_alarm (1 or 0, on the two closing kinds).
    alert_response   time to acknowledge / resolve over the last 30 days, per site and
                     priority, against the 60 s / 180 s targets (DESIGN.md §5).
    home_mode        a home's mode (normal, away, hospital): tags site, home; field mode;
                     written for every home at start-up and every HOME_MODE_EVERY_S, and
                     for a home when the service sees its mode change in the registry
                     (its next registry read: within 30 s).

Privacy (DESIGN.md §6): tags are opaque ids only. A worker is their numeric user id,
never a user name or a display name (an ``assigned`` event's detail names the assignee
by user name: it is not exported).

A point's tags come from the transition alone, never from what the alert is now (its
assignee, its status): the exporter starts over from the journal's first event at every
start, and a re-written point must have the same tags to overwrite itself instead of
adding a second one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import Outcome
from dolbom.alerts.pause import pause
from dolbom.alerts.rules.base import HomeConfig
from dolbom.influx.lineproto import line
from dolbom.influx.writer import InfluxWriter
from dolbom.registry.models import Alert, AlertEvent

log = logging.getLogger("dolbom.alerts")
CLOSING_KINDS = ("resolved", "auto_resolved")
TRANSITIONS_PER_READ = 5000
RESPONSE_WINDOW = timedelta(days=30)
# Every home's mode is written again this often (besides at start-up and on a change), so
# any few hours of a dashboard hold each home's mode: 300,000 homes make 14 points a second.
HOME_MODE_EVERY_S = 6 * 3600.0
SUMMARY_EVERY_S = 300.0  # response-time summaries to InfluxDB, at least this often
_SUMMARY_FIELDS = ("tta_p50_s", "tta_p975_s", "tta_p99_s", "within_60s", "within_180s",
                   "ttr_p50_s", "ttr_p99_s")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def transition_line(ev: AlertEvent, a: Alert) -> bytes:
    """One ``alert`` point: the transition ``ev`` of alert ``a``."""
    tags = {"site": a.site_id}
    if a.home_id:
        tags["home"] = a.home_id
    tags |= {"rule": a.rule, "priority": a.priority, "kind": ev.kind}
    detail = ev.detail if isinstance(ev.detail, dict) else {}
    fields: dict[str, float | int | bool | str] = {"alert_id": a.id, "count": a.count}
    if ev.kind in CLOSING_KINDS:
        outcome = detail.get("outcome") or a.outcome
        if isinstance(outcome, str) and outcome:
            tags["outcome"] = outcome
            fields["false_alarm"] = int(outcome == Outcome.FALSE_ALARM.value)
    if ev.actor_id is not None:  # a person, by id only (DESIGN.md §6)
        tags["worker"] = str(int(ev.actor_id))
    secs = detail.get("seconds")
    if isinstance(secs, int | float) and not isinstance(secs, bool):
        fields["seconds"] = float(secs)
    return line("alert", tags, fields, _ms(ev.at))


def transition_lines(s: Session, after_id: int, limit: int = TRANSITIONS_PER_READ
                     ) -> tuple[list[bytes], int]:
    """The ``alert`` points of the journal's transitions after ``after_id``, oldest first,
    at most ``limit``; and the id of the last one (``after_id`` when there is none)."""
    rows = s.execute(
        select(AlertEvent, Alert).join(Alert, Alert.id == AlertEvent.alert_id)
        .where(AlertEvent.id > after_id).order_by(AlertEvent.id).limit(limit)).all()
    lines, last = [], after_id
    for ev, a in rows:
        last = ev.id
        lines.append(transition_line(ev, a))
    return lines, last


def response_lines(s: Session, now: datetime) -> list[bytes]:
    """``alert_response`` points at ``now``: the last 30 days per site and priority."""
    since = now - RESPONSE_WINDOW
    ts = _ms(now)
    lines: list[bytes] = []
    for site in list(s.scalars(select(Alert.site_id).distinct())):
        for prio in ("high", "medium", "low"):
            st = lc.response_stats(s, site=site, since=since, priority=prio)
            if not st.alerts:
                continue
            fields: dict[str, float | int | bool | str] = {
                "alerts": st.alerts, "acknowledged": st.acknowledged, "resolved": st.resolved}
            for name in _SUMMARY_FIELDS:
                value = getattr(st, name)
                if value is not None:
                    fields[name] = float(value)
            lines.append(line("alert_response", {"site": site, "priority": prio}, fields, ts))
    return lines


def mode_changes(seen: Mapping[str, HomeConfig], homes: Mapping[str, HomeConfig]
                 ) -> list[HomeConfig]:
    """The homes of ``homes`` whose mode differs from ``seen`` (the homes last written),
    new homes included. An unchanged home keeps its configuration object across registry
    reads, so at 300,000 homes this is mostly an identity test."""
    if seen is homes:
        return []
    out = []
    for home, cfg in homes.items():
        old = seen.get(home)
        if old is cfg:
            continue
        if old is None or old.mode != cfg.mode or old.site != cfg.site:
            out.append(cfg)
    return out


def home_mode_lines(homes: Iterable[HomeConfig], at_ms: int) -> list[bytes]:
    """One ``home_mode`` point per home, at ``at_ms``."""
    return [line("home_mode", {"site": c.site, "home": c.home}, {"mode": c.mode}, at_ms)
            for c in homes]


class Exporter:
    """Alert transitions, response-time summaries and home modes → InfluxDB (dashboards).

    Idempotent (explicit timestamps), so after a restart it simply starts over.
    ``homes``: the rules' configurations now; ``ok`` / ``failed``: InfluxDB answered or
    not (``health.ServiceAlerts``)."""

    def __init__(self, sessions: sessionmaker[Session], writer: InfluxWriter,
                 clock: Callable[[], float], homes: Callable[[], Mapping[str, HomeConfig]],
                 ok: Callable[[], Awaitable[None]],
                 failed: Callable[[], Awaitable[None]]) -> None:
        self.sessions, self.writer, self.clock, self.homes = sessions, writer, clock, homes
        self.ok, self.failed = ok, failed
        self._cursor = 0  # the last alert_events row written to InfluxDB
        self._summary_at = -SUMMARY_EVERY_S  # time.monotonic() of the last summaries
        self._modes_seen: Mapping[str, HomeConfig] = {}  # homes last written
        self._modes_at = 0.0  # self.clock() when every home's mode was last written

    def _transitions(self) -> tuple[list[bytes], int]:
        with self.sessions() as s:
            return transition_lines(s, self._cursor)

    def _responses(self) -> list[bytes]:
        with self.sessions() as s:
            return response_lines(s, datetime.fromtimestamp(self.clock(), UTC))

    async def export_once(self) -> int:
        """One pass of the exporter: alert transitions since the last pass, response-time
        summaries when something changed (and every ``SUMMARY_EVERY_S``), and a
        ``home_mode`` point for each home whose mode changed since the last pass (every
        home at start-up and every ``HOME_MODE_EVERY_S``, so a dashboard's range always
        holds each home's mode). Returns how many points were written; raises if
        InfluxDB did not take them (the next pass writes them again)."""
        lines, last = await asyncio.to_thread(self._transitions)
        # Summaries change with transitions: refresh them then, and now and then so a
        # dashboard's "last 30 days" keeps moving.
        summary = time.monotonic() - self._summary_at >= SUMMARY_EVERY_S
        if lines or summary:
            lines += await asyncio.to_thread(self._responses)
        homes, now = self.homes(), self.clock()
        seen = self._modes_seen
        if now - self._modes_at >= HOME_MODE_EVERY_S:
            seen = {}
        changed = await asyncio.to_thread(mode_changes, seen, homes)
        lines += home_mode_lines(changed, int(now * 1000))
        if lines:
            for i in range(0, len(lines), TRANSITIONS_PER_READ):
                await self.writer.write(lines[i:i + TRANSITIONS_PER_READ])
        else:
            await self.writer.ping()  # an outage is noticed without traffic too
        self._cursor = last
        if lines or summary:
            self._summary_at = time.monotonic()
        if seen is not self._modes_seen:
            self._modes_at = now
        self._modes_seen = homes
        return len(lines)

    async def run(self, stopping: asyncio.Event, every_s: float) -> None:
        while not stopping.is_set():
            try:
                await self.export_once()
                await self.ok()
            except Exception as e:  # dashboards wait; alarms never do
                log.warning("alert export to InfluxDB delayed: %s", e)
                await self.failed()
            await pause(stopping, every_s)
