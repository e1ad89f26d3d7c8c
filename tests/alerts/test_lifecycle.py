"""Alert lifecycle on SQLite and PostgreSQL: one open alert per (home, rule), the journal,
escalation, recipients, resolution rules and response statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.errors import InvalidTransition
from dolbom.alerts.model import EscalationTable, Outcome, Priority, Rule, Status
from dolbom.registry.models import AlarmJournal, Alert, Outbox
from tests.alerts.conftest import People

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
TABLE = EscalationTable()


def button(s: Session, seq: int, at: datetime = T0) -> lc.RaiseResult:
    return lc.raise_alert(s, site="s1", home="h1", rule=Rule.BUTTON, priority=Priority.HIGH,
                          at=at, table=TABLE, device="btn-h1", event_key=("btn-h1", 1, seq),
                          event_ts=at)


def outbox_users(s: Session, alert_id: int) -> list[tuple[str, int]]:
    rows = s.execute(select(Outbox.notice, Outbox.user_id).where(Outbox.alert_id == alert_id)
                     .order_by(Outbox.id))
    return [(n, u) for n, u in rows]


def test_life_safety_raise_notifies_responders_and_assigned_worker(
        care_db: tuple[Session, People]) -> None:
    """A button alert goes to the site's responders and the home's assigned care worker only."""
    s, p = care_db
    r = button(s, 1)
    assert r.created and not r.duplicate and r.notices == 2
    assert outbox_users(s, r.alert_id) == [("raised", p.responder.id), ("raised", p.worker.id)]
    a = s.get(Alert, r.alert_id)
    assert a is not None and a.next_escalation_at == T0 + timedelta(seconds=60)


def test_replayed_event_is_one_alert_one_notification(care_db: tuple[Session, People]) -> None:
    """The same (dev, boot, seq) five times: one alert, one journal row, one set of notices."""
    s, _ = care_db
    first = button(s, 7)
    for _ in range(4):
        again = button(s, 7, T0 + timedelta(seconds=5))
        assert again.duplicate and again.alert_id == first.alert_id and again.notices == 0
    assert s.scalar(select(func.count()).select_from(AlarmJournal)) == 1
    assert s.scalar(select(func.count()).select_from(Outbox)) == 2
    a = s.get(Alert, first.alert_id)
    assert a is not None and a.count == 1


def test_new_press_repeats_the_open_alert_and_tells_again(
        care_db: tuple[Session, People]) -> None:
    """A second press while the alert is open counts on it, is journalled too, and tells
    the same people again (a new press is news, acknowledged or not)."""
    s, p = care_db
    a1, a2 = button(s, 1), button(s, 2, T0 + timedelta(seconds=20))
    assert a1.alert_id == a2.alert_id and not a2.created and not a2.duplicate
    a = s.get(Alert, a1.alert_id)
    assert a is not None and a.count == 2
    assert s.scalar(select(func.count()).select_from(AlarmJournal)) == 2
    assert a2.notices == 2
    assert outbox_users(s, a1.alert_id)[2:] == [("repeat", p.responder.id),
                                                ("repeat", p.worker.id)]
    lc.acknowledge(s, a1.alert_id, p.worker, T0 + timedelta(seconds=30))
    assert button(s, 3, T0 + timedelta(seconds=40)).notices == 2


def test_escalation_renotifies_then_escalates_and_ack_cancels(
        care_db: tuple[Session, People]) -> None:
    """High: re-notify at 60 s, escalate to the supervisor at 180 s; acknowledgement stops it."""
    s, p = care_db
    r = button(s, 1)
    assert lc.due_escalations(s, T0 + timedelta(seconds=59)) == []
    assert lc.due_escalations(s, T0 + timedelta(seconds=60)) == [r.alert_id]
    assert lc.escalate(s, r.alert_id, T0 + timedelta(seconds=60), TABLE) == "renotify"
    assert lc.escalate(s, r.alert_id, T0 + timedelta(seconds=180), TABLE) == "escalate"
    notices = outbox_users(s, r.alert_id)
    assert ("renotify", p.worker.id) in notices and ("escalated", p.supervisor.id) in notices
    assert lc.due_escalations(s, T0 + timedelta(days=1)) == []
    # a second alert, acknowledged in time, never escalates
    r2 = lc.raise_alert(s, site="s1", home="h2", rule=Rule.FALL, priority=Priority.HIGH,
                        at=T0, table=TABLE)
    lc.acknowledge(s, r2.alert_id, p.worker, T0 + timedelta(seconds=30))
    assert lc.due_escalations(s, T0 + timedelta(hours=1)) == []


def test_welfare_goes_to_worker_and_escalates_after_30_min(
        care_db: tuple[Session, People]) -> None:
    """Medium: the assigned worker first; the supervisor after 30 unacknowledged minutes."""
    s, p = care_db
    r = lc.raise_alert(s, site="s1", home="h1", rule=Rule.INACTIVITY, priority=Priority.MEDIUM,
                       at=T0, table=TABLE, detail={"tier": 1})
    assert outbox_users(s, r.alert_id) == [("raised", p.worker.id)]
    assert lc.due_escalations(s, T0 + timedelta(minutes=30)) == [r.alert_id]
    lc.escalate(s, r.alert_id, T0 + timedelta(minutes=30), TABLE)
    assert ("escalated", p.supervisor.id) in outbox_users(s, r.alert_id)
    # no assigned worker in h2: the supervisor is told at once
    r2 = lc.raise_alert(s, site="s1", home="h2", rule=Rule.INACTIVITY,
                        priority=Priority.MEDIUM, at=T0, table=TABLE)
    assert outbox_users(s, r2.alert_id) == [("raised", p.supervisor.id)]


def test_tier_increase_updates_the_open_alert_and_tells_again(
        care_db: tuple[Session, People]) -> None:
    """Inactivity tier 2 updates the same alert (no second alert) and notifies again."""
    s, _ = care_db
    r1 = lc.raise_alert(s, site="s1", home="h1", rule=Rule.INACTIVITY, priority=Priority.MEDIUM,
                        at=T0, table=TABLE, detail={"tier": 1})
    r2 = lc.raise_alert(s, site="s1", home="h1", rule=Rule.INACTIVITY, priority=Priority.MEDIUM,
                        at=T0 + timedelta(hours=12), table=TABLE, detail={"tier": 2})
    assert r2.alert_id == r1.alert_id and r2.notices == 1
    a = s.get(Alert, r1.alert_id)
    assert a is not None and a.detail["tier"] == 2 and a.count == 2


def test_life_safety_resolved_only_by_a_person(care_db: tuple[Session, People]) -> None:
    """Auto-resolve never closes a life-safety alert; a person does, with an outcome."""
    s, p = care_db
    r = button(s, 1)
    assert lc.auto_resolve(s, "s1", "h1", Rule.BUTTON, T0, "cleared") is None
    with pytest.raises(InvalidTransition):
        lc.resolve(s, r.alert_id, Outcome.AUTO_CLEARED, p.worker, T0)
    a = lc.resolve(s, r.alert_id, Outcome.VISITED_OK, p.worker, T0 + timedelta(minutes=5),
                   note="checked, all fine")
    assert a.status == Status.RESOLVED and a.open_key is None and a.outcome == "visited_ok"
    kinds = [e.kind for e in lc.timeline(s, r.alert_id)]
    assert kinds == ["raised", "note", "resolved"]
    with pytest.raises(InvalidTransition):
        lc.acknowledge(s, r.alert_id, p.worker, T0)
    # the next press opens a new alert
    assert button(s, 2, T0 + timedelta(minutes=6)).created


def test_technical_alert_auto_resolves(care_db: tuple[Session, People]) -> None:
    """A device-lost alert closes itself when the condition clears, with the reason."""
    s, p = care_db
    r = lc.raise_alert(s, site="s1", home="h1", rule=Rule.DEVICE_LOST, priority=Priority.LOW,
                       at=T0, table=TABLE, device="pir-h1",
                       detail={"device": "pir-h1", "kind": "multisensor"})
    assert outbox_users(s, r.alert_id) == [("raised", p.admin.id)]
    a = lc.auto_resolve(s, "s1", "h1", Rule.DEVICE_LOST, T0 + timedelta(minutes=3), "heard")
    assert a is not None and a.outcome == "auto_cleared" and a.resolved_by is None


def test_response_stats_against_targets(care_db: tuple[Session, People]) -> None:
    """Time-to-acknowledge percentiles and the share within 60 s / 180 s."""
    s, p = care_db
    for i, secs in enumerate([10, 30, 50, 90, 400]):
        r = lc.raise_alert(s, site="s1", home="h1", rule=Rule.FALL, priority=Priority.HIGH,
                           at=T0 + timedelta(hours=i), table=TABLE)
        lc.acknowledge(s, r.alert_id, p.worker, T0 + timedelta(hours=i, seconds=secs))
        lc.resolve(s, r.alert_id, Outcome.FALSE_ALARM, p.worker,
                   T0 + timedelta(hours=i, seconds=secs * 2))
    st = lc.response_stats(s, site="s1")
    assert (st.alerts, st.acknowledged, st.resolved) == (5, 5, 5)
    assert st.tta_p50_s == 50 and st.tta_p99_s == 400
    assert st.within_60s == pytest.approx(0.6) and st.within_180s == pytest.approx(0.8)
    assert st.ttr_p50_s == 100


def test_a_heatwave_is_one_list_for_the_supervisors(care_db: tuple[Session, People]) -> None:
    """The third home of a site over the heat limit within two hours opens the site's list
    (told to its supervisors and once to each worker of a listed home, hottest first);
    that home and later ones are listed, not pushed; the list resolves when all cool."""
    s, p = care_db
    for h in ("h3", "h4"):
        from dolbom.registry import service as registry

        registry.add_home(s, h, "s1")

    def heat(home: str, celsius: float, minutes: int) -> lc.RaiseResult:
        return lc.raise_alert(s, site="s1", home=home, rule=Rule.HEAT, priority=Priority.MEDIUM,
                              at=T0 + timedelta(minutes=minutes), table=TABLE,
                              detail={"temperature_c": celsius, "tier": 1})

    told = [heat("h1", 33.0, 0).notices, heat("h2", 34.0, 10).notices]
    third, fourth = heat("h3", 36.0, 20), heat("h4", 35.0, 30)
    assert told == [1, 1] and third.notices == 0 and fourth.notices == 0
    wave = s.scalar(select(Alert).where(Alert.open_key == lc.wave_key("s1", Rule.HEAT)))
    assert wave is not None and wave.home_id is None
    assert wave.detail["homes"] == ["h3", "h4", "h2", "h1"] and wave.count == 4
    # the supervisors, and once the worker of a listed home (h1's), however many homes join
    assert outbox_users(s, wave.id) == [("raised", p.supervisor.id), ("raised", p.worker.id)]
    for h in ("h1", "h2", "h3"):
        lc.auto_resolve(s, "s1", h, Rule.HEAT, T0 + timedelta(hours=3), "cooled")
    assert wave.status == "open"
    lc.auto_resolve(s, "s1", "h4", Rule.HEAT, T0 + timedelta(hours=3), "cooled")
    assert wave.status == "resolved"
