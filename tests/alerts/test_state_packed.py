"""Rule state is saved packed (``state_to_bytes``): it round-trips exactly, refuses what
it did not write, and a row saved as JSON by the previous version still loads; a restart
keeps every timer. The database tests run on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from dolbom.alerts import engine
from dolbom.alerts.rules import state_json
from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.registry import service as registry
from dolbom.registry.models import HomeRuleState
from tests.alerts.conftest import People
from tests.alerts.enginekit import BUTTON, MIN, PIR, Home, local

T0 = local(2, 8)


def _lived_in() -> Home:
    home = Home(start=T0)
    home.silence(BUTTON)
    home.reading(PIR, T0 + MIN, temperature_c=35.0)
    home.run(local(3, 10))
    return home


def test_packed_state_round_trips_and_is_smaller_than_json() -> None:
    home = _lived_in()
    b = engine.state_to_bytes(home.state)
    back = engine.state_from_bytes(b)
    assert back == home.state and engine.state_from_saved(b) == home.state
    assert engine.next_deadline(home.cfg, back) == engine.next_deadline(home.cfg, home.state)
    assert len(b) < len(orjson.dumps(engine.state_to_json(home.state))) / 2


def test_a_json_state_is_read_still() -> None:
    home = _lived_in()
    d = orjson.loads(orjson.dumps(engine.state_to_json(home.state)))
    assert engine.state_from_saved(d) == home.state


def test_the_packed_layout_is_pinned() -> None:
    """The packed bytes depend on the structs, rule bits, modes and baselines. If this
    fails, the layout changed: saved states would start afresh. Raise PACKED_VERSION and
    keep a reader of the old layout (or accept fresh states, on purpose), then pin the
    new number here."""
    assert state_json.LAYOUT == 0x8C5EEBAE, hex(state_json.LAYOUT)
    assert state_json.LAYOUT_V1 == 0xA645C96F, hex(state_json.LAYOUT_V1)


# ``_lived_in()``'s state as the previous version (PACKED_VERSION 1) saved it.
_V1_BYTES = bytes.fromhex(
    "016fc945a61c00b0495f5fcd0d017c045830f2ccca2b3c28ed0217f0e1af86fce149b980664d339701000000"
    "000000e017ba2d97010000a02550339701000080664d339701000000000000000000000000000020225b3397"
    "010000802db92d97010000000000000000000000000000ffffffffffffff7f80664d33970100000000000000"
    "0000000000000020225b339701000080664d3397010000000000000000000000000000a02550339701000080"
    "664d3397010000000000000000000000000000a0255033970100001a1a1a1a1a1a1a1a1a1a1a1a1a1ab2b2b2"
    "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b21a1a1a1a00000000000000000000000000"
    "000000000000001d00000070db3c68000000000000000070db3c68e8573d680100005e010000000065bfbc01"
    "0000000000000000180000020000000000000000000000000000000000000000000000000000000000010000"
    "00000000000000000000000000802db92d970100000100eccd349701000001802db92d97010000802db92d97"
    "010000000000000000000080d3c72d97010000000000000000000085042000000000040000000000000000ec"
    "cd3497010000a025503397010000")


def test_a_state_packed_by_the_previous_version_loads_with_its_timers() -> None:
    """An upgrade keeps every home's timers and baselines: the fields the previous
    layout lacked start fresh, everything else is as it was saved."""
    home = _lived_in()
    old = engine.state_from_bytes(_V1_BYTES)
    assert engine.next_deadline(home.cfg, old) == engine.next_deadline(home.cfg, home.state)
    got, want = engine.state_to_json(old), engine.state_to_json(home.state)
    assert got["learn"].pop("seen_bits") == 0
    want["learn"].pop("seen_bits")
    assert got == want
    assert engine.state_from_bytes(engine.state_to_bytes(old)) == old  # saved anew


@pytest.mark.parametrize("cut", [0, 3, 7, 11, -1])
def test_packed_state_refuses_what_it_did_not_write(cut: int) -> None:
    b = engine.state_to_bytes(_lived_in().state)
    with pytest.raises(ValueError):
        engine.state_from_bytes(b[:cut])
    with pytest.raises(ValueError):
        engine.state_from_bytes(b"\x03" + b[1:])  # another version
    with pytest.raises(ValueError):
        engine.state_from_bytes(b"\x01" + b[1:])  # version 1 with this layout's number
    with pytest.raises(ValueError):
        engine.state_from_bytes(b + b"\0")


def _settings(db_url: str) -> AlertsSettings:
    return AlertsSettings(database_url=db_url, alerts=AlertOptions(metrics_port=0))


async def test_a_home_saved_as_json_by_the_previous_version_loads(
        care_db: tuple[Session, People], db_url: str) -> None:
    s, _ = care_db
    with s.begin():
        registry.add_device(s, "ms-h1", "s1", "h1", "multisensor")
    t = 1_700_000_000.0
    first = AlertService(_settings(db_url), clock=lambda: t)
    await first.registry.load()
    first.observe("h1", engine.Seen("ms-h1", int(t * 1000) - 5000))
    old = first.states["h1"]
    with s.begin():  # as the previous version saved it
        s.execute(insert(HomeRuleState), [{
            "home_id": "h1", "state": engine.state_to_json(old),
            "updated_at": datetime.fromtimestamp(t, UTC)}])
    again = AlertService(_settings(db_url), clock=lambda: t)
    await again.registry.load()
    assert again.states["h1"] == old
    await again.saver.flush()  # saved again: packed now
    s.expire_all()
    row = s.scalars(select(HomeRuleState).where(HomeRuleState.home_id == "h1")).one()
    assert row.state is None and row.packed == engine.state_to_bytes(old)


async def test_a_restart_keeps_every_timer(
        care_db: tuple[Session, People], db_url: str) -> None:
    s, _ = care_db
    with s.begin():
        for i in range(4):
            registry.add_home(s, f"hr{i}", "s1")
            for kind, power, hb in (("multisensor", "mains", 60), ("door", "battery", 300),
                                    ("button", "battery", 300)):
                registry.add_device(s, f"{kind}-hr{i}", "s1", f"hr{i}", kind, power=power,
                                    hb_s=hb)
    t = [1_700_000_000.0]
    svc = AlertService(_settings(db_url), clock=lambda: t[0])
    await svc.registry.load()
    for i in range(4):  # each home heard differently: different deadlines
        t[0] += 97 * (i + 1)
        svc.observe(f"hr{i}", engine.Seen(f"multisensor-hr{i}", int(t[0] * 1000)))
    svc.rules.run_timers()
    await svc.saver.flush()
    restarted = AlertService(_settings(db_url), clock=lambda: t[0])
    await restarted.registry.load()
    assert restarted.states == svc.states
    for home, cfg in svc.homes.items():
        assert (engine.next_deadline(cfg, restarted.states[home])
                == engine.next_deadline(cfg, svc.states[home]))
    # and they fire alike: two days of silence later, the same verdicts
    saved = dict(svc.states)
    t[0] += 2 * 86_400
    assert svc.rules.run_timers() == restarted.rules.run_timers() > 0
    assert restarted.states == svc.states and all(svc.states[h] != saved[h] for h in saved)


def test_baselines_of_the_previous_version_convert_field_by_field() -> None:
    """Version 1 kept days and night_day in two bytes: days saturate at 255 (only
    "fewer than 7" matters), night_day keeps its day modulo 256, the rest is as saved."""
    from dolbom.alerts.rules import baseline

    learned = baseline.Learned.fresh()
    learned.emax, learned.mark, learned.tmax = [1, 2, 3, 4], 970_001, 77
    new = learned.pack()
    old_values = list(baseline.LEARN.unpack(new))[:-1]  # without seen_bits
    days_at, night_at = baseline.AT_V1["days"], baseline.AT_V1["night_day"]
    old_values[days_at], old_values[night_at] = 300, 20_000
    got = baseline.Learned.unpack(baseline.from_v1(baseline.LEARN_V1.pack(*old_values)))
    assert (got.days, got.night_day, got.seen_bits) == (255, 20_000 % 256, 0)
    assert (got.emax, got.mark, got.tmax) == ([1, 2, 3, 4], 970_001, 77)
