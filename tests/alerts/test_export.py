"""What the alerts service writes to InfluxDB for the dashboards: alert transitions with
their outcome and the worker's opaque id, and each home's mode (at start-up, on a change
and now and then), written by the service's exporter to the real InfluxDB 1.6."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session

from dolbom.alerts import engine, export
from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import EscalationTable, Outcome, Priority, Rule, Thresholds
from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB
from tests.alerts.conftest import People, make_care_home
from tests.influx.lineproto import parse_line

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture()
def journal(sqlite_url: str) -> Iterator[tuple[Session, People]]:
    migrate(sqlite_url)
    factory = session_factory(sqlite_url)
    with factory.begin() as s:
        people = make_care_home(s)
    with factory() as s:
        yield s, people


def points(lines: list[bytes]) -> list[tuple[dict[str, str], dict[str, object], int]]:
    out = []
    for ln in lines:
        meas, tags, fields, ts = parse_line(ln.decode())
        assert meas == "alert"
        out.append((tags, fields, ts))
    return out


def _story(s: Session, p: People) -> None:
    """A button press answered and closed as a false alarm; a heat alert that clears by
    itself after a worker took it; a door alert a supervisor hands to a worker."""
    table = EscalationTable()
    b = lc.raise_alert(s, site="s1", home="h1", rule=Rule.BUTTON, priority=Priority.HIGH,
                       at=T0, table=table).alert_id
    lc.acknowledge(s, b, p.worker, T0 + timedelta(seconds=20))
    lc.resolve(s, b, Outcome.FALSE_ALARM, p.worker, T0 + timedelta(minutes=30))
    h = lc.raise_alert(s, site="s1", home="h2", rule=Rule.HEAT, priority=Priority.MEDIUM,
                       at=T0, table=table).alert_id
    lc.acknowledge(s, h, p.other_worker, T0 + timedelta(minutes=10))
    lc.auto_resolve(s, "s1", "h2", Rule.HEAT, T0 + timedelta(hours=2), reason="cooler")
    d = lc.raise_alert(s, site="s1", home="h1", rule=Rule.NIGHT_EXIT,
                       priority=Priority.MEDIUM, at=T0, table=table).alert_id
    lc.assign(s, d, p.worker, p.supervisor, T0 + timedelta(minutes=1))


def test_transitions_carry_outcome_and_worker_id_only(journal: tuple[Session, People]) -> None:
    """Closing points carry the outcome (and false_alarm 1/0); a person's transitions
    carry their numeric id; no user name or display name is in any line."""
    s, p = journal
    _story(s, p)
    lines, last = export.transition_lines(s, 0)
    got = [(t["rule"], t["kind"], t.get("outcome"), t.get("worker"), f.get("false_alarm"))
           for t, f, _ in points(lines)]
    w, w2, sup = str(p.worker.id), str(p.other_worker.id), str(p.supervisor.id)
    assert got == [
        ("button", "raised", None, None, None),
        ("button", "acknowledged", None, w, None),
        ("button", "resolved", "false_alarm", w, 1),
        ("heat", "raised", None, None, None),
        ("heat", "acknowledged", None, w2, None),
        ("heat", "auto_resolved", "auto_cleared", None, 0),
        ("night_exit", "raised", None, None, None),
        ("night_exit", "assigned", None, sup, None),
    ]
    values = {str(v) for t, f, _ in points(lines) for v in (*t.values(), *f.values())}
    names = {n for u in (p.worker, p.other_worker, p.supervisor)
             for n in (u.username, u.display_name)}
    assert not values & names
    assert export.transition_lines(s, last) == ([], last)


def test_a_transition_exports_the_same_line_after_the_alert_changed(
        journal: tuple[Session, People]) -> None:
    """The exporter starts over at every start: a transition's line (its tags above all)
    must not depend on what the alert became later, or it would be stored twice."""
    s, p = journal
    table = EscalationTable()
    a = lc.raise_alert(s, site="s1", home="h1", rule=Rule.HEAT, priority=Priority.MEDIUM,
                       at=T0, table=table).alert_id
    lc.acknowledge(s, a, p.worker, T0 + timedelta(minutes=5))
    before, _ = export.transition_lines(s, 0)
    lc.assign(s, a, p.other_worker, p.supervisor, T0 + timedelta(minutes=6))
    lc.resolve(s, a, Outcome.VISITED_OK, p.other_worker, T0 + timedelta(minutes=50))
    after, _ = export.transition_lines(s, 0)
    assert after[:len(before)] == before
    assert len(after) == len(before) + 2


def _cfg(home: str, mode: str, site: str = "s1") -> engine.HomeConfig:
    return engine.HomeConfig(site, home, mode, Thresholds(), ())


@pytest.mark.parametrize(("seen", "now", "written"), [
    ({}, {"h1": "normal", "h2": "away"}, ["h1", "h2"]),  # start-up: every home
    ({"h1": "normal"}, {"h1": "normal"}, []),  # an equal configuration read again
    ({"h1": "normal"}, {"h1": "hospital"}, ["h1"]),
    ({"h1": "away"}, {"h1": "away", "h9": "normal"}, ["h9"]),  # a new home
], ids=["start", "same", "changed", "new-home"])
def test_mode_changes(seen: dict[str, str], now: dict[str, str], written: list[str]) -> None:
    """A home's mode is written when the service first sees it and when it changes."""
    old = {h: _cfg(h, m) for h, m in seen.items()}
    new = {h: _cfg(h, m) for h, m in now.items()}
    assert [c.home for c in export.mode_changes(old, new)] == written


def test_unchanged_configuration_object_is_skipped_without_comparing() -> None:
    homes = {"h1": _cfg("h1", "away")}
    assert export.mode_changes(homes, homes) == []
    assert export.mode_changes(dict(homes), homes) == []


def test_home_mode_line() -> None:
    (line,) = export.home_mode_lines([_cfg("h00002", "hospital", "s000")], 1_790_000_000_000)
    assert parse_line(line.decode()) == (
        "home_mode", {"site": "s000", "home": "h00002"}, {"mode": "hospital"},
        1_790_000_000_000)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.integration
async def test_exporter_writes_modes_at_start_on_change_and_now_and_then(
        journal: tuple[Session, People], sqlite_url: str, influx: InfluxDB,
        influx_users: InfluxUsers, influx_admin: InfluxHTTP) -> None:
    """The service's exporter pass: every home's mode at start-up, then only a home whose
    mode changed in the registry, every home again after HOME_MODE_EVERY_S; and the
    alert transitions with their tags, in the real InfluxDB."""
    s, p = journal
    _story(s, p)
    s.commit()
    clock = Clock(T0.timestamp() + 3 * 3600)
    settings = AlertsSettings(
        database_url=sqlite_url, alerts=AlertOptions(metrics_port=0),
        influx=InfluxSettings(url=influx.url, database="care", username=influx_users.ingest[0],
                              password=SecretStr(influx_users.ingest[1]), timeout_s=5))
    svc = AlertService(settings, clock=clock)

    def modes() -> list[tuple[int, str, str]]:
        rows = influx_admin.rows("SELECT mode, home FROM home_mode WHERE site = 's1'", "care")
        return sorted((r["time"], r["home"], r["mode"]) for r in rows)

    t = int(clock.t * 1000)
    async with svc.writer:
        await svc.registry.load()
        assert await svc.exporter.export_once() > 0
        assert modes() == [(t, "h1", "normal"), (t, "h2", "normal")]
        with svc.sessions.begin() as rs:
            registry.set_home_mode(rs, "h2", "hospital", reason="admitted")
        clock.t += 30
        await svc.registry.refresh()
        await svc.exporter.export_once()
        await svc.exporter.export_once()  # nothing changed since: nothing more
        assert modes()[2:] == [(t + 30_000, "h2", "hospital")]
        clock.t += export.HOME_MODE_EVERY_S
        await svc.exporter.export_once()
        t2 = t + 30_000 + int(export.HOME_MODE_EVERY_S * 1000)
        assert modes()[3:] == [(t2, "h1", "normal"), (t2, "h2", "hospital")]
    rows = influx_admin.rows(
        "SELECT false_alarm, outcome, rule FROM alert WHERE site = 's1' AND "
        "kind = 'resolved'", "care")
    assert [(r["rule"], r["outcome"], r["false_alarm"]) for r in rows] == [
        ("button", "false_alarm", 1)]
    handled = influx_admin.rows(
        "SELECT count(alert_id) AS n FROM alert WHERE site = 's1' AND "
        "kind = 'acknowledged' GROUP BY worker", "care")
    assert sorted((r["worker"], r["n"]) for r in handled) == [
        (str(p.worker.id), 1), (str(p.other_worker.id), 1)]
