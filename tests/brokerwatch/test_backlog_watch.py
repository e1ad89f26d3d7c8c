"""The backlog watcher's alert in the store: one per cell, filed under the cell's first
site, refreshed, cleared; what the operator account may read; the command's one-line
refusals (docs/scale.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts.model import Rule
from dolbom.alerts.notify import Notice, render
from dolbom.brokerwatch.backlog import (
    SYS_BYTES,
    SYS_DISCONNECTED,
    SYS_DROPPED,
    SYS_RETAINED,
    SYS_STORED,
    Report,
    Verdict,
)
from dolbom.brokerwatch.backlog_watch import BacklogMetrics, BacklogOptions, BacklogWatch
from dolbom.cli import main
from dolbom.mqtt import Endpoint
from dolbom.protocol import Topics
from dolbom.registry import service as svc
from dolbom.registry.broker import render_acl
from dolbom.registry.models import Alert, AlertEvent, Outbox

ENDPOINT = Endpoint("127.0.0.1", 1883, "svc-operator", "pw")


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _registry(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        svc.add_site(s, "s2", "Site 2", cell="a")
        svc.add_site(s, "s1", "Site 1", cell="a")
        svc.add_site(s, "s3", "Site 3", cell="b")
        svc.add_user(s, "ops", "admin")
        svc.add_contact(s, "ops", "webhook", "https://ops.example.org/hook")


def _watch(factory: sessionmaker[Session], cell: str = "a", clock: Clock | None = None,
           **kw: float) -> BacklogWatch:
    o = BacklogOptions(cell=cell, threshold=1_000, sustain_s=60, min_growth=100,
                       repeat_s=120, metrics_port=0, **kw)
    return BacklogWatch(o, ENDPOINT, factory, metrics=BacklogMetrics(CollectorRegistry()),
                        clock=clock or Clock())


def _open(factory: sessionmaker[Session]) -> list[Alert]:
    with factory() as s:
        return list(s.scalars(select(Alert).where(Alert.rule == "broker_backlog",
                                                  Alert.open_key.is_not(None))))


def _grow(w: BacklogWatch, clock: Clock, start: int, steps: int, per: int) -> list[Report]:
    out = []
    for i in range(steps):
        clock.t += 10
        w.take(SYS_RETAINED, b"100")
        r = w.take(SYS_STORED, str(100 + start + i * per).encode())
        if r is not None:
            out.append(r)
    return out


def test_one_alert_for_the_cell_under_its_first_site_told_once(
        factory: sessionmaker[Session]) -> None:
    _registry(factory)
    clock = Clock()
    w = _watch(factory, clock=clock)
    assert not w.load_open()
    w.take(SYS_BYTES, b"123456")
    w.take(SYS_DISCONNECTED, b"3")
    w.take(SYS_DROPPED, b"0")
    reports = _grow(w, clock, 1_000, 8, 50)  # 50 more every 10 s: raised at 60 s
    assert [r.verdict for r in reports] == [Verdict.RAISE]
    assert w.tell(reports[0]) == "raised"
    [a] = _open(factory)
    assert (a.site_id, a.home_id, a.rule, a.klass, a.priority) == (
        "s1", None, "broker_backlog", "technical", "low")
    assert a.open_key == "s1/-/broker_backlog/a"
    assert a.detail["cell"] == "a" and a.detail["held"] == 1_300
    assert a.detail["growth"] == 300 and a.detail["disconnected"] == 3
    assert a.detail["bytes"] == 123456 and a.detail["retained"] == 100
    assert a.detail["dropped"] == 0
    with factory() as s:
        assert len(list(s.scalars(select(Outbox).where(Outbox.alert_id == a.id)))) == 1
    # still growing: refreshed every repeat_s, never a second alert, nobody told again
    more = _grow(w, clock, 1_400, 30, 50)
    assert [r.verdict for r in more] == [Verdict.REPEAT, Verdict.REPEAT]
    assert [w.tell(r) for r in more] == ["repeated", "repeated"]
    [a2] = _open(factory)
    assert a2.id == a.id and a2.count == 3 and a2.detail["held"] == 2_500
    with factory() as s:
        assert len(list(s.scalars(select(Outbox).where(Outbox.alert_id == a.id)))) == 1


def test_drained_it_clears_also_after_a_restart_and_a_site_added(
        factory: sessionmaker[Session]) -> None:
    _registry(factory)
    clock = Clock()
    w = _watch(factory, clock=clock)
    [r] = _grow(w, clock, 1_000, 8, 50)
    assert w.tell(r) == "raised"
    with factory.begin() as s:
        svc.add_site(s, "s0", "Site 0", cell="a")  # now the cell's first site
    w2 = _watch(factory, clock=clock)  # a new run finds the alert open
    assert w2.load_open() and w2.trend.raised
    [rep] = _grow(w2, clock, 1_500, 1, 0)
    assert rep.verdict is Verdict.REPEAT and w2.tell(rep) == "repeated"
    assert [a.site_id for a in _open(factory)] == ["s1"]
    clock.t += 10
    c = w2.take(SYS_STORED, b"400")  # 300 held: below clear_below (500)
    assert c is not None and c.verdict is Verdict.CLEAR
    assert w2.tell(c) == "cleared"
    assert _open(factory) == []
    with factory() as s:
        a = s.scalars(select(Alert)).one()
        assert (a.status, a.outcome) == ("resolved", "auto_cleared")
        kinds = [e.kind for e in s.scalars(select(AlertEvent).where(AlertEvent.alert_id == a.id)
                                           .order_by(AlertEvent.id))]
    assert kinds == ["raised", "repeated", "auto_resolved"]


def test_cells_have_an_alert_each_and_a_cell_without_sites_none(
        sqlite_factory: sessionmaker[Session]) -> None:
    _registry(sqlite_factory)
    clock = Clock()
    for cell, action in (("a", "raised"), ("b", "raised"), ("c", "no_site")):
        w = _watch(sqlite_factory, cell, clock)
        [r] = _grow(w, clock, 1_000, 8, 50)
        assert w.tell(r) == action, cell
    assert sorted(a.open_key or "" for a in _open(sqlite_factory)) == [
        "s1/-/broker_backlog/a", "s3/-/broker_backlog/b"]


def test_resolved_by_a_person_it_is_not_raised_again_before_draining(
        sqlite_factory: sessionmaker[Session]) -> None:
    from datetime import UTC, datetime

    from dolbom.alerts import lifecycle as lc
    from dolbom.alerts.model import Outcome

    _registry(sqlite_factory)
    clock = Clock()
    w = _watch(sqlite_factory, clock=clock)
    [r] = _grow(w, clock, 1_000, 8, 50)
    w.tell(r)
    [a] = _open(sqlite_factory)
    with sqlite_factory.begin() as s:
        ops = svc.get_user(s, "ops")
        lc.resolve(s, a.id, Outcome.FALSE_ALARM, ops, datetime.now(UTC))
    reps = _grow(w, clock, 1_400, 13, 50)
    assert [w.tell(x) for x in reps] == ["not_open"]
    assert _open(sqlite_factory) == []
    clock.t += 10
    c = w.take(SYS_STORED, b"100")
    assert c is not None and w.tell(c) == "not_open"
    again = _grow(w, clock, 1_000, 8, 50)  # a new backlog: a new alert
    assert [w.tell(x) for x in again] == ["raised"]


def test_metrics_follow_the_figures(sqlite_factory: sessionmaker[Session]) -> None:
    w = _watch(sqlite_factory)
    reg = w.metrics.registry
    w.take(SYS_STORED, b"5000")
    w.take(SYS_RETAINED, b"1200")
    w.take(SYS_STORED, b"not a number")
    w.take(SYS_DISCONNECTED, b"7")
    w.take(SYS_DROPPED, b"42")
    assert reg.get_sample_value("dolbom_broker_messages_held") == 3_800
    assert reg.get_sample_value("dolbom_broker_store_messages") == 5_000
    assert reg.get_sample_value("dolbom_broker_retained_messages") == 1_200
    assert reg.get_sample_value("dolbom_broker_clients_disconnected") == 7
    assert reg.get_sample_value("dolbom_broker_messages_dropped") == 42
    assert reg.get_sample_value("dolbom_broker_sys_malformed_total") == 1


def test_the_operator_account_reads_only_these_sys_topics(
        sqlite_factory: sessionmaker[Session]) -> None:
    with sqlite_factory.begin() as s:
        for name, role in (("svc-operator", "operator"), ("svc-ingest", "ingest")):
            svc.ensure_service_account(s, name, role, "pw")
    with sqlite_factory() as s:
        acl = render_acl(s, Topics())
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n")[2:]}
    assert blocks["user svc-operator"] == [
        "topic deny care/v1/+/svc-operator/#", "topic read care/v1/#",
        "topic read $SYS/broker/store/messages/#",
        "topic read $SYS/broker/retained messages/count",
        "topic read $SYS/broker/clients/disconnected",
        "topic read $SYS/broker/publish/messages/dropped"]
    assert "$SYS" not in "\n".join(blocks["user svc-ingest"])


def test_the_alert_text_names_the_cell_and_the_count() -> None:
    from datetime import UTC, datetime

    n = Notice(alert_id=7, rule=Rule.BROKER_BACKLOG.value, priority="low", status="open",
               site="s1", home=None, device=None, raised_at=datetime(2026, 12, 4, tzinfo=UTC),
               event_ts=None, detail={"cell": "a", "held": 12_345, "name": "김영희"},
               kind="raised", tier=1, step=0)
    (en, _), (ko, ko_body) = render(n, "en"), render(n, "ko")
    assert "Messages piling up in the broker (a, 12345 messages)" in en
    assert "브로커 메시지 적체 (a, 12345건)" in ko
    assert "김영희" not in en + ko + ko_body


@pytest.mark.parametrize(("env", "message"), [
    ({}, "error: name the broker account: DOLBOM_MQTT__USERNAME"),
    ({"DOLBOM_MQTT__USERNAME": "svc-operator", "DOLBOM_BACKLOG__CLEAR_BELOW": "20000"},
     "config error: backlog (DOLBOM_BACKLOG): Value error, backlog.clear_below (20000) must "
     "be below backlog.threshold (10000)"),
    ({"DOLBOM_MQTT__USERNAME": "svc-operator", "DOLBOM_BACKLOG__CELL": "A B"},
     "config error: backlog.cell (DOLBOM_BACKLOG__CELL): String should match pattern"),
])
def test_watch_backlog_refuses_with_one_line(
        env: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["broker", "watch-backlog"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_watch_backlog_needs_a_migrated_registry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOLBOM_MQTT__USERNAME", "svc-operator")
    monkeypatch.setenv("DOLBOM_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["broker", "watch-backlog"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "devices" in err, err
