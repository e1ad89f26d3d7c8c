"""Rule state is saved in chunks and read back after a restart, on SQLite and PostgreSQL;
a registry refresh moves devices between homes."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dolbom.alerts import engine, homes, persist
from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.mqtt import Received
from dolbom.registry import service as registry
from dolbom.registry.models import Device, HomeRuleState
from tests.alerts.conftest import People


def _settings(db_url: str) -> AlertsSettings:
    return AlertsSettings(database_url=db_url, alerts=AlertOptions(metrics_port=0))


async def test_rule_state_upserts_in_chunks_and_survives_restart(
        care_db: tuple[Session, People], db_url: str) -> None:
    s, _ = care_db
    with s.begin():
        for i in range(7):
            registry.add_home(s, f"hx{i}", "s1")
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
    t = [1_700_000_000.0]
    svc = AlertService(_settings(db_url), clock=lambda: t[0])
    chunk, persist.STATE_CHUNK = persist.STATE_CHUNK, 3  # several transactions for 9 homes
    try:
        await svc.registry.load()
        await svc.saver.flush()  # first save: inserts
        saved = {h: engine.state_to_json(st) for h, st in svc.states.items()}
        # a heartbeat moves one home's clocks: the next flush updates that row
        t[0] = 1_700_000_600.0
        svc.observe("h1", engine.Seen("ms-h1", 1_700_000_600_000))
        assert engine.state_to_json(svc.states["h1"]) != saved["h1"]
        await svc.saver.flush()
    finally:
        persist.STATE_CHUNK = chunk
    s.expire_all()
    rows = {r.home_id: r.packed for r in s.scalars(select(HomeRuleState))}
    assert s.scalar(select(func.count()).select_from(HomeRuleState)) == 9
    assert rows.keys() == saved.keys()
    assert rows["h1"] == engine.state_to_bytes(svc.states["h1"])
    restarted = AlertService(_settings(db_url), clock=lambda: 1_700_000_600.0)
    await restarted.registry.load()
    assert restarted.states["h1"] == svc.states["h1"]


async def test_timers_due_together_are_ticked_in_slices(
        care_db: tuple[Session, People], db_url: str) -> None:
    """Homes started together fall due together: each timer pass takes a bounded slice
    (so alarms get the event loop in between), and every home is still ticked once."""
    s, _ = care_db
    with s.begin():
        for i in range(30):
            registry.add_home(s, f"ht{i}", "s1")
            registry.add_device(s, f"ms-ht{i}", "s1", f"ht{i}", "multisensor")
    t = [1_700_000_000.0]
    svc = AlertService(_settings(db_url), clock=lambda: t[0])
    await svc.registry.load()
    svc.actions.pending.clear()
    t[0] += 3600  # an hour without a heartbeat from any of them
    slices = []
    while (n := svc.run_timers(7)) == 7:
        slices.append(n)
    slices.append(n)
    assert all(x <= 7 for x in slices) and len(slices) >= 5
    lost = {home for home, a in svc.actions.pending
            if isinstance(a, engine.Raise) and a.rule.value == "device_lost"}
    assert lost == {f"ht{i}" for i in range(30)}


def test_a_registry_reread_keeps_unchanged_configurations(
        care_db: tuple[Session, People]) -> None:
    """load_homes(known) hands back the very configuration of a home that did not change
    (one copy of its strings in memory), and maps each device to its configuration's
    own home id, reusing the last device map's table when no home's devices changed."""
    s, _ = care_db
    with s.begin():
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
        registry.add_device(s, "ms-h2", "s1", "h2", "multisensor")
    with s.begin():
        first, first_map = homes.load_homes(s)
    with s.begin():
        registry.set_home_mode(s, "h2", "away", "on holiday")
    with s.begin():
        again, device_home = homes.load_homes(s, first, first_map)
    assert again["h1"] is first["h1"] and again["h2"] != first["h2"]
    assert again["h2"].mode == "away" and again["h2"].ids == first["h2"].ids
    assert device_home._table is first_map._table  # same devices: the table is reused
    assert device_home.config("ms-h2") is again["h2"]  # but it points at the new configuration
    for home, cfg in again.items():
        assert all(device_home.get(d) is home for d in cfg.ids)
    assert dict(device_home) == {"ms-h1": "h1", "ms-h2": "h2"}
    with s.begin():
        registry.add_device(s, "door-h1", "s1", "h1", "door")
    with s.begin():
        _, device_home = homes.load_homes(s, again, device_home)
    assert device_home._table is not first_map._table
    assert dict(device_home) == {"ms-h1": "h1", "door-h1": "h1", "ms-h2": "h2"}


async def test_a_refresh_follows_devices_added_revoked_and_moved(
        care_db: tuple[Session, People], db_url: str) -> None:
    """After a registry refresh, the stream path and life-safety routing find a new device,
    no longer find a revoked one, and send a moved one's messages to its new home."""
    s, _ = care_db
    with s.begin():
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
        registry.add_device(s, "door-h1", "s1", "h1", "door", power="battery", hb_s=300)
        registry.add_device(s, "ms-h2", "s1", "h2", "multisensor")
    t = [1_700_000_000.0]
    svc = AlertService(_settings(db_url), clock=lambda: t[0])
    await svc.registry.load()
    assert [svc.rules.route(d) for d in ("ms-h1", "door-h1", "ms-h2", "btn-h2")] == [
        ("s1", "h1"), ("s1", "h1"), ("s1", "h2"), None]
    with s.begin():
        registry.add_device(s, "btn-h2", "s1", "h2", "button", power="battery", hb_s=300)
        registry.revoke_device(s, "ms-h2")
        s.get_one(Device, "door-h1").home_id = "h2"
    await svc.registry.refresh()
    assert [svc.rules.route(d) for d in ("ms-h1", "door-h1", "ms-h2", "btn-h2")] == [
        ("s1", "h1"), ("s1", "h2"), None, ("s1", "h2")]
    assert sorted(svc.homes["h2"].ids) == ["btn-h2", "door-h1"]
    t[0] += 60
    before = dict(svc.states)
    svc.stream.on_message(Received(svc.topics.event("s1", "door-h1", "button"), b"{}", 0, False, 0,
                            False))  # life-safety on the stream session: a sign of life
    assert svc.states["h2"] is not before["h2"] and svc.states["h1"] is before["h1"]
    assert svc.states["h2"].view().rec(svc.homes["h2"].index("door-h1"))[0] == t[0] * 1000
    heard = dict(svc.states)
    svc.stream.on_message(Received(svc.topics.event("s1", "ms-h2", "button"), b"{}", 0, False, 0,
                            False))  # revoked: no home hears it
    assert svc.states == heard and all(svc.states[h] is heard[h] for h in heard)


async def test_outcomes_recorded_by_workers_teach_the_homes_concern(
        care_db: tuple[Session, People], db_url: str) -> None:
    """A concern resolved as a false alarm makes that home's concern less eager; one that
    found someone in need makes it more eager; other rules teach nothing."""
    from datetime import UTC, datetime

    from dolbom.alerts import lifecycle as lc
    from dolbom.alerts.model import EscalationTable, Outcome, Priority, Rule

    s, p = care_db
    t0 = 1_700_000_000.0
    svc = AlertService(_settings(db_url), clock=lambda: t0)
    await svc.registry.load()
    at = datetime.fromtimestamp(t0 + 60, UTC)
    with s.begin():
        ids = [lc.raise_alert(s, site="s1", home="h1", rule=rule, priority=Priority.MEDIUM,
                              at=at, table=EscalationTable()).alert_id
               for rule in (Rule.WELFARE_CONCERN, Rule.NO_DOOR_USE)]
        for alert_id in ids:
            lc.resolve(s, alert_id, Outcome.FALSE_ALARM, p.worker, at)
    assert await svc.registry.learn_outcomes() == 1  # the door rule teaches nothing
    assert svc.states["h1"].view().learn.eager == -1
    assert await svc.registry.learn_outcomes() == 0  # each outcome once
    with s.begin():
        again = lc.raise_alert(s, site="s1", home="h1", rule=Rule.WELFARE_CONCERN,
                               priority=Priority.MEDIUM, at=at, table=EscalationTable())
        lc.resolve(s, again.alert_id, Outcome.NEEDS_CARE, p.worker,
                   datetime.fromtimestamp(t0 + 120, UTC))
    assert await svc.registry.learn_outcomes() == 1
    assert svc.states["h1"].view().learn.eager == 0


async def test_a_restart_takes_when_each_device_was_last_heard_to_the_millisecond(
        care_db: tuple[Session, People], db_url: str) -> None:
    """Ingest records when each device was heard while the rules were down; the restart
    reads it (worked out by the database, on SQLite and PostgreSQL) to the millisecond,
    and a device heard then is not judged lost for the time the rules were away."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    s, _ = care_db
    with s.begin():
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
        registry.add_device(s, "door-h1", "s1", "h1", "door")
    first = AlertService(_settings(db_url), clock=lambda: 1_700_000_000.0)
    await first.registry.load()
    await first.saver.flush()
    heard = 1_700_000_500_123  # while the rules were down
    with s.begin():
        s.execute(update(Device).where(Device.id == "ms-h1")
                  .values(last_seen_at=datetime.fromtimestamp(heard / 1000, UTC)))
    again = AlertService(_settings(db_url), clock=lambda: 1_700_000_600.0)
    await again.registry.load()
    recs = engine.state_to_json(again.states["h1"])["devs"]
    order = again.homes["h1"].ids
    assert recs[order.index("ms-h1")][0] == heard
    assert recs[order.index("door-h1")][0] == 1_700_000_000_000  # not heard since
    assert recs[order.index("ms-h1")][3] == heard + again.homes["h1"].lost_ms[
        order.index("ms-h1")]  # lost only 3 heartbeats after it was heard


async def test_a_large_restart_applies_last_seen_times_before_judging_any_home(
        care_db: tuple[Session, People], db_url: str) -> None:
    """With many homes, a restart takes messages first and applies ingest's last-seen
    times after: each home before anything reads or judges it (its timer, a message),
    the rest a slice per timer pass. The states come out as if applied at once, and a
    device heard while the rules were down is not lost for it."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from dolbom.alerts import states

    s, _ = care_db
    with s.begin():
        for h in ("h1", "h2", "h3"):
            registry.add_home(s, f"r{h}", "s1")
            registry.add_device(s, f"ms-r{h}", "s1", f"r{h}", "multisensor")
    t = [1_700_000_000.0]
    first = AlertService(_settings(db_url), clock=lambda: t[0])
    await first.registry.load()
    t[0] += 400
    for h in ("rh1", "rh2", "rh3"):  # heard at 400 s: lost at 580 s unless heard again
        first.observe(h, engine.Seen(f"ms-{h}", int(t[0] * 1000)))
    await first.saver.flush()
    heard = 1_700_000_550_000  # ingest heard them at 550 s, while the rules were down
    with s.begin():
        s.execute(update(Device).values(last_seen_at=datetime.fromtimestamp(heard / 1000, UTC)))
    t[0] = 1_700_000_600.0  # the restart: the saved lost deadlines (580 s) have passed
    eager = AlertService(_settings(db_url), clock=lambda: t[0])
    await eager.registry.load()
    late = AlertService(_settings(db_url), clock=lambda: t[0])
    old = states.LATE_HEARD_HOMES, states.SETTLE_PER_PASS
    states.LATE_HEARD_HOMES, states.SETTLE_PER_PASS = 0, 1
    try:
        await late.registry.load()
        assert set(late.rules.unsettled) == {"rh1", "rh2", "rh3"}  # taking messages already
        late.observe("rh1", engine.Seen("ms-rh1", heard + 1_000))  # settles rh1 first
        eager.observe("rh1", engine.Seen("ms-rh1", heard + 1_000))
        late.run_timers()  # rh2's timer (its saved deadline is past) and one more slice
        assert "rh1" not in late.rules.unsettled and "rh2" not in late.rules.unsettled
        while late.rules.unsettled:
            late.run_timers()
    finally:
        states.LATE_HEARD_HOMES, states.SETTLE_PER_PASS = old
    eager.run_timers()
    assert late.states == eager.states
    lost = [a for _, a in late.actions.pending
            if isinstance(a, engine.Raise) and a.rule.value == "device_lost"]
    assert lost == []


async def test_a_home_changed_before_its_last_seen_times_are_applied_gets_them_by_device(
        care_db: tuple[Session, People], db_url: str) -> None:
    """A device added to a home between a large restart and that home's catching up: the
    waiting times go to the devices they were read for, not by position."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from dolbom.alerts import states

    s, _ = care_db
    with s.begin():
        registry.add_home(s, "rh1", "s1")
        registry.add_device(s, "ms-rh1", "s1", "rh1", "multisensor")
    first = AlertService(_settings(db_url), clock=lambda: 1_700_000_000.0)
    await first.registry.load()
    await first.saver.flush()
    heard = 1_700_000_050_000
    with s.begin():
        s.execute(update(Device).values(last_seen_at=datetime.fromtimestamp(heard / 1000, UTC)))
    late = AlertService(_settings(db_url), clock=lambda: 1_700_000_060.0)
    old = states.LATE_HEARD_HOMES
    states.LATE_HEARD_HOMES = 0
    try:
        await late.registry.load()
        assert "rh1" in late.rules.unsettled
        with s.begin():  # a door sensor installed first in the list (ids sort before)
            registry.add_device(s, "a-door-rh1", "s1", "rh1", "door")
        await late.registry.refresh()
    finally:
        states.LATE_HEARD_HOMES = old
    assert "rh1" not in late.rules.unsettled
    ids = late.homes["rh1"].ids
    recs = engine.state_to_json(late.states["rh1"])["devs"]
    assert recs[ids.index("ms-rh1")][0] == heard
