"""The alert lifecycle (DESIGN.md §5): raise, repeat, acknowledge, assign, note, resolve,
auto-resolve, escalate. Plain functions over a SQLAlchemy session; the caller owns the
transaction. The alerts service, the CLI and the HTTP API all call these, so there is one
implementation of each transition.

    open ──acknowledge──► acknowledged ──resolve──► resolved
      └──────────────────────resolve──────────────────┘

One open alert per (site, home, rule): a repeat updates it and counts (``open_key`` is
unique while the alert is not resolved). Life-safety alerts are resolved only by a
person; technical and welfare alerts also auto-resolve when their condition clears.
Every transition is stored with its time in ``alert_events`` (the timeline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dolbom.alerts.errors import AlertNotFound, InvalidTransition
from dolbom.alerts.model import (
    RULE_CLASS,
    WAVE_HOMES,
    WAVE_RULES,
    WAVE_WINDOW,
    AlertClass,
    EscalationTable,
    Outcome,
    Priority,
    Rule,
    Status,
)
from dolbom.alerts.recipients import add_notice, contacts_of, queue_notices
from dolbom.registry.models import (
    AlarmJournal,
    Alert,
    AlertEvent,
    Assignment,
    Resident,
    User,
    UserRole,
)

SYSTEM = "system"
_PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}


@dataclass(frozen=True, slots=True)
class RaiseResult:
    alert_id: int
    created: bool  # a new alert (False: a repeat of the open one)
    duplicate: bool  # the same life-safety event again: nothing changed
    notices: int  # outbox rows queued


def open_key(site: str, home: str | None, rule: str, subject: str | None = None) -> str:
    """One open alert per (site, home, rule); ``subject`` tells apart alerts of one rule
    that are not about a home (``service_unreachable`` for the broker, InfluxDB, a channel)."""
    key = f"{site}/{home or '-'}/{rule}"
    return f"{key}/{subject}" if subject else key


def _event(session: Session, alert: Alert, kind: str, at: datetime, actor: User | None = None,
           detail: dict[str, Any] | None = None) -> None:
    """One line of the timeline. ``detail`` is a dict (its keys come from rules)."""
    session.add(AlertEvent(alert_id=alert.id, at=at, kind=kind,
                           actor_id=actor.id if actor else None,
                           actor=actor.username if actor else SYSTEM, detail=detail or {}))


def _schedule(alert: Alert, table: EscalationTable) -> None:
    """Set the next escalation step's time, or none when the table is exhausted."""
    steps = table.steps.get(Priority(alert.priority), ())
    if alert.status != Status.OPEN or alert.escalation_step >= len(steps):
        alert.next_escalation_at = None
        return
    alert.next_escalation_at = alert.raised_at + timedelta(
        seconds=steps[alert.escalation_step].after_s)


# -- transitions -------------------------------------------------------------------


def raise_alert(
    session: Session, *, site: str, home: str | None, rule: Rule, priority: Priority,
    at: datetime, table: EscalationTable, device: str | None = None,
    detail: dict[str, Any] | None = None, event_key: tuple[str, int, int] | None = None,
    event_ts: datetime | None = None, hist: bool = False, subject: str | None = None,
) -> RaiseResult:
    """Open an alert, or count a repeat on the open one; journal a life-safety event once.

    A life-safety event already in the journal (same ``(dev, boot, seq)``) is a replay:
    nothing changes and nobody is told again.
    """
    if event_key is not None:
        done = session.get(AlarmJournal, event_key)
        if done is not None:
            return RaiseResult(done.alert_id, False, True, 0)
    detail = dict(detail or {})
    key = open_key(site, home, rule.value, subject)
    alert = session.scalar(select(Alert).where(Alert.open_key == key))
    created = alert is None
    notices = 0
    if alert is None:
        alert = Alert(site_id=site, home_id=home, device_id=device, rule=rule.value,
                      klass=RULE_CLASS[rule].value, priority=priority.value,
                      status=Status.OPEN.value, open_key=key, count=1, tier=1,
                      escalation_step=0, detail=detail, raised_at=at, updated_at=at,
                      event_ts=event_ts)
        session.add(alert)
        session.flush()
        _event(session, alert, "raised", at,
               detail={**detail, "priority": priority.value, "device": device})
        if rule in WAVE_RULES and home is not None and _in_a_wave(session, alert, at, table):
            # Listed on the site's heat (cold) list, which its people were told of; the
            # home's own alert is in the console, not pushed one by one.
            _event(session, alert, "listed", at, detail={"list": wave_key(site, rule)})
        else:
            _schedule(alert, table)
            notices = queue_notices(session, alert, "raised", at)
    else:
        alert.count += 1
        alert.updated_at = at
        changes: dict[str, Any] = {}
        if _PRIORITY_RANK[priority] > _PRIORITY_RANK[Priority(alert.priority)]:
            changes["priority"] = priority.value
            alert.priority = priority.value
        new_tier = detail.get("tier")
        if isinstance(new_tier, int) and new_tier > int(alert.detail.get("tier", 0)):
            changes["tier"] = new_tier
        if detail:
            merged = dict(alert.detail)
            merged.update(detail)
            if device is not None and "devices" in merged:
                merged["devices"] = sorted({*merged["devices"], device})
            alert.detail = merged
        _event(session, alert, "repeated", at,
               detail={**changes, "count": alert.count, "device": device})
        if event_key is not None and alert.status != Status.RESOLVED:
            # A new life-safety event (a second press, smoke again) on the alert a person
            # has not resolved yet is news, acknowledged or not: tell them again.
            notices = queue_notices(session, alert, "repeat", at, step=alert.count)
            _schedule(alert, table)
        elif changes and alert.status == Status.OPEN:
            # A worse state (inactivity tier 2, a home that lost its last activity
            # sensor) is news: tell the people again, and restart the clock.
            notices = queue_notices(session, alert, "repeat", at, step=alert.count)
            _schedule(alert, table)
    if event_key is not None:
        session.add(AlarmJournal(device_id=event_key[0], boot=event_key[1], seq=event_key[2],
                                 alert_id=alert.id, event_type=rule.value, received_at=at,
                                 hist=hist))
    session.flush()
    return RaiseResult(alert.id, created, False, notices)


# -- many homes at once: one list ---------------------------------------------------------

# When a heatwave or a cold snap takes many homes of a site over the same limit at once,
# the people get one list ordered by risk, not a push per home (DESIGN.md §5; model.py).


def wave_key(site: str, rule: Rule) -> str:
    return open_key(site, None, rule.value, "list")


def _risk(a: Alert) -> float:
    """How far beyond the limit: the hottest (coldest) first."""
    t = (a.detail or {}).get("temperature_c")
    if not isinstance(t, int | float):
        return 0.0
    return float(t) if a.rule == Rule.HEAT.value else -float(t)


def _in_a_wave(session: Session, alert: Alert, at: datetime, table: EscalationTable) -> bool:
    """Whether ``alert`` (a new heat or cold alert of a home) joins its site's list: the
    list is opened (and told) when the WAVE_HOMES-th home of the site crosses the limit
    within WAVE_WINDOW, and kept while any of the site's homes is still over it."""
    rule = Rule(alert.rule)
    site_open = list(session.scalars(
        select(Alert).where(Alert.site_id == alert.site_id, Alert.rule == alert.rule,
                            Alert.home_id.is_not(None), Alert.status != Status.RESOLVED.value)))
    key = wave_key(alert.site_id, rule)
    wave = session.scalar(select(Alert).where(Alert.open_key == key))
    recent = [a for a in site_open if a.raised_at >= at - WAVE_WINDOW]
    if wave is None and len({a.home_id for a in recent}) < WAVE_HOMES:
        return False
    ranked = sorted(site_open, key=_risk, reverse=True)
    detail = {"homes": [a.home_id for a in ranked], "n": len(ranked),
              "temperature_c": max((abs(_risk(a)) for a in ranked), default=None)}
    if wave is None:
        wave = Alert(site_id=alert.site_id, home_id=None, device_id=None, rule=alert.rule,
                     klass=RULE_CLASS[rule].value, priority=Priority.MEDIUM.value,
                     status=Status.OPEN.value, open_key=key, count=len(ranked), tier=1,
                     escalation_step=0, detail=detail, raised_at=at, updated_at=at)
        session.add(wave)
        session.flush()
        _event(session, wave, "raised", at, detail=detail)
        _schedule(wave, table)
        queue_notices(session, wave, "raised", at)  # the site's supervisors
    else:
        wave.count, wave.detail, wave.updated_at = len(ranked), detail, at
        _event(session, wave, "repeated", at, detail={"n": len(ranked)})
    _tell_workers(session, wave, [a.home_id for a in ranked if a.home_id], at)
    return True


def _tell_workers(session: Session, wave: Alert, homes: list[str], at: datetime) -> None:
    """Each care worker with a resident in one of the listed homes gets the list once
    (the outbox dedups by this key): one push per worker, not one per home."""
    workers = session.scalars(
        select(User).join(Assignment, Assignment.user_id == User.id)
        .join(Resident, Resident.id == Assignment.resident_id)
        .where(Resident.home_id.in_(homes), User.active.is_(True),
               User.role == UserRole.CARE_WORKER).distinct().order_by(User.id))
    for user in workers:
        contacts = contacts_of(session, user.id)
        if contacts:
            c = contacts[0]
            add_notice(session, wave.id, user.id, c, "raised", 0, wave.tier, at,
                       f"{wave.id}/list/{user.id}/{c.channel}")


def get_alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFound(f"alert {alert_id} does not exist")
    return alert


def acknowledge(session: Session, alert_id: int, actor: User, at: datetime) -> Alert:
    """A person has taken the alert: escalation stops. Idempotent."""
    alert = get_alert(session, alert_id)
    if alert.status == Status.RESOLVED:
        raise InvalidTransition(f"alert {alert_id} is already resolved")
    if alert.status == Status.ACKNOWLEDGED:
        return alert
    alert.status = Status.ACKNOWLEDGED.value
    alert.acknowledged_at, alert.acknowledged_by = at, actor.id
    alert.updated_at = at
    alert.next_escalation_at = None
    if alert.assignee_id is None:
        alert.assignee_id = actor.id
    _event(session, alert, "acknowledged", at, actor,
           {"seconds": round((at - alert.raised_at).total_seconds(), 3)})
    session.flush()
    return alert


def assign(session: Session, alert_id: int, assignee: User, actor: User, at: datetime) -> Alert:
    alert = get_alert(session, alert_id)
    if alert.status == Status.RESOLVED:
        raise InvalidTransition(f"alert {alert_id} is already resolved")
    alert.assignee_id = assignee.id
    alert.updated_at = at
    _event(session, alert, "assigned", at, actor, {"assignee": assignee.username})
    session.flush()
    return alert


def add_note(session: Session, alert_id: int, text: str, actor: User, at: datetime) -> Alert:
    text = text.strip()
    if not text:
        raise InvalidTransition("a note needs some text")
    if len(text) > 2000:
        raise InvalidTransition("a note is at most 2000 characters")
    alert = get_alert(session, alert_id)
    alert.updated_at = at
    _event(session, alert, "note", at, actor, {"text": text})
    session.flush()
    return alert


def _close(session: Session, alert: Alert, at: datetime, outcome: Outcome,
           actor: User | None, kind: str, reason: str | None = None) -> None:
    alert.status = Status.RESOLVED.value
    alert.open_key = None
    alert.outcome = outcome.value
    alert.resolved_at, alert.resolved_by = at, actor.id if actor else None
    alert.updated_at = at
    alert.next_escalation_at = None
    detail: dict[str, Any] = {"outcome": outcome.value,
                              "seconds": round((at - alert.raised_at).total_seconds(), 3)}
    if reason:
        detail["reason"] = reason
    _event(session, alert, kind, at, actor, detail)
    session.flush()


def resolve(session: Session, alert_id: int, outcome: Outcome, actor: User, at: datetime,
            note: str | None = None) -> Alert:
    """A person closes the alert with what happened."""
    alert = get_alert(session, alert_id)
    if alert.status == Status.RESOLVED:
        raise InvalidTransition(f"alert {alert_id} is already resolved")
    if outcome == Outcome.AUTO_CLEARED:
        raise InvalidTransition("choose what happened: auto_cleared is for the system")
    if note:
        add_note(session, alert_id, note, actor, at)
    if alert.acknowledged_at is None:  # resolving implies it was taken
        alert.acknowledged_at, alert.acknowledged_by = at, actor.id
    _close(session, alert, at, outcome, actor, "resolved")
    return alert


def auto_resolve(session: Session, site: str, home: str | None, rule: Rule, at: datetime,
                 reason: str, subject: str | None = None) -> Alert | None:
    """The condition cleared: close the open technical or welfare alert, if any."""
    if RULE_CLASS[rule] is AlertClass.LIFE_SAFETY:
        return None  # only a person resolves a life-safety alert
    alert = session.scalar(select(Alert).where(
        Alert.open_key == open_key(site, home, rule, subject)))
    if alert is None:
        return None
    _close(session, alert, at, Outcome.AUTO_CLEARED, None, "auto_resolved", reason=reason)
    if rule in WAVE_RULES and home is not None:
        wave = session.scalar(select(Alert).where(Alert.open_key == wave_key(site, rule)))
        if wave is not None and session.scalar(
                select(Alert.id).where(Alert.site_id == site, Alert.rule == rule.value,
                                       Alert.home_id.is_not(None),
                                       Alert.status != Status.RESOLVED.value).limit(1)) is None:
            _close(session, wave, at, Outcome.AUTO_CLEARED, None, "auto_resolved",
                   reason="no home of the site over the limit any more")
    return alert


def due_escalations(session: Session, now: datetime) -> list[int]:
    return list(session.scalars(
        select(Alert.id).where(Alert.next_escalation_at.is_not(None),
                               Alert.next_escalation_at <= now,
                               Alert.status == Status.OPEN.value)
        .order_by(Alert.next_escalation_at)))


def escalate(session: Session, alert_id: int, now: datetime, table: EscalationTable) -> str:
    """Carry out the alert's next escalation step; returns what was done."""
    alert = get_alert(session, alert_id)
    steps = table.steps.get(Priority(alert.priority), ())
    if alert.status != Status.OPEN or alert.escalation_step >= len(steps):
        alert.next_escalation_at = None
        return "none"
    step = steps[alert.escalation_step]
    alert.escalation_step += 1
    if step.action == "escalate":
        alert.tier += 1
        _event(session, alert, "escalated", now, detail={"tier": alert.tier})
        queue_notices(session, alert, "escalated", now, step=alert.escalation_step)
    else:
        _event(session, alert, "renotified", now, detail={"tier": alert.tier})
        queue_notices(session, alert, "renotify", now, step=alert.escalation_step)
    _schedule(alert, table)
    session.flush()
    return step.action


# -- reading -------------------------------------------------------------------------


def list_alerts(session: Session, *, status: Sequence[str] | None = None,
                priority: str | None = None, site: str | None = None,
                assignee_id: int | None = None, limit: int = 100) -> list[Alert]:
    stmt = select(Alert)
    if status:
        stmt = stmt.where(Alert.status.in_(list(status)))
    if priority:
        stmt = stmt.where(Alert.priority == priority)
    if site:
        stmt = stmt.where(Alert.site_id == site)
    if assignee_id is not None:
        stmt = stmt.where(Alert.assignee_id == assignee_id)
    return list(session.scalars(stmt.order_by(Alert.raised_at.desc(), Alert.id.desc())
                                .limit(limit)))


def timeline(session: Session, alert_id: int) -> list[AlertEvent]:
    get_alert(session, alert_id)
    return list(session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                                .order_by(AlertEvent.at, AlertEvent.id)))


@dataclass(frozen=True, slots=True)
class ResponseStats:
    """Time to acknowledge and to resolve, against the telecare targets (DESIGN.md §5)."""

    alerts: int
    acknowledged: int
    tta_p50_s: float | None
    tta_p975_s: float | None
    tta_p99_s: float | None
    within_60s: float | None  # fraction acknowledged within 60 s (target 97.5 %)
    within_180s: float | None  # fraction acknowledged within 180 s (target 99 %)
    resolved: int
    ttr_p50_s: float | None
    ttr_p99_s: float | None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


def response_stats(session: Session, *, site: str | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   priority: str | None = Priority.HIGH.value) -> ResponseStats:
    stmt = select(Alert)
    if site:
        stmt = stmt.where(Alert.site_id == site)
    if since:
        stmt = stmt.where(Alert.raised_at >= since)
    if until:
        stmt = stmt.where(Alert.raised_at < until)
    if priority:
        stmt = stmt.where(Alert.priority == priority)
    alerts = list(session.scalars(stmt))
    tta = [(a.acknowledged_at - a.raised_at).total_seconds() for a in alerts
           if a.acknowledged_at is not None]
    ttr = [(a.resolved_at - a.raised_at).total_seconds() for a in alerts
           if a.resolved_at is not None and a.resolved_by is not None]
    n = len(alerts)
    return ResponseStats(
        alerts=n, acknowledged=len(tta), tta_p50_s=percentile(tta, 50),
        tta_p975_s=percentile(tta, 97.5), tta_p99_s=percentile(tta, 99),
        # An alert never acknowledged counts as missing the target.
        within_60s=sum(t <= 60 for t in tta) / n if n else None,
        within_180s=sum(t <= 180 for t in tta) / n if n else None,
        resolved=len(ttr), ttr_p50_s=percentile(ttr, 50), ttr_p99_s=percentile(ttr, 99),
    )
