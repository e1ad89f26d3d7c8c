"""Life-safety events that cannot be routed to a home or decoded, on SQLite and PostgreSQL:
journalled once, raised for the site and told to people before anything is acknowledged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.alarm.decode import alarm_of
from dolbom.alerts.alarm.journal import Route, journal_alarm
from dolbom.alerts.alarm.path import AlarmPath
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.metrics import AlertsMetrics
from dolbom.alerts.model import EscalationTable, Priority
from dolbom.alerts.recipients import recipients
from dolbom.alerts.settings import AlertsSettings
from dolbom.mqtt import Received
from dolbom.protocol import Envelope, Kind, Topic, Topics, encode_event
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import AlarmJournal, Alert, Outbox
from tests.alerts.conftest import People, make_care_home

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
AT_MS = int(T0.timestamp() * 1000)
TABLE = EscalationTable()
SMOKE = Topic(Kind.EVENT, "s1", "smk-c1", "smoke")
TOPICS = Topics()


@pytest.fixture()
def db(db_url: str) -> Iterator[tuple[sessionmaker[Session], People]]:
    """The care home of conftest, plus a corridor smoke detector of site s1 with no home."""
    migrate(db_url)
    sessions = session_factory(db_url)
    with sessions.begin() as s:
        people = make_care_home(s)
        registry.add_device(s, "smk-c1", "s1", None, "smoke", power="battery")
        registry.add_device(s, "smk-c2", "s1", None, "smoke", power="battery")
        registry.add_device(s, "btn-h1", "s1", "h1", "button", power="battery")
    yield sessions, people


def told(s: Session, alert_id: int) -> list[tuple[str, int]]:
    return [(n, u) for n, u in s.execute(
        select(Outbox.notice, Outbox.user_id).where(Outbox.alert_id == alert_id)
        .order_by(Outbox.user_id, Outbox.id))]


def test_homeless_high_alert_goes_to_supervisors_responders_and_operators(
        db: tuple[sessionmaker[Session], People]) -> None:
    """With no home there is no assigned care worker: the site's supervisors, responders
    and the operators are told instead; escalation tiers stay as for any high alert."""
    sessions, p = db
    with sessions() as s:
        first = {u.id for u in recipients(s, "s1", None, Priority.HIGH, 1)}
        assert first == {p.responder.id, p.supervisor.id, p.admin.id}
        assert {u.id for u in recipients(s, "s1", None, Priority.HIGH, 2)} == {
            p.supervisor.id}
        assert {u.id for u in recipients(s, "s1", "h1", Priority.HIGH, 1)} == {
            p.responder.id, p.worker.id}  # a home's alarm: unchanged


def test_smoke_from_a_device_with_no_home_is_raised_for_its_site(
        db: tuple[sessionmaker[Session], People]) -> None:
    """Smoke from a device with a site but no home: a high alert with home None for the
    device's site, journalled by (dev, boot, seq), and people are told."""
    sessions, p = db
    alarm = alarm_of(SMOKE, encode_event(Envelope(2, 7, AT_MS, 2)), AT_MS)
    done = journal_alarm(sessions, alarm, None, TABLE)
    assert done is not None and done.created and done.notices == 3
    with sessions() as s:
        a = s.get(Alert, done.alert_id)
        assert a is not None
        assert (a.site_id, a.home_id, a.device_id, a.rule, a.priority, a.status) == (
            "s1", None, "smk-c1", "smoke", "high", "open")
        assert a.detail["no_home"] is True
        assert a.next_escalation_at is not None
        assert s.get(AlarmJournal, ("smk-c1", 2, 7)) is not None
        assert {u for _, u in told(s, a.id)} == {p.responder.id, p.supervisor.id, p.admin.id}
    again = journal_alarm(sessions, alarm, None, TABLE)
    assert again is not None and again.duplicate and again.notices == 0


def test_two_homeless_devices_are_two_alerts(db: tuple[sessionmaker[Session], People]) -> None:
    """Two corridor detectors of one site are two alerts: the second is not swallowed as a
    repeat of the first (nobody would hear of it)."""
    sessions, _ = db
    one = journal_alarm(sessions, alarm_of(SMOKE, encode_event(Envelope(1, 1, AT_MS, 2)),
                                           AT_MS), None, TABLE)
    other = alarm_of(Topic(Kind.EVENT, "s1", "smk-c2", "smoke"),
                     encode_event(Envelope(1, 1, AT_MS, 2)), AT_MS)
    two = journal_alarm(sessions, other, None, TABLE)
    assert one is not None and two is not None
    assert one.created and two.created and one.alert_id != two.alert_id and two.notices == 3


def test_unknown_device_uses_the_site_in_its_topic(
        db: tuple[sessionmaker[Session], People]) -> None:
    """A device the registry does not know at all: the alert goes to the topic's site."""
    sessions, _ = db
    alarm = alarm_of(Topic(Kind.EVENT, "s1", "ghost-1", "gas"),
                     encode_event(Envelope(1, 1, AT_MS, 2)), AT_MS)
    done = journal_alarm(sessions, alarm, None, TABLE)
    assert done is not None and done.created and done.notices == 3
    with sessions() as s:
        a = s.get(Alert, done.alert_id)
        assert a is not None and (a.site_id, a.home_id, a.rule) == ("s1", None, "gas")


def test_unknown_site_and_device_cannot_be_journalled(
        db: tuple[sessionmaker[Session], People]) -> None:
    """Neither device nor site in the registry: nothing to tie the alarm to (None)."""
    sessions, _ = db
    alarm = alarm_of(Topic(Kind.EVENT, "nowhere", "ghost-1", "gas"),
                     encode_event(Envelope(1, 1, AT_MS, 2)), AT_MS)
    assert journal_alarm(sessions, alarm, None, TABLE) is None
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0


def test_broken_press_of_a_home_device_alerts_its_home_once(
        db: tuple[sessionmaker[Session], People]) -> None:
    """A button press with a broken payload raises the home's button alert with the raw
    payload kept; the same broken payload again changes nothing and tells nobody again."""
    sessions, p = db
    topic = Topic(Kind.EVENT, "s1", "btn-h1", "button")
    broken = b'{"v":1,"boot":1,"seq":"x"}'
    first = journal_alarm(sessions, alarm_of(topic, broken, AT_MS), ("s1", "h1"), TABLE)
    assert first is not None and first.created and first.notices == 2
    again = journal_alarm(sessions, alarm_of(topic, broken, AT_MS + 5000), ("s1", "h1"), TABLE)
    assert again is not None and again.duplicate and again.alert_id == first.alert_id
    with sessions() as s:
        a = s.get(Alert, first.alert_id)
        assert a is not None and (a.home_id, a.rule, a.count) == ("h1", "button", 1)
        assert a.detail["payload"] == broken.decode() and a.detail["undecodable"] is True
        assert a.event_ts is None
        assert {u for _, u in told(s, a.id)} == {p.responder.id, p.worker.id}
        assert s.scalar(select(func.count()).select_from(AlarmJournal)) == 1


def test_homeless_alarm_renotifies_then_escalates(
        db: tuple[sessionmaker[Session], People]) -> None:
    """Unacknowledged, a home-less alarm is told again at 60 s and escalated at 180 s."""
    sessions, p = db
    done = journal_alarm(sessions, alarm_of(SMOKE, b"not json", AT_MS), None, TABLE)
    assert done is not None
    with sessions.begin() as s:
        assert lc.due_escalations(s, T0 + timedelta(seconds=59)) == []
        assert lc.escalate(s, done.alert_id, T0 + timedelta(seconds=60), TABLE) == "renotify"
        assert lc.escalate(s, done.alert_id, T0 + timedelta(seconds=180), TABLE) == "escalate"
    with sessions() as s:
        notices = told(s, done.alert_id)
        assert sorted(u for n, u in notices if n == "renotify") == sorted(
            [p.responder.id, p.supervisor.id, p.admin.id])
        assert [u for n, u in notices if n == "escalated"] == [p.supervisor.id]


# -- AlarmPath.handle without a broker (no client: nothing is acknowledged) -----------


async def _none(_: str) -> Route | None:
    return None


def _path(sessions: sessionmaker[Session], routes: dict[str, Route]) -> AlarmPath:
    return AlarmPath(AlertsSettings(), sessions, clock=lambda: AT_MS / 1000, table=TABLE,
                     gate=WriteGate(), metrics=AlertsMetrics(), wake=lambda: None,
                     route=routes.get, lookup=_none)


def _msg(topic: str, payload: bytes) -> Received:
    return Received(topic, payload, 1, False, 1, False)


def _count(path: AlarmPath, name: str, **labels: str) -> float:
    return path.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_handle_counts_homeless_and_broken_alarms(
        db: tuple[sessionmaker[Session], People]) -> None:
    """handle journals a home-less alarm and a broken one and counts each kind."""
    sessions, _ = db
    path = _path(sessions, {"btn-h1": ("s1", "h1")})
    await path.handle(_msg(TOPICS.event("s1", "smk-c1", "smoke"),
                           encode_event(Envelope(1, 3, AT_MS, 2))))
    await path.handle(_msg(TOPICS.event("s1", "btn-h1", "button"), b"\xff\x01"))
    await path.handle(_msg(TOPICS.event("s1", "btn-h1", "button"), b"\xff\x01"))
    assert path.journalled == 3
    assert _count(path, "dolbom_alerts_life_safety_unrouted_total") == 1
    assert _count(path, "dolbom_alerts_life_safety_undecodable_total", reason="not_utf8") == 2
    with sessions() as s:
        rows = [(a.home_id, a.rule, a.count) for a in s.scalars(select(Alert).order_by(Alert.id))]
    assert rows == [(None, "smoke", 1), ("h1", "button", 1)]


async def test_handle_drops_what_cannot_be_tied_to_a_device(
        db: tuple[sessionmaker[Session], People]) -> None:
    """A topic with no valid site or device, or a site the registry does not know, is
    dropped and counted, never retried forever."""
    sessions, _ = db
    path = _path(sessions, {})
    await path.handle(_msg("care/v1/Bad Site/smk-c1/event/smoke", b"{}"))
    await path.handle(_msg("care/v1/s1/-x/event/smoke", b"{}"))
    await path.handle(_msg(TOPICS.event("nowhere", "ghost", "smoke"), b"{}"))
    assert path.journalled == 0
    assert _count(path, "dolbom_alerts_life_safety_dropped_total", reason="bad_topic") == 2
    assert _count(path, "dolbom_alerts_life_safety_dropped_total", reason="unknown_site") == 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0
